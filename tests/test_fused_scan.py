"""The fused CPU selective scan (numba): values, gradients, padding, threads, the fallback."""

from __future__ import annotations

from collections.abc import Callable

import numba
import pytest
import torch

from hybridrec.models.fused_scan import fused_selective_scan, supports
from hybridrec.models.mamba import SelectiveSSM, selective_scan

NAMES = ("x", "delta", "a", "b", "c", "d")
Inputs = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def inputs(batch: int, n: int, d_inner: int, d_state: int, dtype: torch.dtype = torch.float64,
           padding: int = 0, seed: int = 0) -> Inputs:
    """x, delta (B, N, Di); a (Di, S); b, c (B, N, S); d (Di,), requiring gradients.

    Delta as softplus makes it, in (0, 2); exactly 0 at the first ``padding`` positions, as the
    model's padding mask makes it; a = -exp(A_log) with A_log around log(1..S), as at init.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, d_inner, generator=g, dtype=dtype)
    delta = torch.nn.functional.softplus(torch.randn(batch, n, d_inner, generator=g,
                                                     dtype=dtype))
    delta[:, :padding] = 0
    a_log = torch.log(torch.arange(1, d_state + 1, dtype=dtype)).repeat(d_inner, 1)
    a = -torch.exp(a_log + 0.3 * torch.randn(d_inner, d_state, generator=g, dtype=dtype))
    b = torch.randn(batch, n, d_state, generator=g, dtype=dtype)
    c = torch.randn(batch, n, d_state, generator=g, dtype=dtype)
    d = torch.randn(d_inner, generator=g, dtype=dtype)
    return (x.requires_grad_(), delta.requires_grad_(), a.requires_grad_(), b.requires_grad_(),
            c.requires_grad_(), d.requires_grad_())


def value_and_grads(tensors: Inputs, scan: str,
                    seed: int = 1) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    y = selective_scan(*tensors, scan=scan)
    weight = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    grads = torch.autograd.grad((y * weight).sum(), tensors)
    return y.detach(), grads


def labelled(name: str) -> Callable[[str], str]:
    return lambda message: f"gradient of {name}: {message}"


SHAPES = [  # (B, N, Di, S, leading padding)
    (3, 7, 5, 4, 0),
    (3, 7, 5, 4, 3),  # delta = 0 at the first three positions
    (2, 1, 3, 4, 0),  # N = 1
    (1, 9, 4, 3, 2),  # B = 1
    (2, 6, 3, 1, 1),  # S = 1
    (4, 50, 8, 16, 10),  # N = 50
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("batch", "n", "d_inner", "d_state", "padding"), SHAPES)
def test_fused_scan_equals_the_reference_in_values_and_gradients(
        batch: int, n: int, d_inner: int, d_state: int, padding: int,
        dtype: torch.dtype) -> None:
    tensors = inputs(batch, n, d_inner, d_state, dtype, padding)
    fused, fused_grads = value_and_grads(tensors, "fused")
    reference, reference_grads = value_and_grads(tensors, "reference")
    rtol, atol = (1e-4, 1e-5) if dtype == torch.float32 else (None, None)  # float64: default
    assert fused.dtype == dtype
    torch.testing.assert_close(fused, reference, rtol=rtol, atol=atol)
    for name, got, expected in zip(NAMES, fused_grads, reference_grads, strict=True):
        assert got.dtype == dtype and got.shape == expected.shape, name
        torch.testing.assert_close(got, expected, rtol=rtol, atol=atol, msg=labelled(name))
    x, _, _, _, _, d = tensors
    # the state stays exactly 0 through the padding: only D x comes out there
    assert torch.equal(fused[:, :padding], (x * d).detach()[:, :padding])


def test_gradcheck() -> None:
    tensors = inputs(2, 5, 3, 2, torch.float64, padding=1)
    assert torch.autograd.gradcheck(fused_selective_scan, tensors)


def test_results_are_bitwise_the_same_on_one_and_two_threads() -> None:
    tensors = inputs(64, 20, 16, 8, torch.float32, padding=4, seed=2)
    previous = torch.get_num_threads()
    numba_threads = numba.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = value_and_grads(tensors, "fused")
            assert numba.get_num_threads() == numba_threads  # restored after each call
            assert torch.get_num_threads() == threads  # torch's own count is left alone
    finally:
        torch.set_num_threads(previous)
    (y1, grads1), (y2, grads2) = results[1], results[2]
    assert torch.equal(y1, y2)
    for name, one, two in zip(NAMES, grads1, grads2, strict=True):
        assert torch.equal(one, two), name


def test_only_the_inputs_are_saved_for_the_backward_pass() -> None:
    tensors = inputs(4, 6, 5, 3)
    y = fused_selective_scan(*tensors)
    saved = y.grad_fn.saved_tensors  # type: ignore[union-attr]
    assert len(saved) == 6
    assert all(s.dim() <= 3 for s in saved)  # no (B, N, Di, S) tensor


def test_inputs_are_promoted_and_made_contiguous() -> None:
    x, delta, a, b, c, d = inputs(3, 5, 4, 3, torch.float32)
    bc = torch.cat([b, c], dim=-1)  # b and c as the model makes them: strided views
    b_view, c_view = bc[..., :3], bc[..., 3:]
    y = fused_selective_scan(x, delta, a.double(), b_view, c_view, d)
    assert y.dtype == torch.float64
    expected = selective_scan(x.double(), delta.double(), a.double(), b.double(), c.double(),
                              d.double(), scan="reference")
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-6)
    y.sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32


def test_fused_falls_back_to_sequential_outside_cpu_float32_and_float64() -> None:
    x, delta, a, b, c, d = (t.detach().bfloat16() for t in inputs(2, 4, 3, 2))
    tensors: Inputs = (x, delta, a, b, c, d)
    assert not supports(*tensors)
    assert torch.equal(selective_scan(*tensors, scan="fused"),
                       selective_scan(*tensors, scan="sequential"))
    with pytest.raises(ValueError, match="CPU tensors of float32 or float64"):
        fused_selective_scan(*tensors)
    if torch.cuda.is_available():
        x, delta, a, b, c, d = (t.detach().cuda() for t in inputs(2, 4, 3, 2))
        cuda: Inputs = (x, delta, a, b, c, d)
        assert not supports(*cuda)
        assert torch.equal(selective_scan(*cuda, scan="fused"),
                           selective_scan(*cuda, scan="sequential"))


def test_fused_is_the_default() -> None:
    assert SelectiveSSM(4, 2, 1).scan == "fused"

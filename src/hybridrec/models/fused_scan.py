"""The selective scan fused into one CPU kernel (numba), in the design of Mamba's CUDA kernel.

Computes what ``mamba.selective_scan`` computes, per batch row b and channel d, with state size
S, the state h kept as S numbers and nothing else stored::

    A_bar_t = exp(Delta_t A_d)                      (S,)
    h_t = A_bar_t h_{t-1} + Delta_t x_t B_t,  h_{-1} = 0
    y_t = C_t . h_t + D_d x_t

Memory: the pure-PyTorch scans materialise A_bar, B_bar x and h as (B, N, Di, S) tensors (1.7 GB
each in float32 at B = 2048, N = 50, Di = 128, S = 32), plus autograd's temporaries. Here the
forward pass keeps one (S,) state per (b, d) and saves only its inputs for the backward pass,
which recomputes the states of one (b, d) at a time into an (N + 1, S) buffer (6.5 KB at N = 50,
S = 32: in cache; fine for N up to a few hundred) and walks back through them. The largest
temporary is the (B, Di, S) per-row partial of dA.

Gradients, with g_t = dL/dy_t and G_t = dL/dh_t in total (G_N = 0)::

    G_t      = g_t C_t + A_bar_{t+1} G_{t+1}
    dx_t     = g_t D + Delta_t sum_s G_t B_t
    dDelta_t = sum_s G_t h_{t-1} A_bar_t A  +  x_t sum_s G_t B_t
    dA       = sum_{b,t} G_t h_{t-1} A_bar_t Delta_t          (A_bar = exp(Delta A))
    dB_t     = sum_d G_t Delta_t x_t,   dC_t = sum_d g_t h_t,   dD = sum_{b,t} g_t x_t

Determinism: the results do not depend on the thread count, bit for bit (tests/test_mamba.py and
tests/test_fused_scan.py compare 1 and 2 threads). The kernels run in parallel over batch rows
only, and every sum has a fixed order whatever the number of threads: the sums over channels (dB,
dC) are made by the one thread that owns the row, in channel order; the sums over rows (dA, dD)
are first written as per-row partials, then summed over rows in row order (in parallel over
channels). Numba's own parallel reductions are never used, and fastmath is off.

Numba runs as many threads as torch (``torch.get_num_threads()``, capped by numba's pool), on
its own ``workqueue`` threading layer: its OpenMP layer would share the OpenMP runtime torch runs
on, and setting numba's thread count there sets torch's too (a job configured for one thread
then ran on every core after its first scan). The kernels are compiled on first use for float32
and float64 and cached on disk (``cache=True``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import reduce
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

DTYPES = (torch.float32, torch.float64)
if "NUMBA_THREADING_LAYER" not in os.environ:  # a user's explicit choice stands
    numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]  # not OpenMP


@numba.njit(parallel=True, cache=True, fastmath=False)
def _forward(x: np.ndarray, delta: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
             d: np.ndarray, y: np.ndarray) -> None:
    """y <- the selective scan; shapes as in ``fused_selective_scan``."""
    batch, n, d_inner = x.shape
    d_state = a.shape[1]
    for row in numba.prange(batch):  # one row per task: nothing is shared between rows
        h = np.empty(d_state, dtype=x.dtype)  # (S,) the state of one channel
        for ch in range(d_inner):
            h[:] = 0
            for t in range(n):
                dt = delta[row, t, ch]
                dtx = dt * x[row, t, ch]
                out = x.dtype.type(0)
                for s in range(d_state):
                    h[s] = np.exp(dt * a[ch, s]) * h[s] + dtx * b[row, t, s]  # A_bar h + B_bar x
                    out += h[s] * c[row, t, s]  # C_t . h_t
                y[row, t, ch] = out + d[ch] * x[row, t, ch]


@numba.njit(parallel=True, cache=True, fastmath=False)
def _backward(x: np.ndarray, delta: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray,
              d: np.ndarray, grad_y: np.ndarray, grad_x: np.ndarray, grad_delta: np.ndarray,
              grad_b: np.ndarray, grad_c: np.ndarray, part_a: np.ndarray,
              part_d: np.ndarray) -> None:
    """Every gradient; dA and dD per row (``part_a`` (B, Di, S), ``part_d`` (B, Di))."""
    batch, n, d_inner = x.shape
    d_state = a.shape[1]
    for row in numba.prange(batch):
        hs = np.zeros((n + 1, d_state), dtype=x.dtype)  # hs[t + 1] = h_t; hs[0] = h_{-1} = 0
        decays = np.zeros((n + 1, d_state), dtype=x.dtype)  # decays[t] = A_bar_t; [n] = 0
        grad_h = np.empty(d_state, dtype=x.dtype)  # (S,) G_t
        grad_b[row] = 0  # (N, S): summed over channels below, in channel order
        grad_c[row] = 0
        for ch in range(d_inner):
            for t in range(n):  # recompute the states, as the forward pass did
                dt = delta[row, t, ch]
                dtx = dt * x[row, t, ch]
                for s in range(d_state):
                    decays[t, s] = np.exp(dt * a[ch, s])
                    hs[t + 1, s] = decays[t, s] * hs[t, s] + dtx * b[row, t, s]
            grad_h[:] = 0  # G_N = 0
            grad_a = part_a[row, ch]  # (S,) a view: dA of this row and channel
            grad_a[:] = 0
            grad_dd = x.dtype.type(0)
            for t in range(n - 1, -1, -1):
                g = grad_y[row, t, ch]
                dt = delta[row, t, ch]
                xt = x[row, t, ch]
                dtx = dt * xt
                gb = x.dtype.type(0)  # sum_s G_t B_t
                gha = x.dtype.type(0)  # sum_s G_t h_{t-1} A_bar_t A
                for s in range(d_state):
                    grad_h[s] = g * c[row, t, s] + decays[t + 1, s] * grad_h[s]  # G_t
                    gh = grad_h[s] * hs[t, s] * decays[t, s]  # G_t h_{t-1} A_bar_t
                    gb += grad_h[s] * b[row, t, s]
                    gha += gh * a[ch, s]
                    grad_a[s] += gh * dt
                    grad_b[row, t, s] += grad_h[s] * dtx
                    grad_c[row, t, s] += g * hs[t + 1, s]
                grad_x[row, t, ch] = g * d[ch] + dt * gb
                grad_delta[row, t, ch] = gha + xt * gb
                grad_dd += g * xt
            part_d[row, ch] = grad_dd


@numba.njit(parallel=True, cache=True, fastmath=False)
def _sum_rows(part_a: np.ndarray, part_d: np.ndarray, grad_a: np.ndarray,
              grad_d: np.ndarray) -> None:
    """grad_a (Di, S), grad_d (Di,) <- the per-row partials summed over rows, in row order."""
    batch, d_inner, d_state = part_a.shape
    for ch in numba.prange(d_inner):  # parallel over channels, each sum in one thread
        grad_d[ch] = 0
        grad_a[ch] = 0
        for row in range(batch):
            grad_d[ch] += part_d[row, ch]
            for s in range(d_state):
                grad_a[ch, s] += part_a[row, ch, s]


@contextmanager
def _torch_threads() -> Iterator[None]:
    """Run numba's kernels on as many threads as torch uses (this thread's setting restored)."""
    previous = numba.get_num_threads()
    pool = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # the pool's size
    numba.set_num_threads(min(torch.get_num_threads(), pool))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _np(t: Tensor) -> np.ndarray:
    return t.detach().numpy()  # zero-copy view


class _FusedSelectiveScan(torch.autograd.Function):
    """The fused kernels as an autograd function; saves only the inputs for the backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, delta: Tensor, a: Tensor, b: Tensor, c: Tensor,
                d: Tensor) -> Tensor:
        y = torch.empty_like(x)  # (B, N, Di)
        with _torch_threads():
            _forward(_np(x), _np(delta), _np(a), _np(b), _np(c), _np(d), _np(y))
        ctx.save_for_backward(x, delta, a, b, c, d)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor, ...]:
        x, delta, a, b, c, d = ctx.saved_tensors
        batch, _, d_inner = x.shape
        grad_y = grad_y.to(x.dtype).contiguous()  # (B, N, Di)
        grad_x, grad_delta = torch.empty_like(x), torch.empty_like(delta)  # (B, N, Di)
        grad_b, grad_c = torch.empty_like(b), torch.empty_like(c)  # (B, N, S)
        grad_a, grad_d = torch.empty_like(a), torch.empty_like(d)  # (Di, S), (Di,)
        part_a = x.new_empty(batch, d_inner, a.shape[1])  # (B, Di, S) dA per row
        part_d = x.new_empty(batch, d_inner)  # (B, Di) dD per row
        with _torch_threads():
            _backward(_np(x), _np(delta), _np(a), _np(b), _np(c), _np(d), _np(grad_y),
                      _np(grad_x), _np(grad_delta), _np(grad_b), _np(grad_c), _np(part_a),
                      _np(part_d))
            _sum_rows(_np(part_a), _np(part_d), _np(grad_a), _np(grad_d))
        return grad_x, grad_delta, grad_a, grad_b, grad_c, grad_d


def supports(*tensors: Tensor) -> bool:
    """Whether the fused kernel can take these inputs: all on the CPU, float32 or float64."""
    dtype = reduce(torch.promote_types, (t.dtype for t in tensors))
    return dtype in DTYPES and all(t.device.type == "cpu" for t in tensors)


def fused_selective_scan(x: Tensor, delta: Tensor, a: Tensor, b: Tensor, c: Tensor,
                         d: Tensor) -> Tensor:
    """x, delta (B, N, Di); a (Di, S); b, c (B, N, S); d (Di,) -> y (B, N, Di), on the CPU.

    The inputs are brought to one dtype (float32 or float64, see ``supports``) and made
    contiguous; autograd carries the gradients back through both.
    """
    if not supports(x, delta, a, b, c, d):
        raise ValueError("the fused scan needs CPU tensors of float32 or float64")
    dtype = reduce(torch.promote_types, (t.dtype for t in (x, delta, a, b, c, d)))
    inputs = [t.to(dtype).contiguous() for t in (x, delta, a, b, c, d)]
    y: Tensor = _FusedSelectiveScan.apply(*inputs)
    return y

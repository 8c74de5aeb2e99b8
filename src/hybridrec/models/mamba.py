"""The selective state-space model and the Mamba block (Gu and Dao 2023), in pure PyTorch.

Per channel c of the d_inner = expand * d channels, with state size S and x the block's input::

    Delta_t = softplus(W_dt (W_x x_t)[:R] + b_dt)       (B, N, d_inner)   R = ceil(d / 16)
    B_t, C_t = (W_x x_t)[R:R+S], (W_x x_t)[R+S:]        (B, N, S) each
    A = -exp(A_log)                                     (d_inner, S)
    A_bar_t = exp(Delta_t A),  B_bar_t x_t = Delta_t B_t x_t
    h_t = A_bar_t h_{t-1} + B_bar_t x_t,  h_{-1} = 0    (B, N, d_inner, S)
    y_t = C_t h_t + D x_t

The recurrence is a first-order linear scan, computed in one of four ways (``SCANS``):

- ``"fused"`` (default): on CPU tensors, the whole selective scan in one compiled numba kernel
  (fused_scan.py), in the design of Mamba's CUDA kernel: the state of one (row, channel) is kept
  as S numbers, no (B, N, d_inner, S) tensor is ever made, the backward pass recomputes the
  states, and the result does not depend on the thread count. On CUDA tensors (or below
  float32) it falls back to ``"sequential"``.
- ``"sequential"`` (the PyTorch fast path): a custom autograd function that updates h in place,
  one fused ``addcmul_`` per position forward and backward (``G_t = g_t + a_{t+1} G_{t+1}``),
  with no autograd node per step; it keeps only A_bar and h for the backward pass. It reads and
  writes each (B, N, d_inner, S) element once per direction, which makes it the fastest
  PyTorch form on the CPU (benchmarks/mamba_scan.py), despite its Python loop over N.
- ``"parallel"``: the same function with a Hillis-Steele scan, ceil(log2 N) whole-tensor steps
  and no Python loop over N; it moves about log2(N) times more memory (slower on the CPU), and
  is kept for GPUs, where a loop's kernel launches may cost more than the traffic (unmeasured).
- ``"reference"``: the readable loop over t, differentiated by autograd.

The last three run on CPU and CUDA; tests/test_mamba.py and tests/test_fused_scan.py check
that all four agree in values and gradients.

Padding (left-padded windows, 0 = padding, most recent item last): the convolution and the scan
run over the padded positions too, but masked. The convolution's input is zeroed there and so is
Delta, so A_bar = 1 and B_bar x = 0: the state stays exactly 0 through the padding and the first
real item starts from h = 0 with a zero-padded convolution window, as in the official
(right-padded) Mamba4Rec, where the padding comes after the items and is never read. Outputs at
real positions therefore do not depend on how much padding precedes them; outputs at padded
positions are garbage that no real position reads.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.models.layers import Dropout, FeedForward, LayerNorm

SCANS = ("fused", "sequential", "parallel", "reference")


def _scan_sequential_(a: Tensor, b: Tensor, reverse: bool = False) -> Tensor:
    """In place, b <- h: ``h_t = a_t h_{t-1} + b_t`` along dim 1, one position at a time.

    ``reverse=True`` runs from the end with the next position's a: ``h_t = a_{t+1} h_{t+1} + b_t``.
    """
    n = a.shape[1]
    if reverse:
        for t in range(n - 2, -1, -1):
            b[:, t].addcmul_(a[:, t + 1], b[:, t + 1])
    else:
        for t in range(1, n):
            b[:, t].addcmul_(a[:, t], b[:, t - 1])
    return b


def _scan_log_steps_(a: Tensor, b: Tensor) -> Tensor:
    """In place, b <- h by a Hillis-Steele scan (a is overwritten too): ceil(log2 N) steps.

    After step k, ``b[:, t]`` holds the recurrence over the window ``(t - 2^k, t]`` and
    ``a[:, t]`` the product of the a's over it.
    """
    n = a.shape[1]
    offset = 1
    while offset < n:
        b[:, offset:] += a[:, offset:] * b[:, :-offset]  # combine with the window before
        if 2 * offset < n:
            a[:, offset:] = a[:, offset:] * a[:, :-offset]
        offset *= 2
    return b


class _LinearScan(torch.autograd.Function):
    """``h_t = a_t h_{t-1} + b_t`` with its gradient by the same recurrence run from the end.

    With G_t = dL/dh_t in total: ``G_t = g_t + a_{t+1} G_{t+1}``, ``dL/db_t = G_t`` and
    ``dL/da_t = G_t h_{t-1}``.
    """

    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, parallel: bool) -> Tensor:
        h = b.clone(memory_format=torch.contiguous_format)
        if parallel:
            _scan_log_steps_(a.clone(), h)
        else:
            _scan_sequential_(a, h)
        ctx.parallel = parallel
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor, Tensor, None]:
        a, h = ctx.saved_tensors
        if ctx.parallel:  # the forward scan on the reversed sequence (flip copies)
            a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)  # 0 at the end
            grad_b = _scan_log_steps_(a_next.flip(1), grad_h.flip(1)).flip(1)
        else:
            grad_b = _scan_sequential_(a, grad_h.clone(memory_format=torch.contiguous_format),
                                       reverse=True)
        grad_a = torch.zeros_like(h)
        torch.mul(grad_b[:, 1:], h[:, :-1], out=grad_a[:, 1:])  # G_t h_{t-1}, h_{-1} = 0
        return grad_a, grad_b, None


def linear_scan(a: Tensor, b: Tensor, parallel: bool = False) -> Tensor:
    """Fast path: a, b (B, N, ...) -> h (B, N, ...), ``h_t = a_t h_{t-1} + b_t``, h_{-1} = 0."""
    h: Tensor = _LinearScan.apply(a, b, parallel)
    return h


def linear_scan_reference(a: Tensor, b: Tensor) -> Tensor:
    """Readable path: the same recurrence, one position at a time (autograd does the rest)."""
    h = torch.zeros_like(b[:, 0])  # (B, ...)
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1), strict=True):
        h = a_t * h + b_t
        states.append(h)
    return torch.stack(states, dim=1)  # (B, N, ...)


def selective_scan(x: Tensor, delta: Tensor, a: Tensor, b: Tensor, c: Tensor, d: Tensor,
                   scan: str = "fused") -> Tensor:
    """The selective SSM: x, delta (B, N, Di); a (Di, S); b, c (B, N, S); d (Di,) -> (B, N, Di).

    ``a`` is A = -exp(A_log) (negative), so every A_bar = exp(Delta A) lies in (0, 1].
    ``"fused"`` runs on CPU float32/float64 tensors only; elsewhere it is ``"sequential"``.
    """
    if scan not in SCANS:
        raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
    if scan == "fused":
        from hybridrec.models import fused_scan  # imports numba: only when first used

        if fused_scan.supports(x, delta, a, b, c, d):
            return fused_scan.fused_selective_scan(x, delta, a, b, c, d)  # (B, N, Di)
        scan = "sequential"  # CUDA (or half precision): the PyTorch fast path
    decay = torch.exp(delta.unsqueeze(-1) * a)  # A_bar: (B, N, Di, S)
    drive = (delta * x).unsqueeze(-1) * b.unsqueeze(2)  # B_bar x: (B, N, Di, S)
    if scan == "reference":
        h = linear_scan_reference(decay, drive)  # (B, N, Di, S)
    else:
        h = linear_scan(decay, drive, parallel=scan == "parallel")  # (B, N, Di, S)
    y = (h @ c.unsqueeze(-1)).squeeze(-1)  # C_t h_t: (B, N, Di)
    return y + x * d  # (B, N, Di)


class CausalDepthwiseConv(nn.Module):
    """Depthwise causal Conv1d over the sequence: ``y_t = b + sum_k w_k x_{t-K+1+k}`` per channel.

    Mamba's ``conv1d`` (groups = channels, padding K - 1, trimmed to N), written as K shifted
    multiply-adds in the (B, N, Di) layout, so no transpose to Conv1d's (B, Di, N) is needed
    (tests/test_mamba.py checks it equals ``F.conv1d``). Init as ``nn.Conv1d``'s default.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        bound = 1.0 / math.sqrt(kernel_size)  # kaiming_uniform(a=sqrt(5)) with fan_in = K
        self.weight = nn.Parameter(torch.empty(channels, kernel_size).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, Di)
        n = x.shape[1]
        padded = F.pad(x, (0, 0, self.kernel_size - 1, 0))  # (B, K - 1 + N, Di), zeros first
        y = self.bias.expand_as(x)
        for k in range(self.kernel_size):  # loop over the kernel taps, not over N
            y = y + padded[:, k:k + n] * self.weight[:, k]  # (B, N, Di)
        return y


class SelectiveSSM(nn.Module):
    """Delta, B, C from the input; A_log and D learned per channel (Mamba's S6 layer).

    Init as in Mamba: A = -(1, 2, ..., S) in every channel, D = 1. ``dt_proj``'s own init is
    overwritten by the model's ``init_weights`` (N(0, 0.02), zero bias), as in the official
    Mamba4Rec code, which applies its init to every Linear after building the Mamba layers.
    """

    def __init__(self, d_inner: int, d_state: int, dt_rank: int) -> None:
        super().__init__()
        self.d_state = d_state
        self.dt_rank = dt_rank
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)  # (Di, S)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(d_inner))
        self.scan = "fused"  # one of SCANS (tests and benchmarks switch it)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:  # x: (B, N, Di), keep: (B, N)
        dt, b, c = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt)) * keep.unsqueeze(-1)  # (B, N, Di); 0 at padding
        # the scan in float32 at least (under bf16 autocast too), as Mamba's kernel does
        dtype = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            a = -torch.exp(self.A_log.to(dtype))  # (Di, S)
            y = selective_scan(x.to(dtype), delta.to(dtype), a, b.to(dtype), c.to(dtype),
                               self.D.to(dtype), self.scan)  # (B, N, Di)
        return y.to(x.dtype)


class MambaBlock(nn.Module):
    """Mamba's mixer: ``W_out(SSM(silu(conv(W_in x))) * silu(W_z x))``, d -> d_inner -> d.

    Projections without bias, as in Mamba. ``conv`` replaces the width-``d_conv`` causal
    convolution (M2Rec's multi-scale one); ``M2RecBlock`` (m2rec.py) extends ``mix``.
    """

    def __init__(self, hidden_size: int, d_state: int, d_conv: int, expand: int,
                 conv: nn.Module | None = None) -> None:
        super().__init__()
        d_inner = expand * hidden_size
        self.in_proj = nn.Linear(hidden_size, 2 * d_inner, bias=False)  # x branch and gate z
        self.conv = CausalDepthwiseConv(d_inner, d_conv) if conv is None else conv
        self.ssm = SelectiveSSM(d_inner, d_state, dt_rank=math.ceil(hidden_size / 16))
        self.out_proj = nn.Linear(d_inner, hidden_size, bias=False)

    def mix(self, u: Tensor, keep: Tensor) -> Tensor:
        """The x branch after the input projection: (B, N, Di) -> (B, N, Di)."""
        u = self.conv(u * keep.unsqueeze(-1))  # (B, N, Di); padding enters as zeros
        return self.ssm(F.silu(u), keep)  # (B, N, Di)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:  # x: (B, N, d), keep: (B, N) bool
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, N, Di) each
        return self.out_proj(self.mix(u, keep) * F.silu(z))  # (B, N, d)


class MambaLayer(nn.Module):
    """Mamba4Rec's layer: ``h = LayerNorm(x + dropout(mixer(x)))``, then the FFN sublayer.

    As in the official code, the residual is dropped when the model has a single layer
    (``residual=False``: ``h = LayerNorm(dropout(mixer(x)))``); the paper (and REFERENCE.md)
    describe the residual, which ``residual=True`` keeps. The FFN is d -> 4d -> d with dropout
    after both dense layers, as in the official code.
    """

    def __init__(self, mixer: MambaBlock, hidden_size: int, inner_size: int,
                 dropout: float, residual: bool = True) -> None:
        super().__init__()
        self.mixer = mixer
        self.residual = residual
        self.dropout = Dropout(dropout)
        self.norm = LayerNorm(hidden_size)
        self.feed_forward = FeedForward(hidden_size, inner_size, dropout, inner_dropout=dropout)

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        mixed = self.dropout(self.mixer(x, keep))  # (B, N, d)
        h = self.norm(x + mixed if self.residual else mixed)  # (B, N, d)
        return self.feed_forward(h)  # (B, N, d)

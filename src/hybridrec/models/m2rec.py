"""M2Rec (arXiv 2505.04445): Mamba4Rec with a frequency filter, item text and a feature gate.

The paper's block, in each Mamba4Rec layer (its figure; our ``M2RecBlock``)::

    u, z = W_in x                                   (B, N, d_inner) each
    u = mean_k conv_k(u)                            depthwise causal, kernels 3/5/7 (multi-scale)
    u = irfft(W_f * rfft(u))                        FFT over the SEQUENCE axis, learned filter
    y = LayerNorm(SSM(silu(u)))                     the selective scan, then a LayerNorm
    out = W_out (y * silu(z))

and, after the layers, a gate over three feature streams at every position::

    temporal  h_T = the Mamba layers' output
    frequency h_F = FMLP-Rec's filter layer over the item embeddings
    semantic  h_S = LayerNorm(dropout(W_t e_i + b)), e_i the item's frozen text embedding
    h = sum_s g_s h_s,   g = softmax(W_g [h_T; h_F; h_S] + b_g)      (B, N, 3)

We reproduce the paper's description, not its released code (whose FFT runs over the channel
axis and whose text branch is computed and discarded). Where the paper is vague we chose, and each
choice sits behind a switch of :class:`M2RecConfig`:

- ``multi_scale``: the kernels' outputs are averaged (the paper does not say how they combine).
- ``fft``: the in-block filter is initialised to the identity (W_f = 1 + 0i), so training starts
  from the plain Mamba block; the frequency stream the gate needs is not defined in the paper,
  we take FMLP-Rec's filter layer (filter, dropout, residual, LayerNorm) over the embeddings. The
  switch turns off both. Padded positions enter every FFT as zeros.
- ``text``: projected text embeddings form their own stream (the paper does not say where they
  enter); ``text_dim: 0`` turns text off as well.
- ``gate``: one softmax weight per stream and position; without it the streams are averaged, and
  with a single stream there is nothing to gate.
- ``ssm_norm``: the LayerNorm after the scan drawn in the paper's figure.

With all five off M2Rec is exactly Mamba4Rec: the same parameters under the same names, and the
same outputs from the same state dict (tests/test_mamba.py).

Trimmed windows (``ignores_leading_padding``): every FFT runs over the full ``max_len`` window,
a trimmed one zero-padded back on the left (:func:`over_full_window`), exactly the zeros the
masked padding puts there in an untrimmed window; every other part is causal or position-wise
with the padding masked, so outputs at real positions do not depend on the leading padding.

Not causal with ``fft`` on: the FFT is a circular convolution over the whole window, so every
position sees later ones. Train it with the ``prefix`` objective, whose target is never in the
input window; the settings resolver refuses ``objective: causal`` (see :meth:`M2Rec.is_causal`).
With ``fft`` off every part is causal or position-wise, and ``causal`` is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.errors import ConfigError
from hybridrec.models import register_model
from hybridrec.models.fmlp import FilterLayer, spectral_filter
from hybridrec.models.layers import Dropout, LayerNorm, init_weights
from hybridrec.models.mamba import CausalDepthwiseConv, MambaBlock
from hybridrec.models.mamba4rec import Mamba4Rec, Mamba4RecConfig

SWITCHES = ("text", "fft", "multi_scale", "gate", "ssm_norm")


@dataclass(frozen=True)
class M2RecConfig(Mamba4RecConfig):
    """Mamba4Rec's hyperparameters plus the M2Rec parts, each behind a switch."""

    model_name: ClassVar[str] = "m2rec"

    text: bool = True  # semantic stream from frozen item text embeddings
    text_dim: int = 384  # width of those embeddings (all-MiniLM-L6-v2); 0 turns text off
    fft: bool = True  # frequency filter in the block and the frequency stream
    multi_scale: bool = True  # average of causal convolutions of widths conv_kernels
    conv_kernels: tuple[int, ...] = (3, 5, 7)  # used with multi_scale (else one of width d_conv)
    gate: bool = True  # learned softmax gate over the streams (else their mean)
    ssm_norm: bool = True  # LayerNorm after the selective scan

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in SWITCHES:
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"model 'm2rec': {key} must be a bool, "
                                  f"got {getattr(self, key)!r}")
        if isinstance(self.text_dim, bool) or not isinstance(self.text_dim, int) \
                or self.text_dim < 0:
            raise ConfigError(f"model 'm2rec': text_dim must be an int >= 0 (0 = no text), "
                              f"got {self.text_dim!r}")
        kernels = self.conv_kernels
        if not isinstance(kernels, list | tuple) or not kernels or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in kernels):
            raise ConfigError(f"model 'm2rec': conv_kernels must be a non-empty list of "
                              f"positive ints, got {kernels!r}")
        object.__setattr__(self, "conv_kernels", tuple(kernels))  # a YAML list -> tuple

    @property
    def uses_text(self) -> bool:
        return self.text and self.text_dim > 0


class MultiScaleConv(nn.Module):
    """Mean of depthwise causal convolutions of several widths: ``mean_k conv_k(x)``."""

    def __init__(self, channels: int, kernel_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(CausalDepthwiseConv(channels, k) for k in kernel_sizes)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, Di) -> (B, N, Di)
        return torch.stack([conv(x) for conv in self.convs]).mean(dim=0)


def over_full_window(x: Tensor, max_len: int, fn: Callable[[Tensor], Tensor]) -> Tensor:
    """``fn`` (a filter over the whole window) on a trimmed window (B, w, D), w <= max_len: left-pad
    zeros to max_len, apply, keep the last w positions."""
    width = x.shape[1]
    if width == max_len:
        return fn(x)
    return fn(F.pad(x, (0, 0, max_len - width, 0)))[:, max_len - width:]  # (B, w, D)


class M2RecBlock(MambaBlock):
    """The paper's block: Mamba's mixer with a frequency filter between the convolution and the
    scan and a LayerNorm after the scan (either may be off)."""

    def __init__(self, config: M2RecConfig) -> None:
        d_inner = config.expand * config.hidden_size
        conv = MultiScaleConv(d_inner, config.conv_kernels) if config.multi_scale else None
        super().__init__(config.hidden_size, config.d_state, config.d_conv, config.expand, conv)
        self.max_len = config.max_len
        self.frequency_weight: nn.Parameter | None = None
        if config.fft:
            # (1, N//2+1, Di, 2): real and imaginary parts, FMLP-Rec's layout; identity at init
            weight = torch.zeros(1, config.max_len // 2 + 1, d_inner, 2)
            weight[..., 0] = 1.0
            self.frequency_weight = nn.Parameter(weight)
        self.ssm_norm = LayerNorm(d_inner) if config.ssm_norm else None

    def mix(self, u: Tensor, keep: Tensor) -> Tensor:  # (B, N, Di) -> (B, N, Di)
        mask = keep.unsqueeze(-1)  # (B, N, 1)
        u = self.conv(u * mask)  # (B, N, Di)
        if (weight := self.frequency_weight) is not None:  # over the max_len window
            u = over_full_window(u * mask, self.max_len, lambda v: spectral_filter(v, weight))
        y = self.ssm(F.silu(u), keep)  # (B, N, Di)
        return y if self.ssm_norm is None else self.ssm_norm(y)


class TextProjection(nn.Module):
    """Frozen text vectors to the hidden size: ``LayerNorm(dropout(W e + b))``, e -> d."""

    def __init__(self, text_dim: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Linear(text_dim, hidden_size)
        self.dropout = Dropout(dropout)
        self.norm = LayerNorm(hidden_size)

    def forward(self, text: Tensor) -> Tensor:  # (B, N, text_dim) -> (B, N, d)
        return self.norm(self.dropout(self.proj(text)))


class FeatureGate(nn.Module):
    """``h = sum_s g_s h_s`` with ``g = softmax(W [h_1; ...; h_k] + b)`` at every position."""

    def __init__(self, hidden_size: int, streams: int) -> None:
        super().__init__()
        self.proj = nn.Linear(streams * hidden_size, streams)

    def forward(self, streams: list[Tensor]) -> Tensor:  # k x (B, N, d) -> (B, N, d)
        stacked = torch.stack(streams, dim=-2)  # (B, N, k, d)
        weights = self.proj(stacked.flatten(-2)).softmax(dim=-1)  # (B, N, k)
        return (weights.unsqueeze(-1) * stacked).sum(dim=-2)  # (B, N, d)


@register_model("m2rec")
class M2Rec(Mamba4Rec):
    """M2Rec as its paper describes it (module docstring); with every switch off, Mamba4Rec.

    ``item_text`` (num_items + 1, text_dim) is a non-persistent buffer: the frozen text is the
    embed_items stage's output, not a weight, so a state dict leaves it out (a saved model
    records its digest instead, :mod:`hybridrec.models.files`). Fill it with
    :meth:`set_item_text` before training (until then it holds zeros and the semantic stream is
    a constant).
    """

    config_class = M2RecConfig
    always_causal = False  # causal only with fft off: see is_causal
    needs_item_text = True
    item_text: Tensor

    def __init__(self, config: M2RecConfig) -> None:
        super().__init__(config)
        d = config.hidden_size
        self.frequency = FilterLayer(config.max_len, d, config.dropout) if config.fft else None
        self.semantic: TextProjection | None = None
        if config.uses_text:
            self.register_buffer("item_text", torch.zeros(config.num_items + 1, config.text_dim),
                                 persistent=False)
            self.semantic = TextProjection(config.text_dim, d, config.dropout)
        streams = 1 + config.fft + config.uses_text
        self.gate = FeatureGate(d, streams) if config.gate and streams > 1 else None
        for extra in (self.semantic, self.gate):  # the layers were initialised by Mamba4Rec
            if extra is not None:
                extra.apply(init_weights)

    @classmethod
    def is_causal(cls, architecture: Mapping[str, Any]) -> bool:
        return not cls.config_class(num_items=1, **architecture).fft

    @property
    def ignores_leading_padding(self) -> bool:
        """Every FFT runs over the full window (:func:`over_full_window`), the rest is causal or
        position-wise with the padding masked."""
        return True

    def make_mixer(self, config: Mamba4RecConfig) -> MambaBlock:
        assert isinstance(config, M2RecConfig)
        return M2RecBlock(config)

    def set_item_text(self, matrix: Tensor) -> None:
        """Copy in the frozen text embeddings: float (num_items + 1, text_dim), row 0 zeros,
        rows in the dataset's internal item ids. A model built without text keeps nothing."""
        if not self.config.uses_text:
            return
        expected = (self.num_items + 1, self.config.text_dim)
        if tuple(matrix.shape) != expected:
            raise ValueError(f"m2rec: item text matrix of shape {tuple(matrix.shape)}, expected "
                             f"{expected} (num_items + 1 rows, row 0 = padding; text_dim columns)")
        if not bool(torch.isfinite(matrix).all()):
            raise ValueError("m2rec: item text matrix has non-finite values")
        if bool(matrix[0].any()):
            raise ValueError("m2rec: row 0 of the item text matrix (the padding id) must be zeros")
        with torch.no_grad():
            self.item_text.copy_(matrix)

    def forward(self, seq: Tensor) -> Tensor:  # seq: (B, N <= max_len) left-padded
        if seq.shape[1] > self.max_len:
            raise ValueError(f"M2Rec takes windows of at most max_len={self.max_len} items "
                             f"(left-padded with 0), got {seq.shape[1]}")
        keep = seq != 0  # (B, N)
        x = self.embedding(seq)  # (B, N, d)
        streams = [self.encode(x, keep)]  # temporal: (B, N, d)
        if (frequency := self.frequency) is not None:  # over the max_len window: (B, N, d)
            streams.append(over_full_window(x * keep.unsqueeze(-1), self.max_len, frequency))
        if self.semantic is not None:
            streams.append(self.semantic(self.item_text[seq]))  # semantic: (B, N, d)
        if self.gate is not None:
            return self.gate(streams)  # (B, N, d)
        return streams[0] if len(streams) == 1 else torch.stack(streams).mean(dim=0)


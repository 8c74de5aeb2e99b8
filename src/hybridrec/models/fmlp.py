"""FMLP-Rec (Zhou et al., WWW '22): all-MLP blocks whose token mixing is a learnable FFT filter.

Block = filter layer ``LayerNorm(x + dropout(irfft(W * rfft(x))))`` along the sequence axis,
then the feed-forward sublayer d -> 4d (GELU, erf form) -> d. The official checkpoint layout is
mapped onto this module by :mod:`hybridrec.models.fmlp_official`.

Not causal, by design: the filter is a circular convolution over the whole window (see
``spectral_filter_reference``), so every position mixes every other, wrapping around; only the
last position (``last_hidden``) predicts the next item, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from hybridrec.models import register_model
from hybridrec.models.base import SequentialRecommender, check_hyperparameters
from hybridrec.models.layers import (
    INIT_STD,
    Dropout,
    FeedForward,
    LayerNorm,
    SequenceEmbedding,
    init_weights,
)


@dataclass(frozen=True)
class FMLPConfig:
    """Defaults: the FMLP-Rec paper's Beauty setting (d = 64, N = 50, dropout 0.5, 2 blocks)."""

    model_name: ClassVar[str] = "fmlp"

    num_items: int
    max_len: int = 50
    hidden_size: int = 64
    inner_size: int | None = None  # None: 4 * hidden_size, as in the official code
    n_layers: int = 2
    dropout: float = 0.5  # embeddings, filter output, FFN output

    def __post_init__(self) -> None:
        check_hyperparameters(self.model_name, self,
                              ints=("num_items", "max_len", "hidden_size", "n_layers"),
                              probabilities=("dropout",))
        if self.inner_size is not None:
            check_hyperparameters(self.model_name, self, ints=("inner_size",), probabilities=())

    @property
    def ffn_size(self) -> int:
        return 4 * self.hidden_size if self.inner_size is None else self.inner_size


def spectral_filter(x: Tensor, weight: Tensor) -> Tensor:
    """Fast path: ``irfft(rfft(x) * W)`` along the sequence axis, both transforms "ortho".

    x: (B, N, d) real; weight: (1, N // 2 + 1, d, 2) real and imaginary parts -> (B, N, d).
    Computed in float32 (cuFFT has no bfloat16 and needs powers of two in float16), returned in
    x's dtype. The complex product is written out in real parts: autograd's batch sum for a
    complex ``W`` depends on the CPU thread count, the real sums do not.
    """
    n = x.shape[1]
    dtype = torch.promote_types(x.dtype, torch.float32)  # float16/bfloat16 -> float32
    spectrum = torch.fft.rfft(x.to(dtype), dim=1, norm="ortho")  # (B, N//2+1, d) complex
    x_re, x_im = torch.view_as_real(spectrum).unbind(-1)  # (B, N//2+1, d) each
    w_re, w_im = weight.to(dtype).unbind(-1)  # (1, N//2+1, d) each
    filtered = torch.complex(x_re * w_re - x_im * w_im, x_re * w_im + x_im * w_re)
    return torch.fft.irfft(filtered, n=n, dim=1, norm="ortho").to(x.dtype)  # (B, N, d)


def spectral_filter_reference(x: Tensor, weight: Tensor) -> Tensor:
    """Readable path: the same filter as a circular convolution over the N positions.

    ``y[t] = sum_s h[(t - s) mod N] * x[s]`` per channel, with kernel ``h = irfft(W)`` (the two
    "ortho" factors cancel; irfft ignores the imaginary parts of the DC and Nyquist bins in both
    forms). Builds an explicit (N, N, d) circulant; for tests and reading only.
    """
    n = x.shape[1]
    dtype = torch.promote_types(x.dtype, torch.float32)
    kernel = torch.fft.irfft(torch.view_as_complex(weight.to(dtype))[0], n=n, dim=0)  # (N, d)
    t = torch.arange(n, device=x.device)
    circulant = kernel[(t[:, None] - t[None, :]) % n]  # (N, N, d): [t, s] -> h[(t - s) mod N]
    return torch.einsum("tsd,bsd->btd", circulant, x.to(dtype)).to(x.dtype)  # (B, N, d)


class FilterLayer(nn.Module):
    """Learnable frequency-domain filter, then dropout, residual and LayerNorm."""

    def __init__(self, max_len: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        # (1, N//2+1, d, 2): real and imaginary parts, the official layout and init N(0, 0.02)
        self.complex_weight = nn.Parameter(
            torch.randn(1, max_len // 2 + 1, hidden_size, 2) * INIT_STD
        )
        self.dropout = Dropout(dropout)
        self.norm = LayerNorm(hidden_size)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, d)
        y = spectral_filter(x, self.complex_weight)  # (B, N, d)
        return self.norm(x + self.dropout(y))  # (B, N, d)


class FMLPBlock(nn.Module):
    """Filter layer then feed-forward sublayer."""

    def __init__(self, config: FMLPConfig) -> None:
        super().__init__()
        self.filter = FilterLayer(config.max_len, config.hidden_size, config.dropout)
        self.feed_forward = FeedForward(config.hidden_size, config.ffn_size, config.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        return self.feed_forward(self.filter(x))


@register_model("fmlp")
class FMLPRec(SequentialRecommender):
    """FMLP-Rec, official architecture; windows must be exactly ``max_len`` long (the filter's
    frequency grid is sized to N)."""

    config_class = FMLPConfig

    def __init__(self, config: FMLPConfig) -> None:
        super().__init__(config)
        self.embedding = SequenceEmbedding(
            config.num_items, config.max_len, config.hidden_size, config.dropout
        )
        self.blocks = nn.ModuleList(FMLPBlock(config) for _ in range(config.n_layers))
        self.apply(init_weights)  # Linear, Embedding, LayerNorm; the filters keep their init

    @property
    def ignores_leading_padding(self) -> bool:
        """Never: the filter is a circular convolution over all N positions, padding included."""
        return False

    def forward(self, seq: Tensor) -> Tensor:  # seq: (B, N) left-padded
        if seq.shape[1] != self.max_len:
            raise ValueError(f"FMLP-Rec needs windows of exactly max_len={self.max_len} items "
                             f"(left-padded with 0), got {seq.shape[1]}")
        x = self.embedding(seq)  # (B, N, d)
        for block in self.blocks:
            x = block(x)  # (B, N, d)
        return x

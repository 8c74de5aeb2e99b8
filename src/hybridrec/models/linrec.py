"""LinRec (Liu et al., SIGIR '23): SASRec with each head's softmax replaced by ELU + L2 norm.

Per head (d_h = d / h): ``Qn = rho_1(elu(Q))``, ``Kn = rho_2(elu(K))`` and the output is
``Qn @ (Kn^T @ V)``: the (d_h, d_h) product is formed first, so cost and memory are linear in N
and no (N, N) matrix ever exists. Two normalisations (``norm``):

- ``"official"`` (default; the authors' code, which departs from Eq. 6): Q and K rows each
  L2-normalised over the head dim (every token unit norm), output divided by sqrt(d_h).
- ``"paper"`` (Eq. 6): Q rows normalised over the head dim and scaled by 1/sqrt(d_h); K columns
  normalised over the N positions and scaled by 1/sqrt(N). The paper is single-head, and its d
  is the length of the normalised Q row, which per head is d_h. With ``mask_padding`` its N is
  the number of real items of each sequence (the positions the columns are normalised over),
  so a sequence's output does not depend on how much padding its window carries; without it,
  padded slots are keys (as in the official code) and N is the window length.

Departures from the official code, each behind a switch whose other setting reproduces it:
``mask_padding=True`` zeroes padded positions' K and V (the official ignores the mask, so padded
slots add keys and values); ``causal=True`` gives every position only its past (official: the
non-causal sum over the window, read at the last position only). ``attn_dropout`` is accepted
for parity with SASRec's config but, as in the official code, never applied (there are no
attention probabilities to drop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from hybridrec.errors import ConfigError
from hybridrec.models import register_model
from hybridrec.models.layers import SelfAttentionSublayer
from hybridrec.models.sasrec import SASRec, SASRecConfig

NORMS = ("official", "paper")


@dataclass(frozen=True)
class LinRecConfig(SASRecConfig):
    """SASRec's hyperparameters (LinRec ML-1M defaults) plus the attention switches."""

    model_name: ClassVar[str] = "linrec"

    norm: str = "official"  # "official" | "paper" (Eq. 6)
    mask_padding: bool = True  # False: padded slots contribute K and V, as in the official code
    causal: bool = False  # True: position t sees positions <= t (all-positions objective)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.norm not in NORMS:
            raise ConfigError(f"model 'linrec': norm must be one of {NORMS}, got {self.norm!r}")
        for key in ("mask_padding", "causal"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"model 'linrec': {key} must be a bool, "
                                  f"got {getattr(self, key)!r}")
        if self.norm == "paper" and self.causal:
            raise ConfigError(
                "model 'linrec': norm='paper' cannot be causal: Eq. 6 normalises each key column "
                "over all N positions, so every output would depend on future items; use "
                "norm='official' (per-token keys) with causal=True, or causal=False"
            )


def l2_normalise(x: Tensor, dim: int) -> Tensor:
    """``x / ||x||_2`` along ``dim``.

    The official code has no epsilon. The clamp at the smallest normal float changes nothing
    unless a vector is exactly zero (a masked key, an all-padding column), where it gives 0
    instead of 0/0 = NaN.
    """
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True)
    return x / norm.clamp_min(torch.finfo(x.dtype).tiny)


def normalise_official(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
    """q, k: (B, h, N, d_h). Every query and key token unit-norm over the head dim.

    The official code divides the output by sqrt(d_h); the output is linear in Qn, so folding
    the factor into Qn is the same function.
    """
    qn = l2_normalise(q, dim=-1) / math.sqrt(q.shape[-1])  # (B, h, N, d_h)
    kn = l2_normalise(k, dim=-1)  # (B, h, N, d_h)
    return qn, kn


def normalise_paper(q: Tensor, k: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
    """q, k: (B, h, N, d_h); length: (B,) the sequence length of Eq. 6. Q rows over the head
    dim, / sqrt(d_h); K columns over the N positions, / sqrt(length)."""
    qn = l2_normalise(q, dim=-1) / math.sqrt(q.shape[-1])  # (B, h, N, d_h)
    scale = length.to(k.dtype).clamp_min(1.0).rsqrt()[:, None, None, None]  # (B, 1, 1, 1)
    kn = l2_normalise(k, dim=-2) * scale  # (B, h, N, d_h)
    return qn, kn


def elu_l2_features(q: Tensor, k: Tensor, v: Tensor, keep: Tensor, norm: str,
                    mask_padding: bool) -> tuple[Tensor, Tensor, Tensor]:
    """elu on Q and K, padded K and V rows zeroed (if ``mask_padding``), then the L2 norm.

    q, k, v: (B, h, N, d_h); keep: (B, N) bool -> (Qn, Kn, V), each (B, h, N, d_h). Masking
    comes before the norm so that Eq. 6's key columns are normalised over real items only, and
    scaled by the number of real items.
    """
    q, k = F.elu(q), F.elu(k)  # (B, h, N, d_h)
    if mask_padding:
        real = keep[:, None, :, None].to(k.dtype)  # (B, 1, N, 1)
        k, v = k * real, v * real  # (B, h, N, d_h)
    if norm == "official":
        qn, kn = normalise_official(q, k)
    else:  # Eq. 6's length: the real items, or the whole window when padded slots are keys
        length = keep.sum(dim=1) if mask_padding else torch.full_like(keep[:, 0], k.shape[-2],
                                                                      dtype=torch.long)
        qn, kn = normalise_paper(q, k, length)
    return qn, kn, v


def linear_attention(qn: Tensor, kn: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Fast path, linear in N. qn, kn, v: (B, h, N, d_h) -> (B, h, N, d_h).

    Non-causal: ``Qn @ (Kn^T @ V)``. Causal: ``out_t = q_t @ sum_{s <= t} k_s^T v_s``, a running
    sum of (d_h, d_h) outer products. Memory of the causal form: B * h * N * d_h^2 floats for the
    running state (kept for backward) plus as much transiently for the outer products: 105 MB
    each in float32 at B = 64, h = 8, N = 200, d_h = 16; linear in N but d_h times the size
    of V. A chunked scan (explicit C x C blocks, state carried across chunks) would cut it to
    B * h * (N / C) * d_h^2; not needed at d_h = 16.
    """
    if not causal:
        kv = kn.transpose(-2, -1) @ v  # (B, h, d_h, d_h)
        return qn @ kv  # (B, h, N, d_h)
    kv = torch.einsum("bhnd,bhne->bhnde", kn, v)  # (B, h, N, d_h, d_h)
    state = kv.cumsum(dim=2)  # (B, h, N, d_h, d_h): sum over s <= t
    return torch.einsum("bhnd,bhnde->bhne", qn, state)  # (B, h, N, d_h)


def linear_attention_reference(qn: Tensor, kn: Tensor, v: Tensor, causal: bool) -> Tensor:
    """Readable path: the explicit (N, N) matrix ``B' = Qn Kn^T`` of Eq. 3, then ``B' V``.

    Quadratic in N; for tests and reading only (the model uses it only when a test sets
    ``LinearSelfAttention.use_reference``).
    """
    scores = qn @ kn.transpose(-2, -1)  # (B, h, N, N)
    if causal:
        scores = scores.tril()  # (B, h, N, N): keys s <= t only
    return scores @ v  # (B, h, N, d_h)


class LinearSelfAttention(SelfAttentionSublayer):
    """LinRec attention sublayer (no attention dropout, as in the official code)."""

    def __init__(self, hidden_size: int, n_heads: int, dropout: float, norm: str,
                 mask_padding: bool, causal: bool) -> None:
        super().__init__(hidden_size, n_heads, dropout)
        self.norm_kind = norm
        self.mask_padding = mask_padding
        self.causal = causal
        self.use_reference = False  # tests switch to the explicit (N, N) path

    def mix(self, q: Tensor, k: Tensor, v: Tensor, keep: Tensor) -> Tensor:
        qn, kn, v = elu_l2_features(q, k, v, keep, self.norm_kind, self.mask_padding)
        attend = linear_attention_reference if self.use_reference else linear_attention
        return attend(qn, kn, v, self.causal)  # (B, h, N, d_h)


@register_model("linrec")
class LinRec(SASRec):
    """SASRec backbone (embedding, post-LN blocks, FFN) with LinRec attention in every block.

    With ``causal=False`` (default, as in the official code) only the last position is a
    prediction of the next item; read it with ``last_hidden``.
    """

    config_class = LinRecConfig
    always_causal = False  # only with causal=True

    @property
    def ignores_leading_padding(self) -> bool:
        """Only with ``mask_padding``: padded K, V rows are then zero, and Eq. 6 (``norm:
        paper``) scales keys by the number of real items; unmasked padded slots add keys and
        values."""
        config = self.config
        assert isinstance(config, LinRecConfig)
        return config.mask_padding

    def make_attention(self, config: SASRecConfig) -> SelfAttentionSublayer:
        assert isinstance(config, LinRecConfig)
        return LinearSelfAttention(
            config.hidden_size, config.n_heads, config.dropout,
            config.norm, config.mask_padding, config.causal,
        )

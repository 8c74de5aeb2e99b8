"""SASRec: causal softmax self-attention, the quadratic baseline (RecBole's post-LN layout).

Block = ``LayerNorm(x + dropout(W_o softmax(QK^T/sqrt(d_h) + mask) V))`` then
``LayerNorm(h + dropout(W2 gelu(W1 h)))``; the embedding block is item + position, LayerNorm,
dropout. The mask is causal and hides padded keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hybridrec.errors import ConfigError
from hybridrec.models import register_model
from hybridrec.models.base import SequentialRecommender, check_hyperparameters
from hybridrec.models.layers import (
    Dropout,
    FeedForward,
    SelfAttentionSublayer,
    SequenceEmbedding,
    TransformerBlock,
    init_weights,
)


@dataclass(frozen=True)
class SASRecConfig:
    """Defaults: the LinRec paper's ML-1M setting (shared by SASRec and LinRec)."""

    model_name: ClassVar[str] = "sasrec"

    num_items: int
    max_len: int = 200
    hidden_size: int = 128
    inner_size: int = 256
    n_layers: int = 2
    n_heads: int = 8
    dropout: float = 0.2  # embeddings, attention output, FFN output
    attn_dropout: float = 0.2  # on the attention probabilities

    def __post_init__(self) -> None:
        check_hyperparameters(
            self.model_name, self,
            ints=("num_items", "max_len", "hidden_size", "inner_size", "n_layers", "n_heads"),
            probabilities=("dropout", "attn_dropout"),
        )
        if self.hidden_size % self.n_heads:
            raise ConfigError(f"model {self.model_name!r}: hidden_size={self.hidden_size} is not "
                              f"a multiple of n_heads={self.n_heads} (each head takes "
                              "hidden_size / n_heads dimensions)")


def causal_padding_mask(keep: Tensor) -> Tensor:
    """keep: (B, N) bool -> allowed: (B, 1, N, N) bool, True where query i may attend to key j.

    j <= i and j is a real item. A padded query (whose keys are all padding under left padding)
    attends to itself only, so no row is empty and softmax never sees a row of -inf; RecBole
    instead adds -10000 and gets uniform weights there. Real positions are identical either way,
    and padded positions never reach a real one (their keys are hidden in every layer).
    """
    n = keep.shape[1]
    causal = torch.ones(n, n, dtype=torch.bool, device=keep.device).tril()  # (N, N)
    diagonal = torch.eye(n, dtype=torch.bool, device=keep.device)  # (N, N)
    return causal & (keep[:, None, None, :] | diagonal)  # (B, 1, N, N)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor,
                      dropout_p: float = 0.0) -> Tensor:
    """Fast path: fused ``scaled_dot_product_attention`` (flash / memory-efficient kernels).

    q, k, v: (B, h, N, d_h); allowed: (B, 1, N, N) bool -> (B, h, N, d_h).
    """
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


def softmax_attention_reference(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor,
                                dropout: nn.Module | None = None) -> Tensor:
    """Readable path: the explicit (B, h, N, N) attention matrix, as written in the paper."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, N, N)
    scores = scores.masked_fill(~allowed, float("-inf"))  # (B, h, N, N)
    probs = scores.softmax(dim=-1)  # (B, h, N, N)
    if dropout is not None:
        probs = dropout(probs)
    return probs @ v  # (B, h, N, d_h)


class SoftmaxSelfAttention(SelfAttentionSublayer):
    """Causal multi-head softmax attention with padded keys masked and attention dropout.

    ``use_sdpa`` picks the fused kernel (default) or the readable reference; both compute the
    same function (tests/test_models.py checks it).
    """

    def __init__(self, hidden_size: int, n_heads: int, dropout: float,
                 attn_dropout: float) -> None:
        super().__init__(hidden_size, n_heads, dropout)
        self.attn_dropout = Dropout(attn_dropout)
        self.use_sdpa = True

    def mix(self, q: Tensor, k: Tensor, v: Tensor, keep: Tensor) -> Tensor:
        allowed = causal_padding_mask(keep)  # (B, 1, N, N)
        if self.use_sdpa:
            p = self.attn_dropout.p if self.training else 0.0
            return softmax_attention(q, k, v, allowed, dropout_p=p)  # (B, h, N, d_h)
        return softmax_attention_reference(q, k, v, allowed, self.attn_dropout)


@register_model("sasrec")
class SASRec(SequentialRecommender):
    """SASRec (Kang & McAuley 2018) in RecBole's layout; causal, so every position is usable."""

    config_class = SASRecConfig
    always_causal = True

    def __init__(self, config: SASRecConfig) -> None:
        super().__init__(config)
        self.embedding = SequenceEmbedding(
            config.num_items, config.max_len, config.hidden_size, config.dropout
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                self.make_attention(config),
                FeedForward(config.hidden_size, config.inner_size, config.dropout),
            )
            for _ in range(config.n_layers)
        )
        self.apply(init_weights)

    @property
    def ignores_leading_padding(self) -> bool:
        """Padded keys are masked in every layer, and a padded query attends to itself only."""
        return True

    def make_attention(self, config: SASRecConfig) -> SelfAttentionSublayer:
        return SoftmaxSelfAttention(
            config.hidden_size, config.n_heads, config.dropout, config.attn_dropout
        )

    def forward(self, seq: Tensor) -> Tensor:  # seq: (B, N) left-padded
        keep = seq != 0  # (B, N)
        x = self.embedding(seq)  # (B, N, d)
        for block in self.blocks:
            x = block(x, keep)  # (B, N, d)
        return x

"""Pieces shared by every model: LayerNorm, feed-forward sublayer, embedding block, init.

Every model is post-LN (BERT/RecBole/FMLP-Rec style): ``x = LayerNorm(x + dropout(f(x)))`` (the
official single-layer Mamba4Rec drops the residual, :class:`hybridrec.models.mamba.MambaLayer`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_NORM_EPS = 1e-12
INIT_STD = 0.02


class LayerNorm(nn.LayerNorm):
    """LayerNorm with eps 1e-12: ``(x - mean) / sqrt(var + eps) * w + b``, biased variance.

    The official FMLP-Rec/RecBole formula; only the default eps differs from torch's 1e-5. The
    affine step is applied outside torch's kernel: on the CPU its fused backward sums the
    gradients of ``w`` and ``b`` in per-thread chunks, so they depended on the thread count
    and ``--cores 1`` and ``--cores 8`` trained different weights; autograd's sums of the
    separate ``addcmul`` do not.
    """

    def __init__(self, hidden_size: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__(hidden_size, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        normalized = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        return torch.addcmul(self.bias, normalized, self.weight)


class Dropout(nn.Module):
    """Inverted dropout: keep each element with probability 1 - p and scale it by 1 / (1 - p).

    Same distribution as ``nn.Dropout``, drawn as one uniform tensor and a comparison: torch's
    CPU kernel draws with ``bernoulli_``, which at FMLP-Rec's shapes (256 x 50 x 64) is 2.5x
    slower forward and backward, and FMLP-Rec spends a quarter of a CPU step in dropout.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand_like(x) >= self.p
        return x * keep * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class FeedForward(nn.Module):
    """Position-wise FFN sublayer: ``LayerNorm(x + dropout(W2 inner_dropout(gelu(W1 x))))``.

    d -> inner -> d. GELU is the erf form (``F.gelu`` default), as in the official FMLP-Rec and
    RecBole code; like them, there is no dropout between the two dense layers by default
    (``inner_dropout=0``); Mamba4Rec's official FFN has one (``inner_dropout=dropout``).
    """

    def __init__(self, hidden_size: int, inner_size: int, dropout: float,
                 inner_dropout: float = 0.0) -> None:
        super().__init__()
        self.dense_1 = nn.Linear(hidden_size, inner_size)
        self.dense_2 = nn.Linear(inner_size, hidden_size)
        self.inner_dropout = Dropout(inner_dropout)
        self.dropout = Dropout(dropout)
        self.norm = LayerNorm(hidden_size)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, N, d)
        h = self.inner_dropout(F.gelu(self.dense_1(x)))  # (B, N, inner)
        h = self.dropout(self.dense_2(h))  # (B, N, d)
        return self.norm(x + h)  # (B, N, d)


class SequenceEmbedding(nn.Module):
    """Item embedding (row 0 = padding) + learned position embedding, LayerNorm, dropout.

    Positions are right-aligned: the most recent item (index n - 1 of a left-padded window of
    length n <= max_len) always gets position ``max_len - 1``. For n == max_len this is the usual
    ``arange(N)``; for a shorter window it keeps every real item's position unchanged, so a window
    that only drops leading padding describes the same sequence.

    ``positions=False`` leaves the position table out (Mamba4Rec: its recurrence already knows
    the order); ``dropout_first=True`` applies dropout before the LayerNorm, as Mamba4Rec does.
    """

    def __init__(self, num_items: int, max_len: int, hidden_size: int, dropout: float,
                 positions: bool = True, dropout_first: bool = False) -> None:
        super().__init__()
        self.max_len = max_len
        self.dropout_first = dropout_first
        self.item_embeddings = nn.Embedding(num_items + 1, hidden_size, padding_idx=0)
        self.position_embeddings = nn.Embedding(max_len, hidden_size) if positions else None
        self.norm = LayerNorm(hidden_size)
        self.dropout = Dropout(dropout)

    def forward(self, seq: Tensor) -> Tensor:  # seq: (B, n) int64, left-padded with 0
        n = seq.shape[1]
        if n > self.max_len:
            raise ValueError(f"sequence window {n} is longer than max_len={self.max_len}")
        x = self.item_embeddings(seq)  # (B, n, d)
        if self.position_embeddings is not None:
            positions = torch.arange(self.max_len - n, self.max_len, device=seq.device)  # (n,)
            x = x + self.position_embeddings(positions)  # (B, n, d)
        if self.dropout_first:
            return self.norm(self.dropout(x))  # (B, n, d)
        return self.dropout(self.norm(x))  # (B, n, d)


def init_weights(module: nn.Module) -> None:
    """Official init (use with ``model.apply``): Linear/Embedding N(0, 0.02), zero biases,
    LayerNorm weight 1 / bias 0, and the padding row of an embedding set to zero.

    Departure: RecBole and FMLP-Rec overwrite the padding row with N(0, 0.02) as well (it then
    never trains); a zero row keeps padded positions' item term out of the sum and gives the
    padding column of the logits a constant 0.
    """
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def split_heads(x: Tensor, n_heads: int) -> Tensor:
    """(B, N, d) -> (B, h, N, d/h)."""
    b, n, d = x.shape
    return x.view(b, n, n_heads, d // n_heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, h, N, d/h) -> (B, N, d)."""
    b, h, n, dh = x.shape
    return x.transpose(1, 2).reshape(b, n, h * dh)


class SelfAttentionSublayer(nn.Module):
    """Multi-head self-attention sublayer; subclasses say how heads mix positions (``mix``).

    ``LayerNorm(x + dropout(W_o merge(mix(Q, K, V))))`` with per-head Q, K, V projections, as in
    RecBole's ``MultiHeadAttention`` (post-LN).
    """

    def __init__(self, hidden_size: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if hidden_size % n_heads != 0:
            raise ValueError(f"hidden_size={hidden_size} is not a multiple of n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_size = hidden_size // n_heads
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = Dropout(dropout)
        self.norm = LayerNorm(hidden_size)

    def mix(self, q: Tensor, k: Tensor, v: Tensor, keep: Tensor) -> Tensor:
        """q, k, v: (B, h, N, d_h); keep: (B, N) bool, False at padding -> (B, h, N, d_h)."""
        raise NotImplementedError

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:  # x: (B, N, d), keep: (B, N)
        q = split_heads(self.query(x), self.n_heads)  # (B, h, N, d_h)
        k = split_heads(self.key(x), self.n_heads)  # (B, h, N, d_h)
        v = split_heads(self.value(x), self.n_heads)  # (B, h, N, d_h)
        context = merge_heads(self.mix(q, k, v, keep))  # (B, N, d)
        return self.norm(x + self.dropout(self.dense(context)))  # (B, N, d)


class TransformerBlock(nn.Module):
    """Attention sublayer then feed-forward sublayer."""

    def __init__(self, attention: SelfAttentionSublayer, feed_forward: FeedForward) -> None:
        super().__init__()
        self.attention = attention
        self.feed_forward = feed_forward

    def forward(self, x: Tensor, keep: Tensor) -> Tensor:  # (B, N, d) -> (B, N, d)
        return self.feed_forward(self.attention(x, keep))

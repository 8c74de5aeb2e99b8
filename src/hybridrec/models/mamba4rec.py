"""Mamba4Rec (Liu et al., 2024): Mamba layers over item embeddings, no attention, no positions.

Item embedding -> dropout -> LayerNorm -> n_layers x (``LayerNorm(x + dropout(Mamba(x)))``,
then ``LayerNorm(h + dropout(W2 dropout(gelu(W1 h))))``) -> the hidden state at the last position
scores every item by a dot product with the tied item embeddings. No position embedding: the
causal convolution and the recurrence already see the order. With a single layer the official
code drops the Mamba sublayer's residual (``LayerNorm(dropout(Mamba(x)))``); so do we by
default, and ``single_layer_residual: true`` keeps it, as the paper's description reads.

Causal by construction (depthwise causal convolution, left-to-right scan, position-wise rest), so
every position is a prediction of the next item and the ``causal`` objective is allowed.
Left-padded windows: the padding is masked inside the Mamba block (see
:mod:`hybridrec.models.mamba`), so the outputs at real positions do not depend on it, and
training and evaluation run on trimmed windows (``ignores_leading_padding``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from hybridrec.errors import ConfigError
from hybridrec.models import register_model
from hybridrec.models.base import SequentialRecommender, check_hyperparameters
from hybridrec.models.layers import SequenceEmbedding, init_weights
from hybridrec.models.mamba import MambaBlock, MambaLayer


@dataclass(frozen=True)
class Mamba4RecConfig:
    """Defaults: the Mamba4Rec paper's setting (d = 64, 1 layer, dropout 0.2, S = 32, K = 4)."""

    model_name: ClassVar[str] = "mamba4rec"

    num_items: int
    max_len: int = 50
    hidden_size: int = 64
    inner_size: int | None = None  # None: 4 * hidden_size, as in the official code
    n_layers: int = 1
    dropout: float = 0.2  # embeddings, Mamba output, FFN (both dense layers)
    d_state: int = 32  # S, the SSM state size per channel
    d_conv: int = 4  # K, the causal convolution's width
    expand: int = 2  # d_inner = expand * hidden_size
    single_layer_residual: bool = False  # official: no Mamba residual when n_layers == 1

    def __post_init__(self) -> None:
        check_hyperparameters(
            self.model_name, self,
            ints=("num_items", "max_len", "hidden_size", "n_layers", "d_state", "d_conv",
                  "expand"),
            probabilities=("dropout",))
        if self.inner_size is not None:
            check_hyperparameters(self.model_name, self, ints=("inner_size",), probabilities=())
        if not isinstance(self.single_layer_residual, bool):
            raise ConfigError(f"model {self.model_name!r}: single_layer_residual must be a "
                              f"bool, got {self.single_layer_residual!r}")

    @property
    def ffn_size(self) -> int:
        return 4 * self.hidden_size if self.inner_size is None else self.inner_size


@register_model("mamba4rec")
class Mamba4Rec(SequentialRecommender):
    """Mamba4Rec, official architecture (``single_layer_residual`` departs on request)."""

    config_class = Mamba4RecConfig
    always_causal = True

    def __init__(self, config: Mamba4RecConfig) -> None:
        super().__init__(config)
        self.embedding = SequenceEmbedding(config.num_items, config.max_len, config.hidden_size,
                                           config.dropout, positions=False, dropout_first=True)
        residual = config.n_layers > 1 or config.single_layer_residual
        self.layers = nn.ModuleList(
            MambaLayer(self.make_mixer(config), config.hidden_size, config.ffn_size,
                       config.dropout, residual)
            for _ in range(config.n_layers))
        self.apply(init_weights)  # Linear N(0, 0.02) with zero bias, as the official code does

    @property
    def ignores_leading_padding(self) -> bool:
        """Padding enters the convolution as zeros and leaves the state at 0 (mamba.py)."""
        return True

    def make_mixer(self, config: Mamba4RecConfig) -> MambaBlock:
        return MambaBlock(config.hidden_size, config.d_state, config.d_conv, config.expand)

    def encode(self, x: Tensor, keep: Tensor) -> Tensor:
        """The Mamba layers: embedded window (B, N, d), keep (B, N) -> (B, N, d)."""
        for layer in self.layers:
            x = layer(x, keep)  # (B, N, d)
        return x

    def forward(self, seq: Tensor) -> Tensor:  # seq: (B, N) left-padded
        keep = seq != 0  # (B, N)
        return self.encode(self.embedding(seq), keep)  # (B, N, d)

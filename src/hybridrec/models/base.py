"""The interface every sequential recommender implements (docs/contracts.md, "Models")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from hybridrec.errors import ConfigError
from hybridrec.models.layers import SequenceEmbedding


class SequentialRecommender(nn.Module):
    """Maps a left-padded item window (B, N) to hidden states (B, N, d).

    ``seq`` holds internal item ids, 0 = padding, the most recent item at index N - 1. Scores
    over the catalogue come from the tied item embeddings: ``logits = hidden @ E.T`` with
    ``E = item_embeddings.weight`` of shape (num_items + 1, d); column 0 is the padding id.
    Subclasses set ``config_class`` (a dataclass with ``num_items`` and the hyperparameters),
    build ``self.embedding`` (a :class:`SequenceEmbedding`) and implement ``forward``.
    """

    config_class: ClassVar[type[Any]]
    # True where position t never sees positions > t, so every position can be trained at once
    # (the ``causal`` objective); models with a ``causal`` switch are causal when it is on.
    always_causal: ClassVar[bool] = False
    # True where the model reads frozen item text embeddings (``set_item_text``), which the
    # pipeline then loads for it.
    needs_item_text: ClassVar[bool] = False
    embedding: SequenceEmbedding

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config
        self.num_items: int = config.num_items
        self.max_len: int = config.max_len
        self.hidden_size: int = config.hidden_size

    @classmethod
    def is_causal(cls, architecture: Mapping[str, Any]) -> bool:
        """Whether the model built with these hyperparameters is causal (``always_causal``
        unless a subclass says otherwise)."""
        return cls.always_causal

    @property
    def ignores_leading_padding(self) -> bool:
        """True when hidden states at real positions do not depend on how many padding columns
        lead the window, so training may drop all-padding leading columns
        (:mod:`hybridrec.training.trimming`). False unless a model proves otherwise."""
        return False

    @property
    def item_embeddings(self) -> nn.Embedding:
        """(num_items + 1, d) item table shared by the input layer and the output scores."""
        return self.embedding.item_embeddings

    def forward(self, seq: Tensor) -> Tensor:  # (B, N) -> (B, N, d)
        raise NotImplementedError

    def set_item_text(self, matrix: Tensor) -> None:
        """Frozen item text embeddings (num_items + 1, text_dim), for ``needs_item_text``."""
        raise TypeError(f"{type(self).__name__} takes no item text")

    def logits(self, hidden: Tensor) -> Tensor:
        """(..., d) -> (..., num_items + 1): dot product with every item embedding."""
        return hidden @ self.item_embeddings.weight.T

    def last_hidden(self, seq: Tensor) -> Tensor:
        """(B, N) -> (B, d): hidden state at the most recent position N - 1."""
        return self.forward(seq)[:, -1, :]


def check_hyperparameters(model: str, config: Any, *, ints: tuple[str, ...],
                          probabilities: tuple[str, ...]) -> None:
    """Raise ``ConfigError`` naming the model and key if a value is out of range."""
    for key in ints:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"model {model!r}: {key} must be a positive int, got {value!r}")
    for key in probabilities:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
            raise ConfigError(f"model {model!r}: {key} must be a float in [0, 1), got {value!r}")

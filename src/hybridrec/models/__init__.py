"""models stage of hybridrec: sequential recommenders by name (docs/contracts.md, "Models").

    model = build_model("linrec", num_items=3706, max_len=200, norm="official")
    hidden = model(seq)                         # (B, N, d); seq left-padded with 0
    scores = model.logits(model.last_hidden(seq))  # (B, num_items + 1)

Each model class has a frozen ``config_class`` dataclass; its fields (less ``num_items``) are the
hyperparameters ``build_model`` accepts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from hybridrec.errors import ConfigError

if TYPE_CHECKING:
    from hybridrec.models.base import SequentialRecommender

T = TypeVar("T", bound="type[SequentialRecommender]")

MODELS: dict[str, type[SequentialRecommender]] = {}


def register_model(name: str) -> Callable[[T], T]:
    """Class decorator: make a ``SequentialRecommender`` subclass buildable as ``name``."""

    def decorate(cls: T) -> T:
        if name in MODELS:
            raise ValueError(f"model name {name!r} is already registered to {MODELS[name]!r}")
        MODELS[name] = cls
        return cls

    return decorate


def hyperparameter_names(name: str) -> list[str]:
    """The hyperparameters model ``name`` accepts (its config fields other than num_items)."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    cls: Any = MODELS[name]
    return [f.name for f in dataclasses.fields(cls.config_class) if f.name != "num_items"]


def build_model(name: str, num_items: int, **hyperparameters: Any) -> SequentialRecommender:
    """Build model ``name`` for ``num_items`` items (ids 1..num_items, 0 = padding).

    Unknown hyperparameter names and out-of-range values raise ``ConfigError`` naming the
    model and the key; omitted ones take the defaults of the model's config dataclass.
    """
    allowed = hyperparameter_names(name)
    unknown = sorted(set(hyperparameters) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown hyperparameter(s) {unknown}; "
                          f"accepted: {allowed}")
    cls: Any = MODELS[name]
    model: SequentialRecommender = cls(cls.config_class(num_items=num_items, **hyperparameters))
    return model


# The model modules register themselves on import (they import register_model from here).
from hybridrec.models.base import SequentialRecommender  # noqa: E402
from hybridrec.models.fmlp import FMLPConfig, FMLPRec  # noqa: E402
from hybridrec.models.fmlp_official import (  # noqa: E402
    load_official_fmlp_checkpoint,
    load_official_fmlp_state_dict,
)
from hybridrec.models.linrec import LinRec, LinRecConfig  # noqa: E402
from hybridrec.models.m2rec import M2Rec, M2RecConfig  # noqa: E402
from hybridrec.models.mamba4rec import Mamba4Rec, Mamba4RecConfig  # noqa: E402
from hybridrec.models.sasrec import SASRec, SASRecConfig  # noqa: E402

__all__ = [
    "MODELS",
    "FMLPConfig",
    "FMLPRec",
    "LinRec",
    "LinRecConfig",
    "M2Rec",
    "M2RecConfig",
    "Mamba4Rec",
    "Mamba4RecConfig",
    "SASRec",
    "SASRecConfig",
    "SequentialRecommender",
    "build_model",
    "hyperparameter_names",
    "load_official_fmlp_checkpoint",
    "load_official_fmlp_state_dict",
    "register_model",
]

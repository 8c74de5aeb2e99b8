"""The trained-model file ``model.pt``: what builds the model, and its weights per selection.

One file per trained model, written by the train job and read by evaluation, the results bundle
and ``weights_from`` runs (docs/contracts.md, "Models")::

    {"format": 2, "name": "linrec", "num_items": 12101,
     "architecture": {...},            # build_model's hyperparameters
     "training": {...},                # the model's training settings (lr, loss, patience, ...)
     "primary": "full",                # evaluation.protocol: the selection Table III reads
     "selections": {"full": {"epoch": 19, "metrics": {...}}, "pop100": {...}, ...},
     "weights": {"19": state_dict, "21": state_dict},   # one per distinct selected epoch
     "epochs_run": 29, "seconds": 5626.0, "stopped_early": True,
     "item_text": "<sha256>" | None,   # the frozen item text a text-aware model trained with
     "provenance": "<json>"}           # inside a job: the train job's provenance record

A selection is a validation protocol: training keeps the best epoch under each protocol it is
evaluated under (:mod:`hybridrec.training.loop`), so the file holds one state dict per distinct
best epoch. No optimiser state. Frozen item text is not stored (it is the embed_items stage's
output, rebuilt from the dataset): its digest is, and :meth:`SavedModel.build` refuses text
that differs. Every value is a tensor or plain Python, so the file loads with
``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hybridrec.errors import HybridrecError
from hybridrec.io import atomic_path
from hybridrec.models import build_model
from hybridrec.models.base import SequentialRecommender

FORMAT = 2


@dataclass(frozen=True)
class Selection:
    """The best epoch under one validation protocol and its validation metrics."""

    epoch: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class SavedModel:
    """A trained model as stored: how to build it and the weights of each selection."""

    name: str
    num_items: int
    architecture: dict[str, Any]
    training: dict[str, Any]
    primary: str
    selections: dict[str, Selection]
    weights: dict[int, dict[str, torch.Tensor]] = field(repr=False)
    epochs_run: int
    seconds: float
    stopped_early: bool
    item_text: str | None = None
    provenance: str | None = None

    def __post_init__(self) -> None:
        if self.primary not in self.selections:
            raise ValueError(f"primary selection {self.primary!r} not among "
                             f"{sorted(self.selections)}")
        missing = {s.epoch for s in self.selections.values()} - set(self.weights)
        if missing:
            raise ValueError(f"no weights for the selected epochs {sorted(missing)}")

    def epoch_of(self, protocol: str | None = None) -> int:
        """The epoch selected under ``protocol`` (None: the primary one)."""
        protocol = self.primary if protocol is None else protocol
        if protocol not in self.selections:
            raise KeyError(f"{self.name} was selected under {sorted(self.selections)}, "
                           f"not under {protocol!r}: retrain it with {protocol!r} among the "
                           "validation protocols (evaluation.protocols)")
        return self.selections[protocol].epoch

    def build(self, protocol: str | None = None, *, item_text: torch.Tensor | None = None,
              device: str | torch.device = "cpu") -> SequentialRecommender:
        """The model with the weights selected under ``protocol``, in eval mode on ``device``.

        A text-aware model needs ``item_text``, which must be the text it was trained with.
        """
        model = build_model(self.name, self.num_items, **self.architecture)
        if self.item_text is not None:
            if item_text is None:
                raise HybridrecError(f"{self.name} reads frozen item text: pass the item "
                                     "embeddings it was trained with")
            if (digest := text_digest(item_text)) != self.item_text:
                raise HybridrecError(
                    f"{self.name}: the item embeddings given (sha256 {digest[:12]}) are not "
                    f"those it was trained with ({self.item_text[:12]}): rebuild them with the "
                    "same text.encoder and item text")
            model.set_item_text(item_text)
        model.load_state_dict(self.weights[self.epoch_of(protocol)])  # strict: every key
        return model.to(device).eval()

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "name": self.name, "num_items": self.num_items,
            "architecture": self.architecture, "training": self.training,
            "primary": self.primary,
            "selections": {k: {"epoch": s.epoch, "metrics": s.metrics}
                           for k, s in self.selections.items()},
            "weights": {str(epoch): state for epoch, state in self.weights.items()},
            "epochs_run": self.epochs_run, "seconds": self.seconds,
            "stopped_early": self.stopped_early, "item_text": self.item_text,
            **({"provenance": self.provenance} if self.provenance is not None else {}),
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], source: str | Path) -> SavedModel:
        if payload.get("format") != FORMAT:
            raise HybridrecError(f"{source}: not a hybridrec model file of format {FORMAT} "
                                 f"(format {payload.get('format')!r}); retrain the model")
        try:
            return cls(
                name=payload["name"], num_items=int(payload["num_items"]),
                architecture=dict(payload["architecture"]), training=dict(payload["training"]),
                primary=payload["primary"],
                selections={k: Selection(int(v["epoch"]), dict(v["metrics"]))
                            for k, v in payload["selections"].items()},
                weights={int(epoch): dict(state) for epoch, state in payload["weights"].items()},
                epochs_run=int(payload["epochs_run"]), seconds=float(payload["seconds"]),
                stopped_early=bool(payload["stopped_early"]), item_text=payload["item_text"],
                provenance=payload.get("provenance"))
        except (KeyError, TypeError, ValueError) as error:
            raise HybridrecError(f"{source}: damaged model file ({type(error).__name__}: "
                                 f"{error})") from error


def text_digest(item_text: torch.Tensor) -> str:
    """SHA-256 of a frozen item text matrix's float32 bytes."""
    return hashlib.sha256(item_text.to(torch.float32).contiguous().numpy().tobytes()).hexdigest()


def write_model(saved: SavedModel, path: str | Path) -> None:
    """Write ``saved`` to ``path`` atomically (a reader never sees half a file)."""
    with atomic_path(path) as tmp:
        torch.save(saved.to_payload(), tmp)


def read_model(path: str | Path) -> SavedModel:
    """Read a file written by :func:`write_model`; a damaged or foreign file raises an error
    naming it (the load is ``weights_only``: no code in the file is ever run)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:  # never repeat torch's advice to unpickle it
        raise HybridrecError(f"{path}: holds Python objects a weights-only load refuses; it was "
                             "not written by this pipeline, so it is not loaded") from error
    except Exception as error:  # torch raises several types for a damaged or foreign file
        raise HybridrecError(f"{path}: not a readable model file ({type(error).__name__})"
                             ) from error
    if not isinstance(payload, dict):
        raise HybridrecError(f"{path}: not a hybridrec model file (top level is not a dict)")
    return SavedModel.from_payload(payload, path)

"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically.

Everything stored is a tensor or a plain Python value (dict, list, tuple, str, int, float, bool,
None); random-number-generator states are stored in that form too (see
:mod:`hybridrec.training.seeding`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hybridrec.io import atomic_path

FORMAT_VERSION = 1


def _plain(obj: Any) -> Any:
    """JSON-ready copy: dataclasses to dicts, tuples to lists, paths and dtypes to strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    return str(obj)


def config_hash(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (dataclasses, mappings, plain values)."""
    text = json.dumps(_plain(list(parts)), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def model_signature(model: torch.nn.Module) -> dict[str, Any]:
    """Class name and the name, shape and dtype of every state-dict entry."""
    return {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "state": [[name, list(t.shape), str(t.dtype)] for name, t in model.state_dict().items()],
    }


def save_checkpoint(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temporary sibling, then rename: a reader never sees half a file."""
    with atomic_path(path) as tmp:
        torch.save(dict(obj), tmp)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
                    ) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``."""
    loaded = torch.load(Path(path), map_location=map_location, weights_only=True)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a hybridrec checkpoint (top level is not a dict)")
    return loaded


def load_best(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(model state dict, metadata)`` of a ``best.pt`` written by the training loop."""
    ckpt = load_checkpoint(path, map_location)
    state = ckpt.pop("model")
    return state, ckpt

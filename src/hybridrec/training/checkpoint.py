"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically.

Everything stored is a tensor or a plain Python value (dict, list, tuple, str, int, float, bool,
None): random-number-generator states included (torch states are ``ByteTensor``s; numpy's is kept
as a tensor plus plain values; Python's ``random`` state as nested tuples of ints).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
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


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG the training may touch: torch CPU, CUDA (all devices), numpy, Python, and
    ``generator`` (the batch-shuffle / negative-sampling generator)."""
    legacy = np.random.get_state(legacy=True)  # noqa: NPY002
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = legacy
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"name": str(np_name), "keys": torch.from_numpy(np.asarray(np_keys, np.int64)),
                  "pos": int(np_pos), "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "python": [int(version), [int(v) for v in internal], gauss],
        "generator": None if generator is None else generator.get_state(),
    }


def restore_rng_state(state: Mapping[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    npst = state["numpy"]
    np.random.set_state((npst["name"], npst["keys"].numpy().astype(np.uint32),  # noqa: NPY002
                         npst["pos"], npst["has_gauss"], npst["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])

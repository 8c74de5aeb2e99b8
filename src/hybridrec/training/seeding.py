"""Seeding and the state of every random-number generator training touches, for exact resume.

States are captured as tensors and plain Python values, so a checkpoint holding them loads with
``torch.load(..., weights_only=True)``: torch states are ``ByteTensor``s, numpy's is a tensor plus
plain values, Python's ``random`` state nested tuples of ints.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global RNG and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global RNG is what we seed)
    random.seed(seed)


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

"""The selected gate as a file: ``results/hybrid/{dataset}/{protocol}/search/gate.pt``.

The search shard that scored the winning trial writes its gate, the gather job keeps it, and
fusion loads it: the test-time gate is the very gate the search scored, bit for bit (no
retraining). The file is a ``torch.save`` of plain values and float64 tensors, readable with
``torch.load(path, weights_only=True)`` (no pickled code):

- ``format``: ``"hybridrec.gate/1"``;
- ``branches``, ``feature_names``: the fused models in order (alpha weighs the first), and the
  gate's input features;
- ``mean``, ``scale``: (F,) float64, the feature standardisation ``x = (raw - mean) / scale``;
- ``layers``: w1 (F, H), b1 (H,), w2 (H, H), b2 (H,), w3 (H, O), b3 (O,), float64;
- ``hyperparameters``: the trial's ``lr``, ``hidden``, ``epochs``, ``pos_weight`` and its fusion
  noise range ``noise``;
- ``trial``, ``init_seed``: the trial's number and the seed of its initial weights;
- ``held_out``: the trial's held-out ``mrr@10``, ``ndcg@10``, ``hr@10`` (what the search scored);
- ``rows``: ``validation_users``, ``eligible``, ``train``, ``held_out``: the rows it saw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.gate import Gate, GateHyperparameters
from hybridrec.io import atomic_path

FORMAT = "hybridrec.gate/1"


@dataclass(frozen=True)
class SelectedGate:
    """A scored trial's gate with everything needed to fuse with it."""

    gate: Gate
    branches: tuple[str, ...]
    trial: int
    hyperparameters: GateHyperparameters
    noise: float
    init_seed: int
    held_out: Mapping[str, float]
    rows: Mapping[str, int]


def save_gate(selected: SelectedGate, path: str | Path) -> None:
    """Write ``selected`` atomically (to memory first, so equal gates give equal bytes)."""
    gate = selected.gate
    payload: dict[str, Any] = {
        "format": FORMAT,
        "branches": list(selected.branches),
        "feature_names": list(gate.feature_names),
        "mean": torch.from_numpy(np.array(gate.mean, dtype=np.float64)),
        "scale": torch.from_numpy(np.array(gate.scale, dtype=np.float64)),
        "layers": [torch.from_numpy(np.array(layer, dtype=np.float64)) for layer in gate.layers],
        "hyperparameters": {"lr": selected.hyperparameters.lr,
                            "hidden": selected.hyperparameters.hidden,
                            "epochs": selected.hyperparameters.epochs,
                            "pos_weight": selected.hyperparameters.pos_weight,
                            "noise": selected.noise},
        "trial": selected.trial,
        "init_seed": selected.init_seed,
        "held_out": {key: float(value) for key, value in selected.held_out.items()},
        "rows": {key: int(value) for key, value in selected.rows.items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())


def load_gate(path: str | Path) -> SelectedGate:
    """Read a file written by :func:`save_gate` (``weights_only=True``)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise HybridrecError(f"{path}: not a readable gate file ({error}); rerun the gate "
                             f"search's gather job") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise HybridrecError(f"{path}: not a gate file of format {FORMAT!r}")
    branches = tuple(payload["branches"])
    gate = Gate(tuple(payload["feature_names"]), len(branches), payload["mean"].numpy(),
                payload["scale"].numpy(), tuple(layer.numpy() for layer in payload["layers"]))
    settings = payload["hyperparameters"]
    return SelectedGate(
        gate=gate, branches=branches, trial=int(payload["trial"]),
        hyperparameters=GateHyperparameters(lr=float(settings["lr"]),
                                            hidden=int(settings["hidden"]),
                                            epochs=int(settings["epochs"]),
                                            pos_weight=float(settings["pos_weight"])),
        noise=float(settings["noise"]), init_seed=int(payload["init_seed"]),
        held_out=dict(payload["held_out"]), rows=dict(payload["rows"]))

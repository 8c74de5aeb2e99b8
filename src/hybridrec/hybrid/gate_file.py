"""A selected gate as a file: ``results/hybrid/{dataset}/{protocol}/search/gate_<rule>.pt``.

The search shard that scored the winning trial writes its gate, the gather job keeps it, and
fusion loads it: the test-time gate is the very gate the search scored, bit for bit (no
retraining). The file is a ``torch.save`` of plain values and tensors, readable with
``torch.load(path, weights_only=True)`` (no pickled code):

- ``format``: ``"hybridrec.gate/2"``;
- ``branches``, ``feature_names``: the fused models in order (alpha weighs the first), and the
  gate's input features;
- ``gate``: its kind, ``mlp``, ``random_forest`` or ``gradient_boosting``;
- ``mlp``: ``mean``, ``scale``: (F,) float64, the feature standardisation
  ``x = (raw - mean) / scale``; ``layers``: w1 (F, H), b1 (H,), w2 (H, H), b2 (H,), w3 (H, O),
  b3 (O,), float64;
- trees: ``trees``, the arrays of :class:`hybridrec.hybrid.tree_gate.TreeGate`;
- ``settings``: the trial's searched gate settings (the MLP's ``lr``, ``hidden``, ``epochs``,
  ``pos_weight``; a tree gate's own), and ``noise``, its fusion noise range;
- ``epoch``: the epoch whose weights the MLP kept (None for trees);
- ``training``: how every gate of the search trained (``tie_label``, ``rebalance``, ``loss``,
  ``focal_gamma``, ``batch_size``, ``keep_epoch``);
- ``selection``: the rule that selected it (``val_loss`` or ``mrr``);
- ``trial``, ``init_seed``: the trial's number and seed;
- ``held_out``: the trial's held-out ``mrr@10``, ``ndcg@10``, ``hr@10``, ``val_loss``;
- ``rows``: ``validation_users``, ``eligible``, ``train``, ``trained_on`` (after rebalancing),
  ``held_out``: the rows it saw.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.gate import Gate, GateModel
from hybridrec.hybrid.tree_gate import TreeGate
from hybridrec.io import atomic_path

FORMAT = "hybridrec.gate/2"
_TREE_ARRAYS = [f.name for f in fields(TreeGate)][3:]  # classes, roots, ..., baseline


@dataclass(frozen=True)
class SelectedGate:
    """A scored trial's gate with everything needed to fuse with it and to report it."""

    gate: GateModel
    branches: tuple[str, ...]
    trial: int
    settings: Mapping[str, int | float]
    noise: float
    init_seed: int
    held_out: Mapping[str, float]
    rows: Mapping[str, int]
    selection: str
    epoch: int | None = None
    training: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.gate.kind if isinstance(self.gate, TreeGate) else "mlp"


def save_gate(selected: SelectedGate, path: str | Path) -> None:
    """Write ``selected`` atomically (to memory first, so equal gates give equal bytes)."""
    gate = selected.gate
    payload: dict[str, Any] = {
        "format": FORMAT,
        "branches": list(selected.branches),
        "feature_names": list(gate.feature_names),
        "gate": selected.kind,
        "settings": dict(selected.settings),
        "noise": selected.noise,
        "epoch": selected.epoch,
        "training": dict(selected.training),
        "selection": selected.selection,
        "trial": selected.trial,
        "init_seed": selected.init_seed,
        "held_out": {key: float(value) for key, value in selected.held_out.items()},
        "rows": {key: int(value) for key, value in selected.rows.items()},
    }
    if isinstance(gate, TreeGate):
        payload["trees"] = {name: torch.from_numpy(np.array(getattr(gate, name)))
                            for name in _TREE_ARRAYS}
    elif isinstance(gate, Gate):
        payload["mean"] = torch.from_numpy(np.array(gate.mean, dtype=np.float64))
        payload["scale"] = torch.from_numpy(np.array(gate.scale, dtype=np.float64))
        payload["layers"] = [torch.from_numpy(np.array(layer, dtype=np.float64))
                             for layer in gate.layers]
    else:
        raise TypeError(f"cannot store a gate of type {type(gate).__name__}")
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
        raise HybridrecError(f"{path}: not a gate file of format {FORMAT!r}; rerun the gate "
                             f"search")
    branches = tuple(payload["branches"])
    names = tuple(payload["feature_names"])
    gate: GateModel
    if payload["gate"] == "mlp":
        gate = Gate(names, len(branches), payload["mean"].numpy(), payload["scale"].numpy(),
                    tuple(layer.numpy() for layer in payload["layers"]))
    else:
        trees = payload["trees"]
        gate = TreeGate(names, len(branches), payload["gate"],
                        *(trees[name].numpy() for name in _TREE_ARRAYS))
    return SelectedGate(
        gate=gate, branches=branches, trial=int(payload["trial"]),
        settings=dict(payload["settings"]), noise=float(payload["noise"]),
        init_seed=int(payload["init_seed"]), held_out=dict(payload["held_out"]),
        rows=dict(payload["rows"]), selection=str(payload["selection"]),
        epoch=None if payload["epoch"] is None else int(payload["epoch"]),
        training=dict(payload["training"]))

"""Checkpoints: written atomically, verified on load, kept per configuration, never lost to damage.

A file loads with ``torch.load(..., weights_only=True)``: everything stored is a tensor or a plain
Python value (dict, list, tuple, str, int, float, bool, None), random-number-generator states
included (see :mod:`hybridrec.training.seeding`). Loading first checks the CRC-32 that torch's
zip format records for every entry, so a truncated file and a flipped byte are both caught.

:class:`CheckpointSet` is the checkpoints of one configuration of one training run, in their own
folder ``<root>/<config hash[:12]>/``:

- ``epoch-NNNN.pt``: the full resume state after epoch NNNN (``epoch-0000.pt`` before the
  first step). The newest :data:`KEEP_LAST` are kept, and every epoch that a kept one names as a
  best, so that each ``best-<selection>.pt`` can always be rebuilt;
- ``best-<selection>.pt``: the weights and validation metrics of the best epoch so far under one
  selection (a validation protocol: ``best-full.pt``, ``best-uniform99.pt``, ...).

A file that fails to load is logged by path and moved aside to ``<name>.damaged``, never
deleted, and the next older one is tried. Folders of other configurations are never touched, so
changing a setting and changing it back resumes the earlier run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from hybridrec.errors import CheckpointError
from hybridrec.io import atomic_path
from hybridrec.plain import plain

FORMAT_VERSION = 2
KEEP_LAST = 3
"""Epoch checkpoints kept besides the best epochs they name: a damaged newest one costs an epoch."""
_EPOCH_FILE = re.compile(r"epoch-(\d+)\.pt")
# What torch.load and zipfile raise on a damaged file (after the CRC check, rarely anything).
_READ_ERRORS = (OSError, RuntimeError, EOFError, ValueError, KeyError, zipfile.BadZipFile,
                pickle.UnpicklingError)


def config_hash(*parts: Any) -> str:
    """SHA-256 of the canonical JSON of ``parts`` (dataclasses, mappings, plain values)."""
    text = json.dumps(plain(list(parts)), sort_keys=True, separators=(",", ":"))
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
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    Raises CheckpointError naming ``path`` when any entry fails its CRC-32 check or the file
    does not load (truncated, overwritten, not ours: a pickle of Python objects is refused, never
    loaded); a missing file is a FileNotFoundError.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            corrupt = archive.testzip()
        if corrupt is not None:
            raise CheckpointError(f"{path}: damaged checkpoint (entry {corrupt} fails its CRC-32)")
        loaded = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:  # CRCs pass: a pickle not ours (no torch advice)
        raise CheckpointError(f"{path}: {weights_only_refusal(error)}; not used") from None
    except _READ_ERRORS as error:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(error).__name__}: {error})"
                              ) from error
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: not a hybridrec checkpoint (top level is not a dict)")
    return loaded


def weights_only_refusal(error: pickle.UnpicklingError) -> str:
    """A file ``torch.load(..., weights_only=True)`` refused, in words: never torch's own
    advice to load it with ``weights_only=False``, which would run whatever code it holds."""
    found = re.search(r"GLOBAL (\S+)", str(error))
    objects = f" ({found.group(1)})" if found else ""
    return f"holds Python objects{objects} a weights-only load refuses"


def load_best(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
              ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(model state dict, metadata)`` of a ``best-<selection>.pt`` written by the loop."""
    ckpt = load_checkpoint(path, map_location)
    state = ckpt.pop("model")
    return state, ckpt


class CheckpointSet:
    """The checkpoints of one configuration (``digest``) under ``root``; see the module doc."""

    def __init__(self, root: str | os.PathLike[str], digest: str, log: logging.Logger,
                 keep_last: int = KEEP_LAST) -> None:
        self.root = Path(root)
        self.digest = digest
        self.folder = self.root / digest[:12]
        self.log = log
        self.keep_last = keep_last

    def epoch_path(self, epoch: int) -> Path:
        return self.folder / f"epoch-{epoch:04d}.pt"

    def best_path(self, selection: str) -> Path:
        return self.folder / f"best-{selection}.pt"

    def epochs(self) -> list[int]:
        """Epochs that have a checkpoint file, newest first."""
        names = (_EPOCH_FILE.fullmatch(path.name) for path in self.folder.glob("epoch-*.pt"))
        return sorted((int(match.group(1)) for match in names if match), reverse=True)

    def other_configurations(self) -> list[str]:
        """Folders of the other configurations' checkpoint sets beside this one."""
        if not self.root.is_dir():
            return []
        return sorted(path.name for path in self.root.iterdir()
                      if path.is_dir() and path != self.folder)

    def intact(self) -> Iterator[dict[str, Any]]:
        """This configuration's intact epoch checkpoints, newest first (damaged ones set aside)."""
        for epoch in self.epochs():
            path = self.epoch_path(epoch)
            ckpt = self._read(path) if path.exists() else None  # may have been set aside since
            if ckpt is not None:
                yield ckpt

    def save_epoch(self, payload: Mapping[str, Any], epoch: int,
                   best_epochs_after: Mapping[int, Iterable[int]]) -> None:
        """Write epoch ``epoch``'s checkpoint, then delete the older ones no longer needed.

        ``best_epochs_after[e]`` are the best epochs (one per selection) as of epoch ``e``: the
        newest ``keep_last`` epochs are kept and so is each of their best epochs. Epochs after
        ``epoch`` (from an earlier, longer run of this configuration) are kept too.
        """
        save_checkpoint(payload, self.epoch_path(epoch))
        newest = range(epoch - self.keep_last + 1, epoch + 1)
        keep = {*newest, *(best for e in newest for best in best_epochs_after.get(e, (e,)))}
        for old in self.epochs():
            if old < epoch and old not in keep:
                self.epoch_path(old).unlink(missing_ok=True)

    def save_best(self, selection: str, weights: Mapping[str, torch.Tensor], epoch: int,
                  metrics: Mapping[str, float]) -> None:
        save_checkpoint({"format_version": FORMAT_VERSION, "config_hash": self.digest,
                         "selection": selection, "epoch": epoch, "metrics": dict(metrics),
                         "model": weights}, self.best_path(selection))

    def ensure_best(self, ckpt: Mapping[str, Any]) -> bool:
        """Make every ``best-<selection>.pt`` hold the best epoch the epoch checkpoint ``ckpt``
        names for its selection.

        One may hold a later epoch (a kill between writing it and the epoch's checkpoint) or be
        damaged: then it is rebuilt from that epoch's own checkpoint. False when no intact copy
        of some selection's weights is left (``ckpt`` cannot be resumed).
        """
        state = ckpt["state"]
        for selection, best in state["selections"].items():
            if not self._ensure_best(selection, int(best["epoch"]), best["metrics"], ckpt):
                return False
        return True

    def _ensure_best(self, selection: str, best_epoch: int, metrics: Mapping[str, float],
                     ckpt: Mapping[str, Any]) -> bool:
        if best_epoch == 0:  # nothing validated yet
            return True
        path = self.best_path(selection)
        best = self._read(path) if path.exists() else None
        if best is not None and best.get("epoch") == best_epoch:
            return True
        epoch = int(ckpt["state"]["epoch"])
        source_path = self.epoch_path(best_epoch)
        source = ckpt if epoch == best_epoch else (
            self._read(source_path) if source_path.exists() else None)
        if source is None:
            self.log.warning("%s cannot be resumed: the weights of its best epoch %d under %s "
                             "are in neither %s nor %s", self.epoch_path(epoch), best_epoch,
                             selection, path, source_path)
            return False
        self.save_best(selection, source["model"], best_epoch, metrics)
        self.log.info("%s rebuilt from %s", path, source_path)
        return True

    def best_weights(self, selection: str, epoch: int) -> dict[str, torch.Tensor]:
        """The weights in ``best-<selection>.pt``, which must be epoch ``epoch`` of this
        configuration."""
        path = self.best_path(selection)
        best = load_checkpoint(path)
        if best.get("config_hash") != self.digest or best.get("epoch") != epoch:
            raise CheckpointError(f"{path}: holds epoch {best.get('epoch')} of "
                                  f"configuration {str(best.get('config_hash'))[:12]}, expected "
                                  f"epoch {epoch} of {self.digest[:12]}")
        return dict(best["model"])

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The checkpoint at ``path`` if it is intact and of this configuration, else None."""
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as error:
            self._set_aside(path, error)
            return None
        if ckpt.get("config_hash") != self.digest:
            self.log.warning("%s was written for configuration %.12s, not %.12s: not used", path,
                             ckpt.get("config_hash"), self.digest)
            return None
        return ckpt

    def _set_aside(self, path: Path, error: CheckpointError) -> None:
        """Rename a damaged file to ``<name>.damaged`` (``.damaged.1``, ... if taken)."""
        target = path.with_name(f"{path.name}.damaged")
        count = 0
        while target.exists():
            count += 1
            target = path.with_name(f"{path.name}.damaged.{count}")
        os.replace(path, target)
        self.log.error("%s; moved aside to %s", error, target)

"""The evaluate job: one trained model on its dataset folder, every protocol's metrics to JSON
and the top-k lists of each protocol the hybrid stage reads to Parquet.

Each protocol is scored with the weights selected under it (``model.pt`` holds one state dict
per selected epoch, :mod:`hybridrec.models.files`), so every comparison under one protocol
compares models selected and evaluated under that protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from hybridrec.cpu import available_cores
from hybridrec.data.store import dataset_files
from hybridrec.evaluation.evaluate import evaluate_protocols, export_depth, load_eval_split
from hybridrec.evaluation.export import write_predictions
from hybridrec.io import write_json
from hybridrec.models.files import SavedModel, read_model

log = logging.getLogger(__name__)


def evaluate_and_export(*, model_path: str | Path, dataset_root: str | Path, dataset: str,
                        protocols: Sequence[str], k: int, batch_size: int,
                        metrics_path: str | Path,
                        prediction_paths: Mapping[tuple[str, str], str | Path], threads: int = 0,
                        device: str = "cpu", item_embeddings: str | Path | None = None) -> dict:
    """Rank valid and test targets under each protocol; write metrics and the top-k exports.

    ``prediction_paths`` maps (protocol, split) to the export to write: the lists are
    ``export_depth`` long (``k`` where every user can rank that many items). ``threads`` CPU
    threads (0: every core this process may use), fixed by the config rather than by the cores
    Snakemake reserved, so the exported scores do not depend on ``--cores``. ``device`` is a
    torch device (the evaluate rule passes the one it claimed). A text-aware model reads its
    frozen item text from ``item_embeddings``.
    """
    torch.set_num_threads(threads or available_cores())
    saved = read_model(model_path)
    item_text = None
    if item_embeddings is not None:
        from hybridrec.text.embeddings import load_item_embeddings

        item_text = load_item_embeddings(item_embeddings, saved.num_items)
    files = dataset_files(dataset_root)
    exported = list(dict.fromkeys(protocol for protocol, _ in prediction_paths))
    wanted = list(dict.fromkeys([*protocols, *exported]))
    by_epoch: dict[int, list[str]] = {}
    for protocol in wanted:
        by_epoch.setdefault(saved.epoch_of(protocol), []).append(protocol)
    max_len = int(saved.architecture["max_len"])
    splits: dict[str, dict[str, dict[str, float]]] = {split: {} for split in ("valid", "test")}
    for split in splits:
        data = load_eval_split(dataset_root, split, max_len, wanted)
        for epoch_protocols in by_epoch.values():
            model = saved.build(epoch_protocols[0], item_text=item_text, device=device)
            depth = {protocol: export_depth(data, protocol, model.num_items, k)
                     for protocol in epoch_protocols}
            metrics, results = evaluate_protocols(model, data, epoch_protocols, depth,
                                                  batch_size)
            splits[split].update(metrics)
            for protocol in epoch_protocols:
                log.info("%s %s %s (epoch %d): %s", saved.name, split, protocol,
                         saved.epoch_of(protocol),
                         ", ".join(f"{key} {value:.4f}" for key, value in
                                   metrics[protocol].items()))
                if protocol not in exported:
                    continue
                if depth[protocol] < k:
                    log.info("%s %s: top-%d lists instead of top-%d (evaluation.topk): a user "
                             "cannot rank more items", split, protocol, depth[protocol], k)
                write_predictions(prediction_paths[protocol, split], data.split.users,
                                  results[protocol], data.targets, protocol=protocol,
                                  k=depth[protocol], user_ids_path=str(files["user_ids"]),
                                  item_ids_path=str(files["item_ids"]), model=saved.name,
                                  dataset=dataset, split=split)
        splits[split] = {p: splits[split][p] for p in wanted}  # the config's order
    report = {
        "dataset": dataset,
        "model": saved.name,
        "export_protocols": exported,
        "splits": splits,
        # no wall time here: results files are identical run to run (it is in history.parquet)
        "training": training_summary(saved),
    }
    write_json(report, metrics_path)
    return report


def training_summary(saved: SavedModel) -> dict[str, Any]:
    """What a metrics file says of the training: epochs, each selection's epoch and validation
    metrics, the settings."""
    return {"primary": saved.primary, "best_epoch": saved.epoch_of(),
            "epochs_run": saved.epochs_run, "stopped_early": saved.stopped_early,
            "selections": {name: {"epoch": s.epoch, "metrics": s.metrics}
                           for name, s in saved.selections.items()},
            "architecture": saved.architecture, "training": saved.training}

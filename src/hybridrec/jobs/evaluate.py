"""Evaluate one trained model on its dataset folder: every protocol's metrics to JSON, and the
top-k lists of each protocol the hybrid stage needs to Parquet (the evaluate rule)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from hybridrec.cpu import available_cores
from hybridrec.data.store import dataset_files
from hybridrec.evaluation.evaluate import evaluate_protocols, export_depth, load_eval_split
from hybridrec.export import write_predictions
from hybridrec.io import write_json
from hybridrec.training.run import load_model

log = logging.getLogger(__name__)


def evaluate_and_export(*, model_path: str | Path, dataset_root: str | Path, dataset: str,
                        protocols: Sequence[str], k: int, batch_size: int,
                        metrics_path: str | Path,
                        prediction_paths: Mapping[tuple[str, str], str | Path], threads: int = 0,
                        device: str = "cpu") -> dict:
    """Rank valid and test targets under each protocol; write metrics and the top-k exports.

    ``prediction_paths`` maps (protocol, split) to the export to write: the lists are
    ``export_depth`` long (``k`` where every user can rank that many items). ``threads`` CPU
    threads (0: every core this process may use), fixed by the config rather than by the cores
    Snakemake reserved, so the exported scores do not depend on ``--cores``. ``device`` is a
    torch device (the evaluate rule passes the one it claimed).
    """
    torch.set_num_threads(threads or available_cores())
    model, meta = load_model(model_path, device)
    files = dataset_files(dataset_root)
    exported = list(dict.fromkeys(protocol for protocol, _ in prediction_paths))
    wanted = list(dict.fromkeys([*protocols, *exported]))
    splits: dict[str, dict[str, dict[str, float]]] = {}
    for split in ("valid", "test"):
        data = load_eval_split(dataset_root, split, model.max_len, wanted)
        depth = {protocol: export_depth(data, protocol, model.num_items, k)
                 for protocol in wanted}
        metrics, results = evaluate_protocols(model, data, wanted, depth, batch_size)
        splits[split] = metrics
        for protocol, values in metrics.items():
            log.info("%s %s %s: %s", meta["name"], split, protocol,
                     ", ".join(f"{key} {value:.4f}" for key, value in values.items()))
        for protocol in exported:
            if depth[protocol] < k:
                log.info("%s %s: top-%d lists instead of top-%d (evaluation.topk): a user "
                         "cannot rank more items", split, protocol, depth[protocol], k)
            write_predictions(prediction_paths[protocol, split], data.split.users,
                              results[protocol], data.targets, protocol=protocol,
                              k=depth[protocol], user_ids_path=str(files["user_ids"]),
                              item_ids_path=str(files["item_ids"]), model=meta["name"],
                              dataset=dataset, split=split)
    report = {
        "dataset": dataset,
        "model": meta["name"],
        "export_protocols": exported,
        "splits": splits,
        # no wall time here: results files are identical run to run (it is in history.parquet)
        "training": {key: meta[key] for key in ("best_epoch", "epochs_run", "best_metrics",
                                                "architecture", "training")},
    }
    write_json(report, metrics_path)
    return report

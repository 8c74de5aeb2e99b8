"""The evaluate rule: every protocol's metrics to JSON, one protocol's top-k lists to Parquet."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from hybridrec.data.store import dataset_files
from hybridrec.devices import available_cores
from hybridrec.evaluation.evaluate import EvalSplit, evaluate_protocols, load_eval_split
from hybridrec.evaluation.ranking import fewest_rankable_items
from hybridrec.export import write_predictions
from hybridrec.io import write_json
from hybridrec.training.run import load_model

log = logging.getLogger(__name__)


def _listable(k: int, data: EvalSplit, num_items: int, dataset: str, split: str) -> int:
    """``k``, or fewer where some user's history leaves fewer items to list (small catalogues)."""
    targets = torch.from_numpy(data.targets.astype(np.int64))
    fewest = fewest_rankable_items(data.history, targets, num_items)
    if fewest >= k:
        return k
    log.warning("dataset %s, %s split: a user's history leaves %d of the %d items to rank, so "
                "the exported lists hold %d items, not evaluation.topk=%d", dataset, split,
                fewest, num_items, fewest, k)
    return fewest


def evaluate_and_export(*, model_path: str | Path, dataset_root: str | Path, dataset: str,
                        protocols: Sequence[str], export_protocol: str, k: int, batch_size: int,
                        metrics_path: str | Path,
                        prediction_paths: Mapping[str, str | Path], threads: int = 0,
                        device: str = "cpu") -> dict:
    """Rank valid and test targets under each protocol; write metrics and the top-k exports.

    ``threads`` CPU threads (0: every core this process may use), fixed by the config rather
    than by the cores Snakemake reserved, so the exported scores do not depend on ``--cores``.
    ``device`` is a torch device (the evaluate rule passes the one it claimed).
    """
    torch.set_num_threads(threads or available_cores())
    model, meta = load_model(model_path, device)
    files = dataset_files(dataset_root)
    wanted = list(dict.fromkeys([*protocols, export_protocol]))
    splits: dict[str, dict[str, dict[str, float]]] = {}
    for split, path in prediction_paths.items():
        data = load_eval_split(dataset_root, split, model.max_len, wanted)
        if export_protocol == "full":
            k = _listable(k, data, model.num_items, dataset, split)
        metrics, results = evaluate_protocols(model, data, wanted, k, batch_size)
        splits[split] = metrics
        for protocol, values in metrics.items():
            log.info("%s %s %s: %s", meta["name"], split, protocol,
                     ", ".join(f"{key} {value:.4f}" for key, value in values.items()))
        write_predictions(path, data.split.users, results[export_protocol], data.targets,
                          protocol=export_protocol, k=k, user_ids_path=str(files["user_ids"]),
                          item_ids_path=str(files["item_ids"]), model=meta["name"],
                          dataset=dataset, split=split)
    report = {
        "dataset": dataset,
        "model": meta["name"],
        "export_protocol": export_protocol,
        "splits": splits,
        # no wall time here: results files are identical run to run (it is in history.parquet)
        "training": {key: meta[key] for key in ("best_epoch", "epochs_run", "best_metrics",
                                                "architecture", "training")},
    }
    write_json(report, metrics_path)
    return report

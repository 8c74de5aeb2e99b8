"""The gate search's jobs: each shard trains and scores its trials; the gather job joins them,
keeps the winning gate as a file and stores the search as an Optuna study."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.aligned_file import read_aligned
from hybridrec.hybrid.gate_file import SelectedGate, load_gate, save_gate
from hybridrec.hybrid.list_metrics import KEYS, TOP_N
from hybridrec.hybrid.search import (
    GateData,
    best_row,
    gate_training_data,
    gather,
    hyperparameters,
    run_shard,
    sample_trials,
    trial_seed,
    write_study,
)
from hybridrec.io import atomic_path, write_json, write_parquet
from hybridrec.jobs.shap import selected_features
from hybridrec.plain import plain
from hybridrec.reporting.figures import plot_search_landscape

log = logging.getLogger(__name__)


def gate_data(aligned_path: str | Path, features_path: str | Path, branches: Sequence[str],
              feature_names: Sequence[str], held_out: float, seed: int,
              where: str) -> tuple[GateData, GateData, dict[str, int]]:
    """Training and held-out rows of the validation split, and how many rows each part has."""
    aligned = read_aligned(aligned_path, branches, depth=TOP_N)
    frame = pd.read_parquet(features_path)
    train, scored = gate_training_data(frame, feature_names, aligned.lists, aligned.target,
                                       held_out=held_out, seed=seed, top_n=TOP_N, where=where)
    rows = {"validation_users": aligned.n_users, "eligible": len(train.target) + len(
        scored.target), "train": len(train.target), "held_out": len(scored.target)}
    return train, scored, rows


def run_search_shard(aligned_path: str | Path, features_path: str | Path,
                     shap_path: str | Path, branches: Sequence[str], protocol: str, trials: int,
                     shard: int, shards: int, held_out: float, seed: int, table_path: str | Path,
                     gate_path: str | Path) -> None:
    """Train and score this shard's trials on the validation split's eligible rows; keep the
    table of scores and the gate of the shard's best trial."""
    if shard >= trials:
        raise HybridrecError(f"gate_search.shards ({shards}) is more than gate_search.trials "
                             f"({trials}): shard {shard} has no trial")
    train, scored, rows = gate_data(aligned_path, features_path, branches,
                                    selected_features(shap_path), held_out, seed,
                                    where=f"{features_path} ({protocol})")
    params = sample_trials(trials, seed)
    log.info("shard %d/%d: %d of %d trials; gate rows under %s: %d validation users, %d "
             "eligible, %d training, %d held out", shard + 1, shards,
             int((params["trial"] % shards == shard).sum()), trials, protocol,
             rows["validation_users"], rows["eligible"], rows["train"], rows["held_out"])
    table, gates = run_shard(params, shard, shards, train, scored, seed, top_n=TOP_N)
    best = best_row(table)
    row = table.iloc[best]
    write_parquet(table, table_path)
    save_gate(SelectedGate(gates[best], tuple(branches), int(row["trial"]), hyperparameters(row),
                           float(row["noise"]), trial_seed(seed, int(row["trial"])),
                           {key: float(row[key]) for key in KEYS}, rows), gate_path)


def run_gather(table_paths: Sequence[str | Path], gate_paths: Sequence[str | Path],
               trials_path: str | Path, best_path: str | Path, gate_path: str | Path,
               study_path: str | Path, figure_path: str | Path, study_name: str,
               title: str) -> None:
    """Join the shards, pick the best trial, and keep exactly the gate its shard scored (the
    shard's gate file, copied byte for byte)."""
    table, best = gather([pd.read_parquet(p) for p in table_paths])
    trial = int(best["trial"])
    log.info("best trial %d: %s", trial, best.to_dict())
    owners = [p for p in gate_paths if load_gate(p).trial == trial]
    if not owners:
        raise HybridrecError(f"no shard gate file holds trial {trial}: {list(gate_paths)}; "
                             f"rerun the search shards")
    write_parquet(table, trials_path)
    write_study(table, study_path, study_name)
    plot_search_landscape(table, figure_path, weighted_branch=load_gate(owners[0]).branches[0],
                          title=title)
    write_json({k: plain(v) for k, v in best.items()}, best_path)
    with atomic_path(gate_path) as tmp:  # the shard's file, byte for byte
        tmp.write_bytes(Path(owners[0]).read_bytes())

"""The gate search's jobs: each shard trains and scores its trials; the gather job joins them,
keeps the winning gate of each selection rule as a file and stores the search as an Optuna
study."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.aligned_file import read_aligned
from hybridrec.hybrid.features import PAPER_FEATURES
from hybridrec.hybrid.gate import GateTraining
from hybridrec.hybrid.gate_file import SelectedGate, load_gate, save_gate
from hybridrec.hybrid.list_metrics import KEYS, TOP_N
from hybridrec.hybrid.search import (
    MLP,
    SEARCH_SPACES,
    VAL_LOSS,
    GateData,
    best_row,
    gate_settings,
    gate_training_data,
    gather,
    rebalance,
    run_shard,
    sample_trials,
    trial_seed,
    write_study,
)
from hybridrec.io import atomic_path, write_json, write_parquet
from hybridrec.jobs.shap import shap_ranking
from hybridrec.plain import plain
from hybridrec.reporting.figures import plot_search_landscape

log = logging.getLogger(__name__)


def gate_features(features: str | Sequence[str], shap_path: str | Path | None,
                  shap_top_k: int | None) -> list[str]:
    """``hybrid.features``: ``paper`` (the paper's three, l.190), ``shap`` (the top
    ``shap_top_k`` of the SHAP job's ranking) or the names given."""
    if features == "paper":
        return list(PAPER_FEATURES)
    if features == "shap":
        if shap_path is None or shap_top_k is None:
            raise ValueError("hybrid.features 'shap' needs the SHAP summary and shap_top_k")
        return shap_ranking(shap_path)[:shap_top_k]
    return list(features)


def gate_data(aligned_path: str | Path, features_path: str | Path, branches: Sequence[str],
              feature_names: Sequence[str], held_out: float, seed: int, tie_label: str,
              share: float | None, where: str) -> tuple[GateData, GateData, dict[str, int]]:
    """Training (rebalanced to ``share`` unless None) and held-out rows of the validation
    split, and how many rows each part has."""
    aligned = read_aligned(aligned_path, branches, depth=TOP_N)
    frame = pd.read_parquet(features_path)
    train, scored = gate_training_data(frame, feature_names, aligned.lists, aligned.target,
                                       held_out=held_out, seed=seed, top_n=TOP_N,
                                       tie=tie_label, where=where)
    trained_on = train if share is None else rebalance(train, share, seed)
    rows = {"validation_users": aligned.n_users,
            "eligible": len(train.target) + len(scored.target), "train": len(train.target),
            "trained_on": len(trained_on.target), "held_out": len(scored.target)}
    return trained_on, scored, rows


def run_search_shard(*, aligned_path: str | Path, features_path: str | Path,
                     shap_path: str | Path | None, branches: Sequence[str], protocol: str,
                     trials: int, shard: int, shards: int, seed: int,
                     features: str | Sequence[str], shap_top_k: int | None = None,
                     tie_label: str, rebalance: float | None, gate: str, held_out: float,
                     batch_size: int | None = None, keep_epoch: str = "best",
                     loss: str = "bce", focal_gamma: float = 0.0,
                     table_path: str | Path, gate_paths: Mapping[str, str | Path]) -> None:
    """Train and score this shard's trials on the validation split's eligible rows; keep the
    table of scores and, for each selection rule, the gate of the shard's best trial.

    ``batch_size``, ``keep_epoch``, ``loss`` and ``focal_gamma`` train the MLP gate only.
    """
    if shard >= trials:
        raise HybridrecError(f"gate_search.shards ({shards}) is more than gate_search.trials "
                             f"({trials}): shard {shard} has no trial")
    names = gate_features(features, shap_path, shap_top_k)
    train, scored, rows = gate_data(aligned_path, features_path, branches, names, held_out,
                                    seed, tie_label, rebalance,
                                    where=f"{features_path} ({protocol})")
    training = GateTraining(batch_size=batch_size, keep=keep_epoch,
                            focal_gamma=focal_gamma if loss == "focal" else 0.0)
    recorded = {"tie_label": tie_label, "rebalance": rebalance}
    if gate == MLP:
        recorded |= {"loss": loss, "focal_gamma": training.focal_gamma,
                     "batch_size": batch_size, "keep_epoch": keep_epoch}
    params = sample_trials(trials, seed, SEARCH_SPACES[gate])
    log.info("shard %d/%d: %d of %d trials of a %s gate on %s; gate rows under %s: %d "
             "validation users, %d eligible, %d training (%d after rebalancing), %d held out",
             shard + 1, shards, int((params["trial"] % shards == shard).sum()), trials, gate,
             names, protocol, rows["validation_users"], rows["eligible"], rows["train"],
             rows["trained_on"], rows["held_out"])
    table, gates = run_shard(params, shard, shards, train, scored, seed, top_n=TOP_N,
                             gate=gate, training=training)
    write_parquet(table, table_path)
    for rule, path in gate_paths.items():
        best = best_row(table, rule)
        row = table.iloc[best]
        save_gate(SelectedGate(
            gates[best], tuple(branches), int(row["trial"]), gate_settings(row, gate),
            float(row["noise"]), trial_seed(seed, int(row["trial"])),
            {key: float(row[key]) for key in (*KEYS, VAL_LOSS)}, rows, rule,
            int(row["epoch"]) if "epoch" in row else None, recorded), path)


def run_gather(*, table_paths: Sequence[str | Path], gate_paths: Sequence[str | Path],
               selection: str, trials_path: str | Path, best_path: str | Path,
               gate_path: str | Path, rule_gate_paths: Mapping[str, str | Path],
               study_path: str | Path, figure_path: str | Path, study_name: str,
               title: str) -> None:
    """Join the shards, pick the best trial under every selection rule, and keep
    exactly the gate its shard scored (the shard's gate file, copied byte for byte) under
    ``rule_gate_paths[rule]``; ``gate_path`` gets the one ``selection`` picks."""
    table, best = gather([pd.read_parquet(p) for p in table_paths])
    shard_gates = {path: load_gate(path) for path in gate_paths}
    for rule, row in best.items():
        trial = int(row["trial"])
        log.info("best trial under %s%s: %d: %s", rule,
                 " (selected)" if rule == selection else "", trial, row)
        owners = [p for p, g in shard_gates.items() if g.selection == rule and g.trial == trial]
        if not owners:
            raise HybridrecError(f"no shard gate file holds trial {trial}, the best under "
                                 f"{rule}: {list(gate_paths)}; rerun the search shards")
        with atomic_path(rule_gate_paths[rule]) as tmp:  # the shard's file, byte for byte
            tmp.write_bytes(Path(owners[0]).read_bytes())
    with atomic_path(gate_path) as tmp:
        tmp.write_bytes(Path(rule_gate_paths[selection]).read_bytes())
    selected = load_gate(gate_path)
    write_parquet(table, trials_path)
    write_study(table, study_path, study_name, SEARCH_SPACES[selected.kind], selection)
    plot_search_landscape(table, figure_path, weighted_branch=selected.branches[0],
                          selected_trial=selected.trial, selection=selection, title=title)
    write_json({"selection": selection,
                **{rule: {k: plain(v) for k, v in row.items()} for rule, row in best.items()}},
               best_path)

"""The fusion job: the selected gate (loaded from ``gate.pt``) fuses every test user's lists;
the paper's rows, the gate another selection rule picked, the extended baselines, the gate's
alpha distribution, and Fig. 6."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from hybridrec.hybrid.align import PAD, AlignedLists
from hybridrec.hybrid.aligned_file import aligned_protocols, list_column, read_aligned
from hybridrec.hybrid.baselines import baseline_lists
from hybridrec.hybrid.evaluate import HYBRID, alpha_distribution, evaluate_hybrid, fused_runs
from hybridrec.hybrid.fusion import fuse
from hybridrec.hybrid.gate_file import SelectedGate, load_gate
from hybridrec.hybrid.list_metrics import KEYS, TOP_N
from hybridrec.io import write_json, write_parquet, write_table
from hybridrec.protocols import SAMPLED_PROTOCOLS
from hybridrec.reporting.figures import normalised_length, plot_alpha_vs_length

log = logging.getLogger(__name__)


def evaluate_stage(*, aligned_valid: str | Path, aligned_test: str | Path,
                   features_test: str | Path, gate_path: str | Path,
                   other_gate_paths: Sequence[str | Path], branches: Sequence[str], seed: int,
                   fusion_seeds: Sequence[int],
                   bootstrap_resamples: int) -> tuple[dict[str, Any], pd.DataFrame, pa.Table]:
    """Fuse every test user with the stored gate; the paper's rows, the gates the other
    selection rules picked (method ``hybrid (<rule>)``) and the extended baselines
    (:mod:`hybridrec.hybrid.baselines`), each evaluated like the hybrid."""
    selected = load_gate(gate_path)
    gate, noise = selected.gate, selected.noise
    others = {f"{HYBRID} ({other.selection})": other
              for other in (load_gate(path) for path in other_gate_paths)}
    protocols = aligned_protocols(aligned_test)
    valid = read_aligned(aligned_valid, branches, depth=TOP_N)  # rank-level only
    test = read_aligned(aligned_test, branches)
    test_features = pd.read_parquet(features_test)
    weights = gate.branch_weights(test_features.loc[:, list(gate.feature_names)].to_numpy())
    shared = len(set(protocols.values())) == 1  # every branch ranked the same candidates
    protocol = next(iter(protocols.values()))
    complete = protocol in SAMPLED_PROTOCOLS and test.k >= SAMPLED_PROTOCOLS[protocol].negatives + 1
    baselines = baseline_lists(valid, test, weights, noise, seed, TOP_N, score_fusion=shared,
                               lists_complete=complete)
    result = evaluate_hybrid(gate, test_features, test.lists[..., :TOP_N], test.target,
                             branches, noise, fusion_seeds, baselines=baselines.lists,
                             other_gates={name: (other.gate, other.noise)
                                          for name, other in others.items()},
                             top_n=TOP_N, n_resamples=bootstrap_resamples, seed=seed)
    summary = {**result.summary(),
               "protocols": protocols,
               "gate": gate_record(selected),
               "other_gates": {name: gate_record(other) for name, other in others.items()},
               "alpha": alpha_distribution(result.weights[:, 0],
                                           test_features["length"].to_numpy()),
               "constant_alpha": [float(w) for w in baselines.constant_weights],
               "users": test.n_users}
    if baselines.score_fusion_exact is not None:
        summary["score_fusion"] = {"depth": test.k,
                                   "exact_users": int(baselines.score_fusion_exact.sum()),
                                   "users": test.n_users}
    alpha = pd.DataFrame({"user": test.users, "alpha": result.weights[:, 0],
                          "norm_length": normalised_length(test_features["length"].to_numpy())})
    return summary, alpha, fused_lists_table(test, result.weights, noise, fusion_seeds)


def gate_record(selected: SelectedGate) -> dict[str, Any]:
    """A stored gate's settings and provenance as plain values (Section V-B's list and more)."""
    return {"trial": selected.trial, "gate": selected.kind, "selection": selected.selection,
            "features": list(selected.gate.feature_names), "settings": dict(selected.settings),
            "noise": selected.noise, "epoch": selected.epoch,
            "training": dict(selected.training), "rows": dict(selected.rows),
            "held_out": dict(selected.held_out)}


def hybrid_row(gate_path: str | Path, aligned_test: str | Path, features_test: str | Path,
               fusion_seeds: Sequence[int]) -> dict[str, float]:
    """Table V's hybrid row (MRR@10, NDCG@10, HR@10: means over fusion seeds) from the stored
    gate file, the test lists and the test features alone."""
    selected = load_gate(gate_path)
    test = read_aligned(aligned_test, selected.branches, depth=TOP_N)
    _, runs = fused_runs(selected.gate, pd.read_parquet(features_test),
                         test.lists[..., :TOP_N], test.target, selected.noise, fusion_seeds,
                         TOP_N)
    return {key: float(np.mean([run[key].mean() for run in runs])) for key in KEYS}


def fused_lists_table(test: AlignedLists, weights: np.ndarray, noise: float,
                      fusion_seeds: Sequence[int]) -> pa.Table:
    """The hybrid's fused test lists for every fusion seed, in original ids (for audits)."""
    fused = np.concatenate([fuse(test.lists[..., :TOP_N], weights, TOP_N, noise, seed)
                            for seed in fusion_seeds])  # (S * U, TOP_N)
    repeats = len(fusion_seeds)
    return pa.table({
        "seed": pa.array(np.repeat(np.asarray(fusion_seeds, dtype=np.int64), test.n_users)),
        "user": pa.array(np.tile(test.users, repeats)),
        "target": pa.array(np.tile(test.vocabulary[test.target], repeats)),
        "items": list_column(test.vocabulary[np.maximum(fused, 0)], fused != PAD),
    })


def run_fusion(*, aligned_valid: str | Path, aligned_test: str | Path,
               features_test: str | Path, gate_path: str | Path,
               other_gate_paths: Sequence[str | Path], branches: Sequence[str], seed: int,
               fusion_seeds: Sequence[int], bootstrap_resamples: int,
               summary_path: str | Path, alpha_path: str | Path, fused_path: str | Path,
               figure_path: str | Path, title: str) -> None:
    summary, alpha, fused = evaluate_stage(
        aligned_valid=aligned_valid, aligned_test=aligned_test, features_test=features_test,
        gate_path=gate_path, other_gate_paths=other_gate_paths, branches=branches, seed=seed,
        fusion_seeds=fusion_seeds, bootstrap_resamples=bootstrap_resamples)
    rows = summary["gate"]["rows"]
    log.info("gate rows: %d validation users, %d eligible (%.1f %%), %d training (%d after "
             "rebalancing), %d held out", rows["validation_users"], rows["eligible"],
             100 * rows["eligible"] / max(rows["validation_users"], 1), rows["train"],
             rows["trained_on"], rows["held_out"])
    if "score_fusion" in summary:
        exact = summary["score_fusion"]
        log.info("score fusion over top-%d lists: exact for %d of %d test users", exact["depth"],
                 exact["exact_users"], exact["users"])
    for row in summary["methods"]:
        log.info("%-18s MRR@10 %.4f NDCG@10 %.4f HR@10 %.4f", row["method"], row["mrr@10"],
                 row["ndcg@10"], row["hr@10"])
    write_json(summary, summary_path)
    write_parquet(alpha, alpha_path)
    write_table(fused, fused_path)
    plot_alpha_vs_length(alpha["alpha"].to_numpy(), alpha["norm_length"].to_numpy(),
                         figure_path, weighted_branch=branches[0], title=title)

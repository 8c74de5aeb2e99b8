"""The hybrid stage's rules, one function each: files in, files out (layout: docs/contracts.md).

align -> features -> shap -> search shards -> gather -> evaluate. Aligned lists are stored in
the dataset's ORIGINAL ids, so a branch trained elsewhere joins through its own id tables.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.errors import HybridrecError
from hybridrec.export import read_predictions
from hybridrec.hybrid.align import (
    PAD,
    AlignedLists,
    align_branches,
    align_sequences,
    pad_lists,
    target_ranks,
)
from hybridrec.hybrid.evaluate import evaluate_hybrid
from hybridrec.hybrid.features import (
    FEATURES,
    best_branch,
    category_counts,
    eligible,
    sequence_features,
    winner_categories,
)
from hybridrec.hybrid.fusion import (
    best_constant_alpha,
    draw_fusion_randomness,
    fuse,
    fuse_scores,
    oracle_lists,
)
from hybridrec.hybrid.plots import (
    normalised_length,
    plot_alpha_vs_length,
    plot_search_landscape,
    plot_shap_beeswarm,
)
from hybridrec.hybrid.search import (
    gate_training_data,
    gather,
    run_shard,
    sample_trials,
    train_selected_gate,
)
from hybridrec.hybrid.shap_analysis import shap_importance
from hybridrec.io import write_json, write_parquet, write_table

log = logging.getLogger(__name__)

TOP_N = 10  # the paper fuses top-10 lists


# ---------------------------------------------------------------------------------- align


def align_exports(prediction_paths: Mapping[str, str | Path], dataset: str,
                  split: str) -> AlignedLists:
    """Read each branch's export and its own id tables (named in its metadata), then align."""
    exports, user_maps, item_maps = {}, {}, {}
    for branch, path in prediction_paths.items():
        frame, meta = read_predictions(path)
        exports[branch] = frame
        user_maps[branch] = pd.read_parquet(meta["user_ids"])
        item_maps[branch] = pd.read_parquet(meta["item_ids"])
    aligned = align_branches(exports, user_maps, item_maps, dataset=dataset, split=split)
    log.info("%s/%s: %d users aligned across %s, k = %d", dataset, split, aligned.n_users,
             ", ".join(aligned.branches), aligned.k)
    return aligned


def _list_column(values: np.ndarray, present: np.ndarray) -> pa.ListArray:
    """Rows of a (U, k) array as an Arrow list column, keeping only the ``present`` entries."""
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[present]))


def aligned_table(aligned: AlignedLists) -> pa.Table:
    """AlignedLists as Parquet columns in original ids: user, target, <branch>_items/_scores."""
    vocabulary = aligned.vocabulary
    columns: dict[str, pa.Array] = {
        "user": pa.array(aligned.users),
        "target": pa.array(vocabulary[aligned.target]),
    }
    for b, branch in enumerate(aligned.branches):
        lists = aligned.lists[:, b]
        present = lists != PAD
        columns[f"{branch}_items"] = _list_column(vocabulary[np.maximum(lists, 0)], present)
        columns[f"{branch}_scores"] = _list_column(aligned.scores[:, b], present)
    return pa.table(columns)


def read_aligned(path: str | Path, branches: Sequence[str]) -> AlignedLists:
    """Rebuild AlignedLists (shared item ids) from :func:`aligned_table`'s file."""
    table = pq.read_table(path)
    missing = [f"{b}_items" for b in branches if f"{b}_items" not in table.column_names]
    if missing:
        raise HybridrecError(f"{path}: no column(s) {missing}; was it aligned with other branches?")
    users = table.column("user").to_numpy(zero_copy_only=False)
    targets = table.column("target").to_numpy(zero_copy_only=False)
    flat = {b: table.column(f"{b}_items").combine_chunks() for b in branches}
    vocabulary = np.unique(np.concatenate(
        [targets, *(flat[b].flatten().to_numpy(zero_copy_only=False) for b in branches)]))
    k = max(int(np.diff(flat[b].offsets.to_numpy()).max(initial=0)) for b in branches)
    lists = np.full((len(users), len(branches), k), PAD, dtype=np.int64)
    scores = np.full((len(users), len(branches), k), np.nan)
    for b, branch in enumerate(branches):
        items = flat[branch].flatten().to_numpy(zero_copy_only=False)
        scores_flat = table.column(f"{branch}_scores").combine_chunks().flatten().to_numpy(
            zero_copy_only=False)
        lists[:, b], scores[:, b] = pad_lists(np.searchsorted(vocabulary, items), scores_flat,
                                              flat[branch].offsets.to_numpy().astype(np.int64), k)
    return AlignedLists(tuple(branches), users, vocabulary, lists, scores,
                        np.searchsorted(vocabulary, targets).astype(np.int64))


def write_aligned(prediction_paths: Mapping[str, str | Path], dataset: str, split: str,
                  out: str | Path) -> None:
    write_table(aligned_table(align_exports(prediction_paths, dataset, split)), out)


# ------------------------------------------------------------------------------- features


def feature_frame(aligned: AlignedLists, split_path: str | Path, user_ids_path: str | Path,
                  dataset: str, split: str) -> pd.DataFrame:
    """Per user: the six features, each branch's rank in its top-10, label and winner category."""
    items, offsets = align_sequences(aligned.users, pd.read_parquet(split_path),
                                     pd.read_parquet(user_ids_path), dataset, split)
    head = aligned.lists[..., :TOP_N]
    ranks = target_ranks(head, aligned.target)  # (U, B), TOP_N + 1 = not in the list
    frame = sequence_features(items, offsets, head, top_n=TOP_N)
    frame.insert(0, "user", aligned.users)
    for b, branch in enumerate(aligned.branches):
        frame[f"rank_{branch}"] = ranks[:, b]
    frame["best_branch"] = best_branch(ranks)
    frame["label"] = (frame["best_branch"] == 0).astype(np.int8)  # paper: 0 when FMLP-Rec wins
    frame["eligible"] = eligible(ranks, TOP_N)
    frame["category"] = winner_categories(ranks, aligned.branches, TOP_N).to_numpy()
    return frame


def write_features(aligned_path: str | Path, branches: Sequence[str], split_path: str | Path,
                   user_ids_path: str | Path, dataset: str, split: str, out: str | Path) -> None:
    frame = feature_frame(read_aligned(aligned_path, branches), split_path, user_ids_path,
                          dataset, split)
    counts = frame["category"].value_counts().to_dict()
    log.info("%s/%s: %d users, %d eligible, winners %s", dataset, split, len(frame),
             int(frame["eligible"].sum()), counts)
    write_parquet(frame, out)


def winners_table(datasets: Sequence[str], feature_paths: Sequence[str | Path]) -> pd.DataFrame:
    """Table VI: test users per winner category and dataset."""
    parts = []
    for dataset, path in zip(datasets, feature_paths, strict=True):
        counts = category_counts(pd.read_parquet(path, columns=["category"])["category"])
        parts.append(counts.assign(dataset=dataset))
    return pd.concat(parts, ignore_index=True)[["dataset", "category", "users"]]


# ----------------------------------------------------------------------------------- SHAP


def require_both_labels(best_branch: np.ndarray, branches: Sequence[str],
                        where: str | Path) -> None:
    """Refuse a gate whose training labels are all one branch: it would have nothing to learn."""
    winners = np.unique(best_branch)
    if len(winners) < 2:
        only = branches[int(winners[0])] if len(winners) else None
        detail = (f"{only} is the better branch for every one of the {len(best_branch)} users "
                  f"with a hit, so the gate's labels are all one class" if only is not None
                  else "no user has the target in any branch's top 10")
        raise HybridrecError(
            f"{where}: {detail}; a gate has nothing to learn. Check the other branches' "
            f"exports, or fuse branches that each win for some users (hybrid.branches)")


def write_shap(features_path: str | Path, branches: Sequence[str], top_k: int, seed: int,
               summary_path: str | Path, figure_path: str | Path, title: str) -> None:
    """Explain a gate trained on all six features (eligible validation rows); keep the top k."""
    frame = pd.read_parquet(features_path)
    rows = frame[frame["eligible"]]
    require_both_labels(rows["best_branch"].to_numpy(), branches, features_path)
    _, result = shap_importance(rows.loc[:, list(FEATURES)], rows["best_branch"].to_numpy(),
                                len(branches), seed=seed)
    importance = result.importance()
    selected = result.top_features(top_k)
    log.info("mean |SHAP|: %s; selected %s",
             ", ".join(f"{f} {v:.4f}" for f, v in importance.itertuples(index=False)), selected)
    plot_shap_beeswarm(result.explanation(), figure_path, title=title, seed=seed)
    write_json({"importance": dict(importance.itertuples(index=False)),
                "selected": list(selected), "rows": len(rows)}, summary_path)


def selected_features(summary_path: str | Path) -> list[str]:
    return list(json.loads(Path(summary_path).read_text())["selected"])


# --------------------------------------------------------------------------------- search


def _gate_data(aligned_path: str | Path, features_path: str | Path, branches: Sequence[str],
               feature_names: Sequence[str], held_out: float, seed: int) -> tuple[Any, Any]:
    aligned = read_aligned(aligned_path, branches)
    frame = pd.read_parquet(features_path)
    return gate_training_data(frame, feature_names, aligned.lists, aligned.target,
                              held_out=held_out, seed=seed, top_n=TOP_N)


def write_search_shard(aligned_path: str | Path, features_path: str | Path,
                       shap_path: str | Path, branches: Sequence[str], trials: int,
                       shard: int, shards: int, held_out: float, seed: int,
                       out: str | Path) -> None:
    """Train and score this shard's trials on the validation split's eligible rows."""
    train, scored = _gate_data(aligned_path, features_path, branches,
                               selected_features(shap_path), held_out, seed)
    params = sample_trials(trials, seed)
    log.info("shard %d/%d: %d of %d trials, %d training rows, %d held-out rows", shard + 1,
             shards, int((params["trial"] % shards == shard).sum()), trials,
             len(train.target), len(scored.target))
    table = run_shard(params, shard, shards, train, scored, seed, top_n=TOP_N)
    write_parquet(table, out)


def write_gathered(shard_paths: Sequence[str | Path], trials_path: str | Path,
                   best_path: str | Path, figure_path: str | Path, title: str) -> None:
    table, best = gather([pd.read_parquet(p) for p in shard_paths])
    log.info("best trial %d: %s", int(best["trial"]), best.to_dict())
    write_parquet(table, trials_path)
    plot_search_landscape(table, figure_path, title=title)
    write_json({k: _plain(v) for k, v in best.items()}, best_path)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# ------------------------------------------------------------------------------ evaluate


def evaluate_stage(*, aligned_valid: str | Path, aligned_test: str | Path,
                   features_valid: str | Path, features_test: str | Path,
                   best_path: str | Path, shap_path: str | Path, branches: Sequence[str],
                   held_out: float, seed: int, fusion_seeds: Sequence[int],
                   bootstrap_resamples: int) -> tuple[dict[str, Any], pd.DataFrame, pa.Table]:
    """Fuse every test user with the selected gate; the paper's rows and the extended baselines.

    Baselines (each evaluated like the hybrid): the best constant alpha chosen on the
    validation split, the per-user oracle, and score-level fusion (Eq. 14) with the gate's
    weights over the exported log-probabilities.
    """
    names = selected_features(shap_path)
    train, _ = _gate_data(aligned_valid, features_valid, branches, names, held_out, seed)
    best = pd.Series(json.loads(Path(best_path).read_text()))
    gate = train_selected_gate(best, train, len(branches), seed)
    noise = float(best["noise"])

    valid = read_aligned(aligned_valid, branches)
    test = read_aligned(aligned_test, branches)
    test_features = pd.read_parquet(features_test)
    rng = np.random.default_rng([seed, 7])
    draws = draw_fusion_randomness(valid.n_users, len(branches), TOP_N, rng)
    constant, _ = best_constant_alpha(valid.lists[..., :TOP_N], valid.target, draws,
                                      top_n=TOP_N)
    weights = gate.branch_weights(test_features.loc[:, names].to_numpy())
    baselines = {
        "constant_alpha": _fuse_constant(test, constant, noise, seed),
        "oracle": oracle_lists(test.lists, test.target, TOP_N),
        "score_fusion": fuse_scores(test.lists, test.scores, weights, TOP_N),
    }
    result = evaluate_hybrid(gate, test_features, test.lists[..., :TOP_N], test.target,
                             branches, noise, fusion_seeds, baselines=baselines, top_n=TOP_N,
                             n_resamples=bootstrap_resamples, seed=seed)
    summary = {**result.summary(), "gate": {"trial": int(best["trial"]), "features": names,
                                           "noise": noise},
               "constant_alpha": [float(w) for w in constant], "users": test.n_users}
    alpha = pd.DataFrame({"user": test.users, "alpha": result.weights[:, 0],
                          "norm_length": normalised_length(test_features["length"].to_numpy())})
    return summary, alpha, fused_lists_table(test, result.weights, noise, fusion_seeds)


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
        "items": _list_column(test.vocabulary[np.maximum(fused, 0)], fused != PAD),
    })


def _fuse_constant(aligned: AlignedLists, weights: np.ndarray, noise: float,
                   seed: int) -> np.ndarray:
    per_user = np.broadcast_to(weights, (aligned.n_users, len(weights)))
    return fuse(aligned.lists[..., :TOP_N], per_user, TOP_N, noise, seed)


def write_evaluation(summary_path: str | Path, alpha_path: str | Path, fused_path: str | Path,
                     figure_path: str | Path, title: str, **kwargs: Any) -> None:
    summary, alpha, fused = evaluate_stage(**kwargs)
    for row in summary["methods"]:
        log.info("%-15s MRR@10 %.4f NDCG@10 %.4f HR@10 %.4f", row["method"], row["mrr@10"],
                 row["ndcg@10"], row["hr@10"])
    write_json(summary, summary_path)
    write_parquet(alpha, alpha_path)
    write_table(fused, fused_path)
    plot_alpha_vs_length(alpha["alpha"].to_numpy(), alpha["norm_length"].to_numpy(),
                         figure_path, title=title)

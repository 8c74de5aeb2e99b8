"""Hybrid stage speed at Amazon Beauty scale (~22k users), on synthetic branch outputs.

1. Algorithm 1: the line-by-line reference and the vectorised fusion on the same draws for
   22,000 users (two branches, top-10 lists); asserts that they agree and prints the speedup
   (requirement: at least 50x).
2. The whole hybrid stage as the pipeline runs it: features for the validation and test users,
   SHAP on all six features, the random search (``--trials``, split into ``--shards`` shards that
   run side by side in fresh processes, as Snakemake would run them), gather (keeping the
   selected trial's gate as its shard trained it), test evaluation (5 fusion seeds, 2,000
   bootstrap resamples) and the three figures (requirement: under a minute on two cores).

Synthetic data: Beauty-shaped sequence lengths (at least 3, mean about 7 before the split
targets), items drawn by Zipf popularity (so a few repeats), and branch lists whose hits follow
the paper's Table VI for Beauty (LinRec only 11 %, FMLP only 35 %, both 13 %, neither 42 %).

    python benchmarks/fusion_speed.py [--users 22000] [--trials 500] [--shards 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from hybridrec.hybrid.align import target_ranks
from hybridrec.hybrid.evaluate import evaluate_hybrid
from hybridrec.hybrid.features import best_branch, eligible, sequence_features
from hybridrec.hybrid.fusion import draw_fusion_randomness, fuse_reference, fuse_vectorised
from hybridrec.hybrid.search import gate_training_data, gather, run_shard, sample_trials
from hybridrec.hybrid.shap_analysis import shap_importance
from hybridrec.reporting.figures import (
    normalised_length,
    plot_alpha_vs_length,
    plot_search_landscape,
    plot_shap_beeswarm,
)

ITEMS = 12_101
TABLE_VI_BEAUTY = (0.11, 0.35, 0.13, 0.41)  # LinRec only, FMLP only, both, neither


def zipf_items(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    weights = 1.0 / np.arange(1, ITEMS + 1) ** 0.9
    return rng.choice(ITEMS, size=shape, p=weights / weights.sum())


def first_distinct(rows: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` distinct items of each row (rows hold enough distinct items)."""
    order = np.argsort(rows, axis=1, kind="stable")
    ordered = np.take_along_axis(rows, order, axis=1)
    repeat = np.zeros_like(rows, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    is_repeat = np.empty_like(repeat)
    np.put_along_axis(is_repeat, order, repeat, axis=1)
    keep = np.argsort(is_repeat, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(rows, keep, axis=1)


def synthetic_split(users: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray]:
    """Input sequences (flat items, offsets), top-10 lists (U, 2, 10) and targets."""
    rng = np.random.default_rng(seed)
    lengths = 3 + rng.geometric(0.2, users) - 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = zipf_items(rng, (int(offsets[-1]),))
    lists = np.stack([first_distinct(zipf_items(rng, (users, 60)), 10) for _ in range(2)],
                     axis=1)
    target = ITEMS + rng.integers(0, 1000, users)  # outside the lists unless placed there
    category = rng.choice(4, size=users, p=TABLE_VI_BEAUTY)
    position = rng.integers(0, 10, size=(users, 2))
    for branch, hit_categories in ((0, (0, 2)), (1, (1, 2))):
        hit = np.isin(category, hit_categories)
        lists[hit, branch, position[hit, branch]] = target[hit]
    return items, offsets, lists, target


def time_fusion(users: int) -> None:
    _, _, lists, _ = synthetic_split(users, seed=1)
    rng = np.random.default_rng(2)
    alpha = rng.beta(1, 8, users)  # the paper's gate leans towards FMLP-Rec
    draws = draw_fusion_randomness(users, 2, 10, rng)
    reference_times, vectorised_times = [], []
    for _ in range(5):
        start = time.perf_counter()
        reference = fuse_reference(lists, alpha, draws, 10, 0.2)
        reference_times.append(time.perf_counter() - start)
    for _ in range(30):
        start = time.perf_counter()
        vectorised = fuse_vectorised(lists, alpha, draws, 10, 0.2)
        vectorised_times.append(time.perf_counter() - start)
    assert np.array_equal(reference, vectorised), "reference and vectorised fusion disagree"
    ref, vec = min(reference_times), min(vectorised_times)
    print(f"fusion, {users:,} users x 2 branches x top-10 (best of 5 / best of 30):")
    print(f"  reference (one user at a time) {ref * 1e3:9.1f} ms")
    print(f"  vectorised (all users at once) {vec * 1e3:9.1f} ms   identical lists: yes")
    verdict = "ok" if ref / vec >= 50 else "BELOW the requirement of 50 x"
    print(f"  speedup                        {ref / vec:9.0f} x   {verdict}")


def time_stage(users: int, trials: int, shards: int) -> None:
    timings: dict[str, float] = {}
    start = time.perf_counter()
    valid_items, valid_offsets, valid_lists, valid_target = synthetic_split(users, seed=3)
    test_items, test_offsets, test_lists, test_target = synthetic_split(users, seed=4)
    timings["synthetic data (not part of the stage)"] = time.perf_counter() - start

    stage_start = time.perf_counter()
    start = time.perf_counter()
    valid_features = sequence_features(valid_items, valid_offsets, valid_lists)
    test_features = sequence_features(test_items, test_offsets, test_lists)
    timings["features, validation + test"] = time.perf_counter() - start

    start = time.perf_counter()
    ranks = target_ranks(valid_lists, valid_target)
    rows = eligible(ranks)
    _, shap_result = shap_importance(valid_features[rows].reset_index(drop=True),
                                     best_branch(ranks[rows]), 2, seed=0)
    selected = shap_result.top_features(3)
    timings["SHAP, six features (500 rows)"] = time.perf_counter() - start

    start = time.perf_counter()
    train, held_out = gate_training_data(valid_features, selected, valid_lists, valid_target)
    params = sample_trials(trials, seed=0)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=shards, mp_context=context) as pool:
        futures = [pool.submit(run_shard, params, i, shards, train, held_out, 0)
                   for i in range(shards)]
        scored = [f.result() for f in futures]
        table, best_by_rule = gather([shard_table for shard_table, _ in scored])
    best = best_by_rule["val_loss"]  # hybrid.selection's default
    gate = {int(trial): g for shard_table, gates in scored
            for trial, g in zip(shard_table["trial"], gates, strict=True)}[int(best["trial"])]
    timings[f"search, {trials} trials in {shards} shard processes"] = time.perf_counter() - start

    start = time.perf_counter()
    result = evaluate_hybrid(gate, test_features, test_lists, test_target, ["linrec", "fmlp"],
                             float(best["noise"]), fusion_seeds=range(5))
    timings["test evaluation (the scored gate)"] = time.perf_counter() - start

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        plot_shap_beeswarm(shap_result.explanation(), Path(folder) / "beeswarm.png", "linrec")
        plot_alpha_vs_length(result.weights[:, 0],
                             normalised_length(test_features["length"].to_numpy()),
                             Path(folder) / "alpha.png", "linrec")
        plot_search_landscape(table, Path(folder) / "search.png", "linrec",
                              selected_trial=int(best["trial"]), selection="val_loss")
    timings["three figures"] = time.perf_counter() - start
    total = time.perf_counter() - stage_start

    print(f"\nhybrid stage, {users:,} users per split, {len(train.target):,} + "
          f"{len(held_out.target):,} eligible validation rows "
          f"({len(np.unique(train.features, axis=0))} distinct feature rows):")
    for stage, seconds in timings.items():
        print(f"  {stage:48s} {seconds:7.2f} s")
    verdict = "ok" if total < 60 else "OVER the requirement of 60 s"
    print(f"  {'whole stage':48s} {total:7.2f} s   {verdict}")
    print(f"  selected features {selected}; best trial {int(best['trial'])}: "
          f"held-out MRR@10 {best['mrr@10']:.4f}")
    print(result.methods.round(4).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=22_000)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    time_fusion(args.users)
    time_stage(args.users, args.trials, args.shards)


if __name__ == "__main__":
    main()

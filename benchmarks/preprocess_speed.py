"""Preprocessing speed at ML-1M scale: a synthetic table of 1,000,000 interactions.

Times parsing the table as an ML-1M ``ratings.dat``, then writing the whole dataset folder
(filtering, ordering, ids, split, the four candidate files, statistics) with
`hybridrec.data.store.write_dataset`, and prints one line per stage.

    python benchmarks/preprocess_speed.py [--interactions 1000000] [--users 6040] [--items 3706]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd

from hybridrec.data.candidates import protocol_rng, sample_negatives
from hybridrec.data.preprocess import PreprocessConfig, build_interactions
from hybridrec.data.readers import read_interactions
from hybridrec.data.split import leave_one_out_split
from hybridrec.data.store import write_candidates, write_dataset
from hybridrec.protocols import SAMPLED_PROTOCOLS


def synthetic_table(n: int, users: int, items: int, seed: int = 0) -> pd.DataFrame:
    """ML-1M-shaped interactions: Zipf-like item popularity, long-tailed user activity."""
    rng = np.random.default_rng(seed)
    user_weight = rng.lognormal(0, 1.0, users)
    item_weight = 1.0 / np.arange(1, items + 1) ** 0.8
    return pd.DataFrame({
        "user": rng.choice(users, size=n, p=user_weight / user_weight.sum()) + 1,
        "item": rng.choice(items, size=n, p=item_weight / item_weight.sum()) + 1,
        "timestamp": pd.array(rng.integers(956_703_932, 1_046_454_590, n), dtype="Int64"),
        "rating": pd.array(rng.integers(1, 6, n).astype(float), dtype="Float64"),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=6040)
    parser.add_argument("--items", type=int, default=3706)
    args = parser.parse_args()

    raw = synthetic_table(args.interactions, args.users, args.items)
    config = PreprocessConfig(dedupe=True, user_core=5, item_core=5)
    timings = {}
    with tempfile.TemporaryDirectory() as folder:
        ratings = f"{folder}/ratings.dat"
        lines = (raw["user"].astype(str) + "::" + raw["item"].astype(str) + "::"
                 + raw["rating"].astype(int).astype(str) + "::" + raw["timestamp"].astype(str))
        lines.to_csv(ratings, index=False, header=False)
        start = time.perf_counter()
        parsed = read_interactions(ratings, "movielens_dat")
        timings["read ratings.dat (movielens_dat)"] = time.perf_counter() - start
        assert len(parsed) == len(raw)
    start = time.perf_counter()
    data = build_interactions(raw, config)
    timings["filter + order + ids"] = time.perf_counter() - start
    start = time.perf_counter()
    leave_one_out_split(data)
    timings["leave-one-out split"] = time.perf_counter() - start
    for name, protocol in SAMPLED_PROTOCOLS.items():
        start = time.perf_counter()
        sample_negatives(data, protocol, protocol_rng(0, "test", name))
        timings[f"candidates {name} (one split)"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        stats = write_dataset(raw, config, root, dataset="beauty")
        for name in SAMPLED_PROTOCOLS:
            write_candidates(root, name, seed=0, dataset="beauty")
        timings["whole dataset folder, written"] = time.perf_counter() - start

    print(f"input: {len(raw):,} interactions -> {stats['interactions']:,} after dedupe + 5-core, "
          f"{stats['users']:,} users, {stats['items']:,} items")
    for stage, seconds in timings.items():
        print(f"{stage:34s} {seconds:8.2f} s")


if __name__ == "__main__":
    main()

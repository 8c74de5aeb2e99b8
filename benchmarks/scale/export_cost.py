"""What the evaluate rule's exports cost at scale: full ranking of a slice of users.

The scale benchmark replaces the models' exports by synthetic ones, so this script measures
the real code path on the same dataset instead: :func:`hybridrec.evaluation.evaluate.rank_split`
(the model's logits over the whole catalogue in batches of ``evaluation.batch_size`` users,
history exclusion, the pessimistic rank, the exact top-k and the log-softmax) for the first
``--users`` users of the test split, with an untrained LinRec and FMLP-Rec of the default
settings (cost does not depend on the weights). Prints users/s per model and thread count,
the seconds that ranking every user of both splits takes at that rate (the work is linear in
users: batches are independent), and the peak RSS of the process.

    python benchmarks/scale/export_cost.py <workdir>/1000000/results/data/scale
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from hybridrec.data.store import SplitArrays, dataset_files, read_split
from hybridrec.evaluation.evaluate import EvalSplit, rank_split
from hybridrec.models import build_model

MODELS = {"linrec": {"hidden_size": 64, "inner_size": 256, "n_layers": 2, "n_heads": 8},
          "fmlp": {"hidden_size": 64, "n_layers": 2}}  # config/config.yaml's settings
MAX_LEN = 50


def first_users(split: SplitArrays, n: int) -> SplitArrays:
    assert split.targets is not None
    return SplitArrays(split.users[:n], split.items[:split.offsets[n]], split.offsets[:n + 1],
                       split.targets[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="a dataset folder, results/data/<dataset>")
    parser.add_argument("--users", type=int, default=8192)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=1024, help="evaluation.batch_size")
    parser.add_argument("--k", type=int, default=100, help="evaluation.topk")
    args = parser.parse_args()
    files = dataset_files(args.root)
    whole = read_split(files["test"])
    n_items = pq.read_metadata(files["item_ids"]).num_rows
    split = first_users(whole, min(args.users, len(whole.users)))
    longest = int(np.diff(split.offsets).max())
    data = EvalSplit(split, torch.from_numpy(split.padded(MAX_LEN)),
                     torch.from_numpy(split.padded(longest)), {})
    total_users = 2 * len(whole.users)  # valid and test
    print(f"{len(split.users):,} of {len(whole.users):,} test users, {n_items:,} items, "
          f"batch {args.batch_size}, top-{args.k}")
    for name, settings in MODELS.items():
        model = build_model(name, num_items=n_items, max_len=MAX_LEN, **settings)
        for threads in args.threads:
            torch.set_num_threads(threads)
            start = time.perf_counter()
            rank_split(model, data, "full", args.k, args.batch_size)
            seconds = time.perf_counter() - start
            rate = len(split.users) / seconds
            print(f"{name:7s} {threads} thread(s): {rate:8.0f} users/s; both splits of "
                  f"{total_users // 2:,} users: {total_users / rate:8.0f} s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()

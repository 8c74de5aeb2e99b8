"""The gate search at Amazon Beauty scale: the paper's procedure beside the full-batch one.

Both searches run the same trials (``--trials``, split into ``--shards`` shards that run side
by side in fresh processes, as Snakemake runs them) on the same rows, in one invocation, so
their ratio is measured under the same load:

- full batch (the project's procedure before the paper's, ``gate_search.batch_size: null``,
  ``keep_epoch: last``): one Adam step per epoch over the distinct feature rows;
- mini-batches (the default, ``batch_size: 256``, ``keep_epoch: best``): an epoch is a shuffled
  pass in batches of 256 rows, the held-out loss after every epoch, the best epoch kept.

Requirement: the default search of 500 trials within 10 minutes on two cores.

Synthetic data as in ``fusion_speed.py`` (Beauty-shaped lengths and Table VI's hit pattern):
22,000 validation users give about 13,000 eligible rows, and the paper's three features (length,
unique items, entropy) about 190 distinct feature rows, as Beauty's do.

    python benchmarks/gate_search_speed.py [--users 22000] [--trials 500] [--shards 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor

from hybridrec.cpu import configure_cpu_runtime

configure_cpu_runtime()  # before torch loads (here and in each shard process)

import numpy as np  # noqa: E402
from fusion_speed import synthetic_split  # noqa: E402

from hybridrec.hybrid.features import PAPER_FEATURES, sequence_features  # noqa: E402
from hybridrec.hybrid.gate import GateTraining  # noqa: E402
from hybridrec.hybrid.search import (  # noqa: E402
    GateData,
    gate_training_data,
    gather,
    run_shard,
    sample_trials,
)

LIMIT_S = 600.0
PROCEDURES = {"full batch, last epoch (before)": GateTraining(batch_size=None, keep="last"),
              "mini-batches of 256, best epoch (paper)": GateTraining()}


def _shard(params, index: int, shards: int, train: GateData, held_out: GateData,
           training: GateTraining) -> tuple[object, float]:
    start = time.process_time()
    table, _ = run_shard(params, index, shards, train, held_out, seed=0, training=training)
    return table, time.process_time() - start


def time_search(train: GateData, held_out: GateData, trials: int, shards: int,
                training: GateTraining) -> tuple[float, list[float], object]:
    """Wall time of the whole search, CPU time per shard, and the gathered best trials."""
    params = sample_trials(trials, seed=0)
    context = multiprocessing.get_context("spawn")
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=shards, mp_context=context) as pool:
        futures = [pool.submit(_shard, params, i, shards, train, held_out, training)
                   for i in range(shards)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - start
    _, best = gather([table for table, _ in results])
    return wall, [cpu for _, cpu in results], best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=22_000)
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    items, offsets, lists, target = synthetic_split(args.users, seed=3)
    features = sequence_features(items, offsets, lists)
    train, held_out = gate_training_data(features, PAPER_FEATURES, lists, target)
    print(f"cores: {os.cpu_count()}, load average at start: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"gate rows: {len(train.target):,} training + {len(held_out.target):,} held out, "
          f"{len(np.unique(train.features, axis=0))} distinct training feature rows; "
          f"{args.trials} trials in {args.shards} shard processes")
    walls = {}
    for name, training in PROCEDURES.items():
        wall, cpu, best = time_search(train, held_out, args.trials, args.shards, training)
        walls[name] = wall
        print(f"  {name:42s} {wall:7.1f} s wall, shards {' + '.join(f'{c:.1f}' for c in cpu)}"
              f" s CPU; best by held-out loss: trial {int(best['val_loss']['trial'])} "
              f"(loss {best['val_loss']['val_loss']:.4f}, MRR@10 "
              f"{best['val_loss']['mrr@10']:.4f})")
    before, paper = walls.values()
    verdict = "ok" if paper <= LIMIT_S else f"OVER the requirement of {LIMIT_S:.0f} s"
    print(f"  ratio (paper / before): {paper / before:.1f} x; paper's procedure {paper:.0f} s: "
          f"{verdict}")


if __name__ == "__main__":
    main()

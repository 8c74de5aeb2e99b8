"""Synthetic top-k exports of two branches, in the exact layout the evaluate rule writes.

Training a model on a million users is out of this machine's budget, so the scale benchmark
(``benchmarks/scale_run.py``) places these files where the DAG expects the models' exports
(``results/predictions/{dataset}/{branch}/{protocol}/{split}.parquet``) and runs every rule after
them through Snakemake. They are written by
:func:`hybridrec.evaluation.export.write_predictions` from a
:class:`hybridrec.evaluation.ranking.RankResult`, as evaluation writes them.

The scorer is cheap and deterministic (from ``--seed``), built so that the hybrid has something
to learn: a branch's logit of an item is its log popularity plus Gumbel noise of its own; the
target is placed at a rank drawn log-normally from a latent difficulty the branches share (so
some users are hit by both, some by one, most by neither under full ranking, as in Table VI).

- ``full``: each user's lists come from a pool both branches share, the 100 popularity-drawn
  items outside the user's sequence of ``candidates/{split}.pop100.parquet`` (full ranking's
  top lists favour popular items), each branch ordering the pool by its own logits; the target
  enters at its rank when that is <= k (k <= 100).
- ``uniform99``: the target and the 99 negatives of ``candidates/{split}.uniform99.parquet``,
  ordered by each branch's logits with the target at its rank (1..100).

Scores are log-probabilities: the list's logits minus a per-user log-partition that gives the
listed items half of the probability mass. Real full ranking needs every user's score of every
item (users x items logits, computed in batches); ``benchmarks/scale_run.py`` measures that cost
separately.

    python benchmarks/scale/synthetic_exports.py results/data/scale --dataset scale
"""

from __future__ import annotations

import argparse
import zlib
from pathlib import Path

import numpy as np

from hybridrec.data.store import (
    candidate_files,
    dataset_files,
    read_interactions,
    read_negatives,
    read_split,
)
from hybridrec.evaluation.export import write_predictions
from hybridrec.evaluation.ranking import RankResult

BRANCHES = {"linrec": 2.6, "fmlp": 2.4}  # branch -> mean log target rank under full ranking
SAMPLED_SHIFT = -1.9  # the same ranks among 100 candidates: e^-1.9 ~ 1/7 of the full rank
NOISE = 1.0  # Gumbel scale of a branch's logits
BLOCK = 1 << 16  # users per block of the list building


def target_ranks(rng: np.random.Generator, n_users: int) -> dict[str, np.ndarray]:
    """Per branch, a log-normal target rank (float, >= 1) from a difficulty both share."""
    shared = rng.standard_normal(n_users)
    return {b: np.exp(mean + 0.9 * shared + 0.9 * rng.standard_normal(n_users))
            for b, mean in BRANCHES.items()}


def ranked_lists(rng: np.random.Generator, log_popularity: np.ndarray, pool: np.ndarray,
                 targets: np.ndarray, rank: np.ndarray, k: int) -> RankResult:
    """Each row's pool ordered by log popularity + Gumbel noise, with the target inserted at
    ``rank`` where that is <= k, cut to k; log-probabilities give the list half of the mass.

    ``pool`` (U, P) holds distinct items other than the target; a row whose target is not
    listed needs P >= k.
    """
    n_users, width = pool.shape
    items = np.empty((n_users, k), dtype=np.int64)
    scores = np.empty((n_users, k), dtype=np.float32)
    column = np.arange(k)
    for first in range(0, n_users, BLOCK):
        rows = slice(first, first + BLOCK)
        logits = log_popularity[pool[rows]] + NOISE * rng.gumbel(size=pool[rows].shape)
        order = np.argsort(-logits, axis=1, kind="stable")
        listed = np.take_along_axis(pool[rows], order, axis=1)  # (b, P) best first
        listed_logits = np.take_along_axis(logits, order, axis=1)
        at = np.minimum(rank[rows], k + 1).astype(np.int64)[:, None] - 1  # k: not listed
        source = np.minimum(np.where(column < at, column, column - 1), width - 1)  # (b, k)
        below = np.take_along_axis(listed_logits, np.minimum(at, width - 1), axis=1)
        above = np.take_along_axis(listed_logits, np.maximum(at - 1, 0), axis=1)
        target_logit = np.where(at == 0, below + 1.0, np.where(at >= width, above - 1.0,
                                                               (above + below) / 2.0))
        is_target = column == at
        block_items = np.where(is_target, targets[rows, None],
                               np.take_along_axis(listed, source, axis=1))
        block_logits = np.where(is_target, target_logit,
                                np.take_along_axis(listed_logits, source, axis=1))
        top = block_logits[:, :1]
        log_norm = top + np.log(np.exp(block_logits - top).sum(axis=1, keepdims=True) * 2.0)
        items[rows], scores[rows] = block_items, block_logits - log_norm
    return RankResult(np.maximum(np.floor(rank), 1).astype(np.int64), items, scores)


def write_exports(root: Path, dataset: str, out: Path, k: int, seed: int) -> None:
    if not 1 <= k <= 100:
        raise ValueError(f"k must be in 1..100 (the pool of 100 items), got {k}")
    files = dataset_files(root)
    data = read_interactions(files)
    n_items = len(data.item_ids)
    log_popularity = np.log1p(np.bincount(data.items, minlength=n_items + 1).astype(np.float64))
    del data
    for split in ("valid", "test"):
        arrays = read_split(files[split])
        assert arrays.targets is not None
        targets = arrays.targets.astype(np.int64)
        stream = zlib.crc32(split.encode())
        pool = read_negatives(candidate_files(root, "pop100")[split]).astype(np.int32)
        negatives = read_negatives(candidate_files(root, "uniform99")[split]).astype(np.int32)
        ranks = target_ranks(np.random.default_rng([seed, stream, 1]), len(targets))
        for b, branch in enumerate(BRANCHES):
            rng = np.random.default_rng([seed, stream, 2 + b])
            settings = {  # protocol -> pool, target rank, list length
                "full": (pool, ranks[branch], k),
                "uniform99": (negatives, np.minimum(ranks[branch] * np.exp(SAMPLED_SHIFT) + 1.0,
                                                    100.0), min(k, negatives.shape[1] + 1))}
            for protocol, (candidates, rank, depth) in settings.items():  # one list at a time
                lists = ranked_lists(rng, log_popularity, candidates, targets, rank, depth)
                write_predictions(out / branch / protocol / f"{split}.parquet", arrays.users,
                                  lists, targets, protocol=protocol, k=lists.k,
                                  user_ids_path=str(files["user_ids"]),
                                  item_ids_path=str(files["item_ids"]), model=branch,
                                  dataset=dataset, split=split)
                del lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="the dataset folder, results/data/<dataset>")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", type=Path, help="default: results/predictions/<dataset>")
    parser.add_argument("--k", type=int, default=100, help="evaluation.topk")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    write_exports(args.root, args.dataset, args.out or Path("results/predictions") / args.dataset,
                  args.k, args.seed)


if __name__ == "__main__":
    main()

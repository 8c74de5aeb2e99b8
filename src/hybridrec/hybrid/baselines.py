"""The baselines Table V extended puts beside the gate: each a (U, top_n) list per test user.

- ``constant_alpha``: the best constant branch weights chosen on the validation split (every
  validation user counts, hits or not; :func:`best_constant_alpha` over :func:`simplex_grid`),
  fused with Algorithm 1 and the gate's noise range, the same noise when it is chosen and when
  it is applied to test;
- ``oracle``: per user, the branch list with the better reciprocal rank (an upper bound;
  :func:`oracle_lists`);
- ``score_fusion``: Eq. 14 with the gate's weights over the exported log-probabilities (see
  :mod:`hybridrec.hybrid.score_fusion` for what is exact), when the branches were ranked against
  the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd

from hybridrec.hybrid.align import AlignedLists, target_ranks
from hybridrec.hybrid.features import best_branch
from hybridrec.hybrid.fusion import FusionDraws, draw_fusion_randomness, fuse, fuse_vectorised
from hybridrec.hybrid.list_metrics import KEYS, mean_list_metrics
from hybridrec.hybrid.score_fusion import fuse_scores_certified

_CONSTANT_ALPHA_STREAM = 7


@dataclass(frozen=True)
class Baselines:
    lists: dict[str, np.ndarray]  # method -> (U, top_n) test lists
    constant_weights: np.ndarray  # (B,) the constant-alpha baseline's branch weights
    score_fusion_exact: np.ndarray | None  # (U,) Eq. 14's list is provably exact; None: not run


def baseline_lists(valid: AlignedLists, test: AlignedLists, weights: np.ndarray, noise: float,
                   seed: int, top_n: int, score_fusion: bool,
                   lists_complete: bool) -> Baselines:
    """Every baseline's test lists; ``weights`` (U, B) are the gate's on the test users.

    ``score_fusion`` False skips Eq. 14 (branches ranked against different candidates have no
    common catalogue to fuse over); ``lists_complete`` says every branch listed every candidate.
    """
    rng = np.random.default_rng([seed, _CONSTANT_ALPHA_STREAM])
    draws = draw_fusion_randomness(valid.n_users, valid.n_branches, top_n, rng)
    constant, _ = best_constant_alpha(valid.lists[..., :top_n], valid.target, draws, top_n=top_n,
                                      noise_range=noise)
    per_user = np.broadcast_to(constant, (test.n_users, len(constant)))
    lists = {
        "constant_alpha": fuse(test.lists[..., :top_n], per_user, top_n, noise, seed),
        "oracle": oracle_lists(test.lists, test.target, top_n),
    }
    exact = None
    if score_fusion:
        lists["score_fusion"], exact = fuse_scores_certified(test.lists, test.scores, weights,
                                                             top_n, lists_complete)
    return Baselines(lists, constant, exact)


def oracle_lists(lists: np.ndarray, target: np.ndarray, top_n: int = 10) -> np.ndarray:
    """Per user, the branch list whose reciprocal rank is best (ties: earliest branch)."""
    head = lists[..., :top_n]
    chosen = best_branch(target_ranks(head, target))
    return head[np.arange(len(head)), chosen]


def simplex_grid(n_branches: int, steps: int) -> np.ndarray:
    """Every weight vector with entries in ``{0, 1/steps, ..., 1}`` summing to 1, (G, B).

    For two branches: ``alpha = 1, 1 - 1/steps, ..., 0`` (branch 0's weight first column).
    """
    rows = []
    for combo in combinations_with_replacement(range(n_branches), steps):
        rows.append(np.bincount(np.asarray(combo, dtype=np.int64), minlength=n_branches))
    return np.asarray(rows, dtype=np.float64) / steps


def best_constant_alpha(lists: np.ndarray, target: np.ndarray, draws: FusionDraws,
                        top_n: int = 10, steps: int = 20,
                        noise_range: float = 0.0) -> tuple[np.ndarray, pd.DataFrame]:
    """The constant branch weights (same for every user) with the best fused MRR@10.

    Run it on validation lists and apply the weights to test. Grid: :func:`simplex_grid`
    (for two branches alpha in ``{0, 0.05, ..., 1}``). Ties: higher NDCG@10, then grid order.
    Returns the best ``(B,)`` weights and the whole grid with columns ``w0..w{B-1}`` and metrics.
    """
    n_users, n_branches, _ = lists.shape
    grid = simplex_grid(n_branches, steps)
    rows = []
    for w in grid:
        fused = fuse_vectorised(lists, np.broadcast_to(w, (n_users, n_branches)), draws, top_n,
                                noise_range)
        rows.append(mean_list_metrics(fused, target))
    table = pd.concat([pd.DataFrame(grid, columns=[f"w{b}" for b in range(n_branches)]),
                       pd.DataFrame(rows, columns=list(KEYS))], axis=1)
    best = table.sort_values([KEYS[0], KEYS[1]], ascending=False, kind="stable").index[0]
    return grid[best], table

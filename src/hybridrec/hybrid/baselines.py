"""The baselines Table V extended puts beside the gate: each a (U, top_n) list per test user.

- ``constant_alpha``: the best constant branch weights chosen on the validation split (every
  validation user counts, hits or not), fused with Algorithm 1 and the gate's noise range, the
  same noise when it is chosen and when it is applied to test;
- ``oracle``: per user, the branch list with the better reciprocal rank (an upper bound);
- ``score_fusion``: Eq. 14 with the gate's weights over the exported log-probabilities (see
  :func:`hybridrec.hybrid.fusion.fuse_scores` for what is exact), when the branches were ranked
  against the same candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrec.hybrid.align import AlignedLists
from hybridrec.hybrid.fusion import (
    best_constant_alpha,
    draw_fusion_randomness,
    fuse,
    fuse_scores_certified,
    oracle_lists,
)

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

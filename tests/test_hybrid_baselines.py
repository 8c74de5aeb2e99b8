"""The fusion baselines' building blocks: the oracle's lists, the simplex grid and the best
constant branch weights."""

from __future__ import annotations

import numpy as np

from hybridrec.hybrid.baselines import best_constant_alpha, oracle_lists, simplex_grid
from hybridrec.hybrid.fusion import draw_fusion_randomness


def test_oracle_takes_the_branch_with_the_better_rank() -> None:
    lists = np.array([[[1, 2, 3], [3, 4, 5]], [[1, 2, 3], [6, 2, 7]], [[1, 2, 3], [4, 5, 6]]])
    target = np.array([3, 2, 9])
    # user 0: ranks (3, 1) -> FMLP; user 1: tie (2, 2) -> LinRec; user 2: both miss -> LinRec
    assert oracle_lists(lists, target, top_n=3).tolist() == [[3, 4, 5], [1, 2, 3], [1, 2, 3]]


def test_simplex_grid() -> None:
    grid = simplex_grid(2, 4)
    np.testing.assert_allclose(grid[:, 0], [1.0, 0.75, 0.5, 0.25, 0.0])
    assert simplex_grid(3, 2).shape == (6, 3)
    np.testing.assert_allclose(simplex_grid(3, 5).sum(axis=1), 1.0)


def test_best_constant_alpha_finds_the_only_useful_branch() -> None:
    rng = np.random.default_rng(1)
    n = 200
    target = rng.integers(0, 50, n)
    lists = rng.integers(50, 100, size=(n, 2, 10))
    lists[:, 0, 0] = target  # LinRec always ranks the target first, FMLP never lists it
    draws = draw_fusion_randomness(n, 2, 10, rng)
    weights, table = best_constant_alpha(lists, target, draws, steps=10)
    np.testing.assert_allclose(weights, [1.0, 0.0])
    assert len(table) == 11 and table["mrr@10"].max() == 1.0

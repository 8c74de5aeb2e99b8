"""Algorithm 1: the reference transcription and the vectorised form, and their noise."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.fusion import (
    FusionDraws,
    as_branch_weights,
    draw_fusion_randomness,
    fuse_reference,
    fuse_vectorised,
    noisy_weights,
)


@st.composite
def fusion_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, FusionDraws, int, float]:
    """Small lists over a small catalogue: overlaps across branches, repeats inside a list,
    padding anywhere, short and empty lists."""
    n_branches = draw(st.sampled_from([2, 3]))
    n_users = draw(st.integers(1, 6))
    k = draw(st.integers(0, 6))
    top_n = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lists = rng.integers(0, draw(st.integers(1, 10)), size=(n_users, n_branches, k))
    lists[rng.random(lists.shape) < draw(st.sampled_from([0.0, 0.2, 0.6]))] = PAD
    weights = rng.dirichlet(np.ones(n_branches), size=n_users)
    if draw(st.booleans()):  # put weights exactly on the edges too
        weights = np.eye(n_branches)[rng.integers(0, n_branches, n_users)]
    noise = draw(st.sampled_from([0.0, 0.05, 0.25, 1.0]))
    return lists, weights, draw_fusion_randomness(n_users, n_branches, top_n, rng), top_n, noise


@settings(max_examples=300, deadline=None)
@given(fusion_cases())
def test_reference_and_vectorised_agree(case: tuple) -> None:
    lists, weights, draws, top_n, noise = case
    expected = fuse_reference(lists, weights, draws, top_n, noise)
    np.testing.assert_array_equal(fuse_vectorised(lists, weights, draws, top_n, noise), expected)


@settings(max_examples=200, deadline=None)
@given(fusion_cases())
def test_fused_list_is_a_duplicate_free_prefix_of_the_union(case: tuple) -> None:
    lists, weights, draws, top_n, noise = case
    fused = fuse_vectorised(lists, weights, draws, top_n, noise)
    for u in range(len(lists)):
        union = set(lists[u][lists[u] != PAD].tolist())
        row = fused[u]
        filled = row[row != PAD]
        assert len(filled) == min(top_n, len(union))
        assert (row[:len(filled)] == filled).all(), "padding only at the end"
        assert len(set(filled.tolist())) == len(filled)
        assert set(filled.tolist()) <= union


def _dedup(row: np.ndarray) -> list[int]:
    out: list[int] = []
    for item in row.tolist():
        if item != PAD and item not in out:
            out.append(item)
    return out


@pytest.mark.parametrize("alpha, leader", [(1.0, 0), (0.0, 1)])
def test_alpha_one_is_linrec_and_zero_is_fmlp(alpha: float, leader: int) -> None:
    rng = np.random.default_rng(3)
    lists = rng.integers(0, 15, size=(50, 2, 10))
    draws = draw_fusion_randomness(50, 2, 10, rng)
    fused = fuse_vectorised(lists, np.full(50, alpha), draws, 10, noise_range=0.0)
    for u in range(50):
        own = _dedup(lists[u, leader])[:10]
        assert fused[u, :len(own)].tolist() == own
        rest = [i for i in _dedup(lists[u, 1 - leader]) if i not in own]
        assert fused[u, len(own):].tolist()[:len(rest)] == rest[:10 - len(own)]


def test_falls_back_to_the_other_branch_when_one_is_exhausted() -> None:
    lists = np.array([[[1, 2, PAD, PAD], [3, 4, 5, 6]]])
    draws = FusionDraws(noise=np.zeros((1, 2)), steps=np.zeros((1, 5)))  # always LinRec
    for fuse in (fuse_reference, fuse_vectorised):
        assert fuse(lists, np.array([0.9]), draws, 5, 0.0).tolist() == [[1, 2, 3, 4, 5]]


def test_worked_example_follows_the_pseudocode() -> None:
    lists = np.array([[[1, 2, 3, 7], [2, 4, 5, 6]]])
    steps = np.array([[0.1, 0.9, 0.2, 0.7, 0.3, 0.95]])
    draws = FusionDraws(noise=np.zeros((1, 2)), steps=steps)
    # u < 0.5 takes LinRec: 1 (L), 2 (F), 3 (L skips 2), 4 (F), 7 (L), 5 (F)
    for fuse in (fuse_reference, fuse_vectorised):
        assert fuse(lists, np.array([0.5]), draws, 6, 0.0).tolist() == [[1, 2, 3, 4, 7, 5]]


def test_noise_is_scaled_and_clipped_as_in_the_paper() -> None:
    weights = as_branch_weights(np.array([0.9, 0.1, 0.5]), 2)
    noise = np.array([[1.0, 0.0], [-1.0, 0.0], [0.5, -0.9]])
    noisy = noisy_weights(weights, noise, 0.2)
    np.testing.assert_allclose(noisy[:, 0], [1.0, 0.0, 0.6])
    np.testing.assert_allclose(noisy.sum(axis=1), 1.0)


def test_noise_for_more_branches_is_clipped_and_renormalised() -> None:
    weights = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    noise = np.array([[1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]])
    noisy = noisy_weights(weights, noise, 0.4)
    np.testing.assert_allclose(noisy[0], np.array([0.9, 0.0, 0.2]) / 1.1)
    np.testing.assert_allclose(noisy[1], [0.0, 0.0, 1.0])

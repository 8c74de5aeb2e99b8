"""Algorithm 1 (reference and vectorised), score fusion and the fusion baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.fusion import (
    FusionDraws,
    as_branch_weights,
    best_constant_alpha,
    draw_fusion_randomness,
    fuse_reference,
    fuse_scores,
    fuse_vectorised,
    noisy_weights,
    oracle_lists,
    score_fusion_exact,
    simplex_grid,
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


def test_score_fusion_ranks_the_union_by_the_weighted_probability() -> None:
    lists = np.array([[[10, 11, 12], [12, 13, PAD]]])
    scores = np.log(np.array([[[0.5, 0.3, 0.1], [0.6, 0.2, 1.0]]]))
    # alpha 0.5, missing -> the branch's lowest listed probability
    # 10: .5*.5 + .5*.2 = .35; 11: .15 + .1 = .25; 12: .05 + .3 = .35; 13: .05 + .1 = .15
    fused = fuse_scores(lists, scores, np.array([0.5]), top_n=5)
    assert fused.tolist() == [[10, 12, 11, 13, PAD]]
    # missing -> 0: 10: .25, 11: .15, 12: .35, 13: .1
    fused = fuse_scores(lists, scores, np.array([0.5]), top_n=3, missing="zero")
    assert fused.tolist() == [[12, 10, 11]]


def _catalogue_scores(n_users: int, n_items: int, seed: int) -> np.ndarray:
    """Log-softmax scores (U, 2, N) of two branches over a whole catalogue."""
    logits = np.random.default_rng(seed).normal(size=(n_users, 2, n_items)) * 3.0
    top = logits.max(axis=2, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=2, keepdims=True))


def _top_k(log_p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    lists = np.argsort(-log_p, axis=2, kind="stable")[..., :k]
    return lists, np.take_along_axis(log_p, lists, axis=2)


def test_score_fusion_of_top_k_lists_is_exact_wherever_certified() -> None:
    """Eq. 14 over the whole catalogue, against the fusion of top-k exports."""
    log_p = _catalogue_scores(400, 300, seed=0)
    weights = np.random.default_rng(1).dirichlet([1.0, 1.0], size=400)
    truth = np.argsort(-(weights[:, :, None] * np.exp(log_p)).sum(axis=1), axis=1,
                       kind="stable")[:, :10]  # (U, 10) the exact fused top 10
    certified = []
    for k in (12, 40):
        lists, scores = _top_k(log_p, k)
        fused = fuse_scores(lists, scores, weights, top_n=10)
        exact = score_fusion_exact(lists, scores, weights, top_n=10)
        np.testing.assert_array_equal(fused[exact], truth[exact])
        certified.append(exact.mean())
    assert 0.0 < certified[0] < certified[1]  # deeper exports certify more users
    assert (fused[~exact] != truth[~exact]).any() or not (~exact).any()
    # every item listed (a sampled protocol exported whole): exact for every user
    lists, scores = _top_k(log_p, 300)
    exact = score_fusion_exact(lists, scores, weights, top_n=10, lists_complete=True)
    assert exact.all()
    np.testing.assert_array_equal(fuse_scores(lists, scores, weights, top_n=10), truth)


def test_score_fusion_in_blocks_of_users_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eq. 14 runs in blocks of users (memory); every user's result is that of one block."""
    log_p = _catalogue_scores(50, 120, seed=3)
    weights = np.random.default_rng(2).dirichlet([1.0, 1.0], size=50)
    lists, scores = _top_k(log_p, 20)
    lists[3, 1, 15:], scores[3, 1, 15:] = PAD, np.nan  # a short list
    whole = fuse_scores(lists, scores, weights, top_n=10)
    exact = score_fusion_exact(lists, scores, weights, top_n=10)
    import hybridrec.hybrid.fusion as fusion

    monkeypatch.setattr(fusion, "_user_blocks", lambda lists: [
        slice(first, first + 7) for first in range(0, max(len(lists), 1), 7)])
    np.testing.assert_array_equal(fuse_scores(lists, scores, weights, top_n=10), whole)
    np.testing.assert_array_equal(score_fusion_exact(lists, scores, weights, top_n=10), exact)
    both = fusion.fuse_scores_certified(lists, scores, weights, top_n=10)
    np.testing.assert_array_equal(both[0], whole)
    np.testing.assert_array_equal(both[1], exact)


def test_score_fusion_lookup_matches_a_plain_reference() -> None:
    """Each candidate's probability under every branch (the highest where a list repeats an
    item), whether the branch lists it, and its first occurrence, against Python dicts."""
    from hybridrec.hybrid.fusion import _lookup

    rng = np.random.default_rng(5)
    n_users, n_branches, k = 30, 3, 6
    lists = rng.integers(1, 9, (n_users, n_branches, k))  # few items: many repeats
    lists[:, :, 4:][rng.random((n_users, n_branches, 2)) < 0.5] = PAD
    prob = np.where(lists == PAD, 0.0, rng.random(lists.shape))
    candidates = lists.reshape(n_users, -1)
    p_listed, listed, keep = _lookup(prob.reshape(n_users, -1), candidates, k)
    for u in range(n_users):
        best: dict[tuple[int, int], float] = {}
        for b in range(n_branches):
            for item, p in zip(lists[u, b], prob[u, b], strict=True):
                if item != PAD:
                    best[b, item] = max(best.get((b, item), 0.0), p)
        seen: set[int] = set()
        for c, item in enumerate(candidates[u]):
            for b in range(n_branches):
                assert listed[u, c, b] == ((b, item) in best)
                assert p_listed[u, c, b] == best.get((b, item), 0.0)
            assert keep[u, c] == (item != PAD and item not in seen)
            seen.add(int(item))


def test_score_fusion_certificate_refuses_what_it_cannot_know() -> None:
    lists = np.array([[[10, 11, 12], [12, 13, PAD]]])
    scores = np.log(np.array([[[0.5, 0.3, 0.1], [0.6, 0.2, 1.0]]]))
    # item 10 is unknown to branch 1, whose unlisted items may score up to 0.2
    assert not score_fusion_exact(lists, scores, np.array([0.5]), top_n=1)[0]
    # all weight on branch 0, whose listed probabilities are exact: 10 is surely first
    assert score_fusion_exact(lists, scores, np.array([1.0]), top_n=1)[0]
    assert not score_fusion_exact(lists, scores, np.array([1.0]), top_n=4)[0]  # only 3 known


def test_score_fusion_with_alpha_one_keeps_linrec_order() -> None:
    rng = np.random.default_rng(0)
    lists = np.stack([np.stack([rng.permutation(30)[:10] for _ in range(2)]) for _ in range(20)])
    scores = np.sort(np.log(rng.random((20, 2, 10))), axis=2)[:, :, ::-1]
    fused = fuse_scores(lists, scores, np.ones(20), top_n=10, missing="zero")
    np.testing.assert_array_equal(fused, lists[:, 0])


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

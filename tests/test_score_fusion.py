"""Eq. 14 over the branches' top-k lists: the ranking, the certificate of exactness against the
whole catalogue, the blocks of users and the lookup of each candidate's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.score_fusion import fuse_scores, score_fusion_exact


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
    import hybridrec.hybrid.score_fusion as score_fusion

    monkeypatch.setattr(score_fusion, "_user_blocks", lambda lists: [
        slice(first, first + 7) for first in range(0, max(len(lists), 1), 7)])
    np.testing.assert_array_equal(fuse_scores(lists, scores, weights, top_n=10), whole)
    np.testing.assert_array_equal(score_fusion_exact(lists, scores, weights, top_n=10), exact)
    both = score_fusion.fuse_scores_certified(lists, scores, weights, top_n=10)
    np.testing.assert_array_equal(both[0], whole)
    np.testing.assert_array_equal(both[1], exact)


def test_score_fusion_lookup_matches_a_plain_reference() -> None:
    """Each candidate's probability under every branch (the highest where a list repeats an
    item), whether the branch lists it, and its first occurrence, against Python dicts."""
    from hybridrec.hybrid.score_fusion import _lookup

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

"""Score-level fusion of the branches' top-k lists: the paper's Eq. 14, and a certificate of
where the fusion of top-k exports equals Eq. 14 over the whole candidate set.

Lists are ``(U, B, k)`` integer arrays padded with ``PAD`` and scores their log-probabilities
(``p = exp(score)``, a softmax over the whole catalogue); outputs are ``(U, top_n)`` padded the
same way. Users are fused in blocks (:func:`_user_blocks`), so memory stays a few MB whatever
their number and each user's result depends on that user's lists only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hybridrec.hybrid.align import PAD
from hybridrec.hybrid.fusion import as_branch_weights


def fuse_scores(lists: np.ndarray, scores: np.ndarray, weights: np.ndarray, top_n: int,
                missing: str = "min") -> np.ndarray:
    """Score-level fusion (paper Eq. 14): rank the union of the lists by ``sum_b w_b p_b(i)``.

    ``lists`` (U, B, k) are each branch's top-k of one candidate set (the whole catalogue under
    ``full``, the sampled candidates otherwise) and ``scores`` their log-probabilities
    (``p = exp(score)``, a softmax over the whole catalogue). An item absent from branch b's
    top-k has an unknown ``p_b`` no larger than b's smallest listed probability:
    ``missing="min"`` (default) uses that bound, the value closest to the truth;
    ``missing="zero"`` uses 0, which favours items every branch lists. Ties keep the earlier
    (branch, position). Returns ``(U, top_n)``, ``PAD`` past the union's size.

    What is exact: for every user where :func:`score_fusion_exact` holds, the result is the
    top ``top_n`` of Eq. 14 over the whole candidate set, the same list that fusing the branches'
    full score vectors would give. Elsewhere it is an approximation: the ranking of the union
    of the top-k lists with the bound above for the missing probabilities; a deeper export
    (``evaluation.topk``) makes more users exact.
    """
    if missing not in ("min", "zero"):
        raise ValueError(f"missing must be 'min' or 'zero', got {missing!r}")
    weights = as_branch_weights(weights, lists.shape[1])
    return np.concatenate([_score_fusion(lists[rows], scores[rows], weights[rows], top_n,
                                         missing).ranked for rows in _user_blocks(lists)])


def score_fusion_exact(lists: np.ndarray, scores: np.ndarray, weights: np.ndarray, top_n: int,
                       lists_complete: bool = False) -> np.ndarray:
    """Per user, whether :func:`fuse_scores`'s list is provably Eq. 14's exact top ``top_n``.

    A certificate from bounds, (U,) bool. Each candidate's fused score lies between a lower
    bound (its unknown ``p_b`` taken as 0) and an upper bound (as b's smallest listed
    probability); an item no branch lists scores at most ``sum_b w_b min_b``, and exists unless
    ``lists_complete`` (every branch listed every candidate). The list is exact when it has
    ``top_n`` items and each one's lower bound reaches the upper bound of everything ranked
    after it, listed or not: then its true score is at least theirs, and both the set and the
    order are Eq. 14's. Ties at a bound count as exact.
    """
    return fuse_scores_certified(lists, scores, weights, top_n, lists_complete)[1]


def fuse_scores_certified(lists: np.ndarray, scores: np.ndarray, weights: np.ndarray,
                          top_n: int, lists_complete: bool = False
                          ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fuse_scores` (``missing="min"``) and :func:`score_fusion_exact` from one pass:
    the fused lists (U, top_n) and which of them are certified exact (U,)."""
    weights = as_branch_weights(weights, lists.shape[1])
    ranked, exact = [], []
    for rows in _user_blocks(lists):
        fused = _score_fusion(lists[rows], scores[rows], weights[rows], top_n, "min")
        ranked.append(fused.ranked)
        exact.append(_certificate(fused, weights[rows], top_n, lists_complete))
    return np.concatenate(ranked), np.concatenate(exact)


def _user_blocks(lists: np.ndarray, budget: int = 1 << 18) -> list[slice]:
    """Consecutive blocks of the users of ``lists`` (U, B, k), each with about ``budget`` list
    entries (at least one block, empty for no users): Eq. 14's (users, candidates, branches)
    arrays stay a few MB whatever the users, and every user's result depends on that user's
    lists only."""
    n_users, per_user = lists.shape[0], int(np.prod(lists.shape[1:]))
    per_block = max(1, budget // max(per_user, 1))
    return [slice(first, first + per_block) for first in range(0, max(n_users, 1), per_block)]


def _certificate(fused: _ScoreFusion, weights: np.ndarray, top_n: int,
                 lists_complete: bool) -> np.ndarray:
    """:func:`score_fusion_exact` of one block of users; ``weights`` (U, B)."""
    n_users = fused.upper.shape[0]
    if n_users == 0:
        return np.zeros(0, dtype=bool)
    selected = np.zeros(fused.upper.shape, dtype=bool)
    np.put_along_axis(selected, fused.order, fused.order_kept, axis=1)
    after = np.where(fused.keep & ~selected, fused.upper, -np.inf).max(axis=1, initial=-np.inf)
    if not lists_complete:
        after = np.maximum(after, (fused.floor * weights).sum(axis=1))  # items nobody lists
    upper = np.where(fused.order_kept, np.take_along_axis(fused.upper, fused.order, axis=1),
                     -np.inf)  # (U, n) in list order
    lower = np.take_along_axis(fused.lower, fused.order, axis=1)
    later = np.maximum.accumulate(upper[:, ::-1], axis=1)[:, ::-1]  # max over positions >= j
    later = np.concatenate([later[:, 1:], np.full((n_users, 1), -np.inf)], axis=1)
    bound = np.maximum(later, after[:, None])  # (U, n): upper bound of anything after j
    certain = np.where(fused.order_kept, lower >= bound, True).all(axis=1)
    return np.asarray((fused.order_kept.sum(axis=1) == top_n) & certain)


@dataclass(frozen=True)
class _ScoreFusion:
    """Eq. 14 over the candidates ``(U, C = B * k)``: the branch lists side by side."""

    ranked: np.ndarray  # (U, top_n) item ids, PAD past the union
    lower: np.ndarray  # (U, C) fused score with each unknown p_b as 0
    upper: np.ndarray  # (U, C) fused score with each unknown p_b as b's smallest listed one
    keep: np.ndarray  # (U, C) first occurrence of each item among the candidates
    order: np.ndarray  # (U, min(top_n, C)) candidate columns of ``ranked``
    order_kept: np.ndarray  # (U, min(top_n, C)) whether that column is an item (not padding)
    floor: np.ndarray  # (U, B) smallest listed probability per branch (1 for an empty list)


def _score_fusion(lists: np.ndarray, scores: np.ndarray, weights: np.ndarray, top_n: int,
                  missing: str) -> _ScoreFusion:
    n_users, n_branches, k = lists.shape
    weights = as_branch_weights(weights, n_branches)
    valid = lists != PAD
    prob = np.where(valid, np.exp(np.where(valid, scores, -np.inf)), 0.0)  # (U, B, k)
    smallest = np.where(valid, prob, np.inf).min(axis=2, initial=np.inf)  # (U, B)
    # an empty list bounds nothing: 1 is the only upper bound of a probability
    floor = np.where(np.isfinite(smallest), smallest, 1.0)

    candidates = lists.reshape(n_users, n_branches * k)  # (U, C)
    p_listed, listed, keep = _lookup(prob.reshape(n_users, n_branches * k), candidates, k)
    w = weights[:, None, :]  # (U, 1, B)
    lower = (np.where(listed, p_listed, 0.0) * w).sum(axis=2)  # (U, C)
    upper = (np.where(listed, p_listed, floor[:, None, :]) * w).sum(axis=2)
    # an empty list's unknown probabilities are filled with 0 (no floor to stand for them)
    fill = (np.where(np.isfinite(smallest), smallest, 0.0) if missing == "min"
            else np.zeros_like(floor))
    score = (np.where(listed, p_listed, fill[:, None, :]) * w).sum(axis=2)

    order = np.argsort(np.where(keep, -score, np.inf), axis=1, kind="stable")[:, :top_n]
    order_kept = np.take_along_axis(keep, order, axis=1)
    ranked = np.where(order_kept, np.take_along_axis(candidates, order, axis=1), PAD)
    if ranked.shape[1] < top_n:
        ranked = np.pad(ranked, ((0, 0), (0, top_n - ranked.shape[1])), constant_values=PAD)
    return _ScoreFusion(ranked.astype(np.int64), lower, upper, keep, order, order_kept, floor)


def _lookup(prob: np.ndarray, candidates: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Branch b's probability of each candidate and whether b lists it, (U, C, B) each, and
    whether each candidate is its item's first occurrence in the row (U, C).

    ``candidates`` (U, C = B * k) are the branch lists side by side and ``prob`` (U, C) their
    probabilities (0 at padding). One stable sort per row brings each item's entries together
    in column order; an item a list repeats takes its highest listed probability.
    """
    n_users, width = candidates.shape
    n_branches = width // k if k else 0
    order = np.argsort(candidates, axis=1, kind="stable")
    items = np.take_along_axis(candidates, order, axis=1)
    starts = np.ones(items.shape, dtype=bool)  # an item's first entry in sorted order
    starts[:, 1:] = items[:, 1:] != items[:, :-1]
    keep = np.empty_like(starts)
    np.put_along_axis(keep, order, starts, axis=1)
    keep &= candidates != PAD

    group = np.cumsum(starts.reshape(-1)) - 1  # (U * C,) one group per (row, item)
    present = items.reshape(-1) != PAD
    at = (group[present], (order // max(k, 1)).reshape(-1)[present])  # (group, branch)
    group_p = np.zeros((int(group[-1]) + 1 if group.size else 0, n_branches))
    np.maximum.at(group_p, at, np.take_along_axis(prob, order, axis=1).reshape(-1)[present])
    group_listed = np.zeros(group_p.shape, dtype=bool)
    group_listed[at] = True
    group_of = np.empty_like(order)  # (U, C) each candidate's group
    np.put_along_axis(group_of, order, group.reshape(n_users, width), axis=1)
    return group_p[group_of], group_listed[group_of], keep

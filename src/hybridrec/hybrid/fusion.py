"""Rank-level fusion of the branches' lists (the paper's Algorithm 1), score-level fusion
(its Eq. 14), and two baselines.

Algorithm 1 is written twice: :func:`fuse_reference` transcribes the pseudocode one user at a
time; :func:`fuse_vectorised` runs every user at once. Both read their randomness from one
:class:`FusionDraws`, so equal draws give equal lists (tested, and asserted by the benchmark):

- per user, one noise draw per branch ``e ~ U(-1, 1)``; the noise is ``noise_range * e``, which
  is the paper's ``U(-noise_range, noise_range)`` (drawing ``e`` once lets every noise range
  share the same draws);
- per user, one ``U(0, 1)`` per output position: step ``t`` reads ``steps[u, t]`` whichever
  branch it picks.

Generalisation to B branches (the paper has two; ``weights`` sum to 1 per user):

- Two branches, exactly the paper: ``alpha = weights[:, 0]`` (LinRec's),
  ``alpha_noisy = clip(alpha + noise_range * e[:, 0], 0, 1)``; step ``t`` takes branch 0 if
  ``steps[u, t] < alpha_noisy``, else branch 1; ``e[:, 1]`` is unused.
- More: each weight gets its own noise, ``clip(w_b + noise_range * e_b, 0, 1)``, and the
  result is renormalised (uniform if every weight clipped to 0); step ``t`` takes the first
  branch whose cumulative weight exceeds ``steps[u, t]`` (inverse CDF).
- The picked branch gives its next item not yet in the list; if it has none left, the other
  branches are tried in branch order (for two branches: "the other one", as in the paper).
  The list ends at ``top_n`` items or when every branch is exhausted.

Lists are ``(U, B, k)`` integer arrays padded with ``PAD``; outputs are ``(U, top_n)`` padded
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np
import pandas as pd

from hybridrec.hybrid.align import PAD, target_ranks
from hybridrec.hybrid.features import best_branch
from hybridrec.hybrid.list_metrics import KEYS, mean_list_metrics


@dataclass(frozen=True)
class FusionDraws:
    """The random numbers one run of Algorithm 1 consumes for U users."""

    noise: np.ndarray  # (U, B) U(-1, 1); scaled by noise_range
    steps: np.ndarray  # (U, top_n) U(0, 1); step t of user u reads steps[u, t]


def draw_fusion_randomness(n_users: int, n_branches: int, top_n: int,
                           rng: np.random.Generator) -> FusionDraws:
    """Draw the noise first, then the per-step uniforms, from ``rng``."""
    noise = rng.uniform(-1.0, 1.0, size=(n_users, n_branches))
    steps = rng.uniform(0.0, 1.0, size=(n_users, top_n))
    return FusionDraws(noise=noise, steps=steps)


def as_branch_weights(weights: np.ndarray, n_branches: int) -> np.ndarray:
    """``(U, B)`` weights; a 1-D ``alpha`` (branch 0's weight) is accepted for two branches."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim == 1:
        if n_branches != 2:
            raise ValueError(f"a 1-D alpha needs exactly two branches, got {n_branches}")
        return np.stack([weights, 1.0 - weights], axis=1)
    if weights.shape[1] != n_branches:
        raise ValueError(f"weights have {weights.shape[1]} columns for {n_branches} branches")
    return weights


def noisy_weights(weights: np.ndarray, noise: np.ndarray, noise_range: float) -> np.ndarray:
    """Per-user branch weights after noise, clipping and (B > 2) renormalisation, (U, B)."""
    if weights.shape[1] == 2:
        alpha = np.clip(weights[:, 0] + noise_range * noise[:, 0], 0.0, 1.0)
        return np.stack([alpha, 1.0 - alpha], axis=1)
    clipped = np.clip(weights + noise_range * noise, 0.0, 1.0)
    total = np.zeros(len(clipped))
    for b in range(clipped.shape[1]):  # left to right, as Python's sum() in the reference
        total = total + clipped[:, b]
    uniform = np.full_like(clipped, 1.0 / clipped.shape[1])
    return np.where(total[:, None] > 0, clipped / np.where(total > 0, total, 1.0)[:, None],
                    uniform)


def fuse_reference(lists: np.ndarray, weights: np.ndarray, draws: FusionDraws, top_n: int,
                   noise_range: float) -> np.ndarray:
    """Algorithm 1, one user at a time, as the pseudocode reads (generalised to B branches)."""
    n_users, n_branches, _ = lists.shape
    weights = as_branch_weights(weights, n_branches)
    fused = np.full((n_users, top_n), PAD, dtype=np.int64)
    for u in range(n_users):
        preds = [[int(i) for i in lists[u, b] if i != PAD] for b in range(n_branches)]
        final_list = _algorithm_1(preds, [float(w) for w in weights[u]],
                                  [float(e) for e in draws.noise[u]],
                                  [float(s) for s in draws.steps[u]], top_n, noise_range)
        fused[u, :len(final_list)] = final_list
    return fused


def _algorithm_1(preds: list[list[int]], weights: list[float], noise: list[float],
                 steps: list[float], top_n: int, noise_range: float) -> list[int]:
    n_branches = len(preds)
    final_list: list[int] = []
    idx = [0] * n_branches
    if n_branches == 2:
        alpha_noisy = weights[0] + noise_range * noise[0]
        alpha_noisy = max(0.0, min(1.0, alpha_noisy))
        noisy = [alpha_noisy, 1.0 - alpha_noisy]
    else:
        noisy = [max(0.0, min(1.0, w + noise_range * e))
                 for w, e in zip(weights, noise, strict=True)]
        total = sum(noisy)
        noisy = [w / total for w in noisy] if total > 0 else [1.0 / n_branches] * n_branches
    t = 0
    while len(final_list) < top_n:
        chosen = _inverse_cdf(noisy, steps[t])
        t += 1
        candidate = None
        for b in [chosen] + [b for b in range(n_branches) if b != chosen]:
            while idx[b] < len(preds[b]):
                if preds[b][idx[b]] not in final_list:
                    candidate = preds[b][idx[b]]
                    idx[b] += 1
                    break
                idx[b] += 1
            if candidate is not None:
                break
        if candidate is None:
            break
        final_list.append(candidate)
    return final_list[:top_n]


def _inverse_cdf(weights: list[float], u: float) -> int:
    """First branch whose cumulative weight exceeds ``u`` (for two: ``0 if u < alpha else 1``)."""
    cumulative = 0.0
    for b, w in enumerate(weights[:-1]):
        cumulative += w
        if u < cumulative:
            return b
    return len(weights) - 1


def fuse_vectorised(lists: np.ndarray, weights: np.ndarray, draws: FusionDraws, top_n: int,
                    noise_range: float) -> np.ndarray:
    """Algorithm 1 for every user at once; equal to :func:`fuse_reference` on equal draws.

    A position is *available* while its item is neither padding nor already fused. A branch's
    head, its first available position (``k`` when exhausted), is where the pseudocode's inner
    loop stops: the positions that loop skips are exactly the unavailable ones before it. Each
    step takes, per user, the head item of the drawn branch or, if that one is exhausted, of the
    first other branch in branch order that has one; marks the item unavailable everywhere; and
    moves on the heads that held it. Arrays are users-last, so every operation runs over
    contiguous user vectors.
    """
    n_users, n_branches, k = lists.shape
    if k == 0:
        return np.full((n_users, top_n), PAD, dtype=np.int64)
    weights = as_branch_weights(weights, n_branches)
    noisy = noisy_weights(weights, draws.noise, noise_range)
    cumulative = np.cumsum(noisy[:, :-1], axis=1)  # (U, B - 1), sequential like the reference
    chosen = np.zeros((n_users, top_n), dtype=np.int8)
    for c in cumulative.T:  # inverse CDF: the number of cumulative weights <= the uniform
        chosen += draws.steps[:, :top_n] >= c[:, None]
    chosen_by_step = chosen.T.astype(np.intp)  # (top_n, U)

    fits = lists.size == 0 or lists.max() < np.iinfo(np.int32).max
    items = np.ascontiguousarray(lists.reshape(n_users, n_branches * k).T,
                                 dtype=np.int32 if fits else np.int64)  # (B * k, U)
    available = items != PAD
    flat_items, flat_available = items.reshape(-1), available.reshape(-1)
    users = np.arange(n_users)
    start = (np.arange(n_branches)[:, None] * k * n_users + users).reshape(-1)  # (b, 0, u)
    # heads, flat over (B + 1) x U: an extra always-exhausted row stands for "no branch left"
    head = np.full((n_branches + 1) * n_users, k, dtype=np.intp)
    head[:-n_users] = 0
    head_item = np.full((n_branches + 1) * n_users, PAD, dtype=items.dtype)
    head_item[:-n_users] = flat_items.take(start)

    def move_on(index: np.ndarray) -> None:
        """Advance the heads at ``index`` (< B * U) to their next available position."""
        while index.size:
            position = head[index] + 1
            head[index] = position
            inside = position < k
            cell = start[index] + np.minimum(position, k - 1) * n_users
            head_item[index] = np.where(inside, flat_items.take(cell), PAD)
            index = index[inside & ~flat_available.take(cell)]

    move_on(np.flatnonzero(head_item[:-n_users] == PAD))
    fused = np.full((n_users, top_n), PAD, dtype=np.int64)
    for t in range(top_n):
        alive = head < k
        branch = np.full(n_users, n_branches)
        for b in reversed(range(n_branches)):  # the first branch, in branch order, with items
            branch = np.where(alive[b * n_users:(b + 1) * n_users], b, branch)
        drawn = chosen_by_step[t]
        branch = np.where(alive.take(drawn * n_users + users), drawn, branch)
        item = head_item.take(branch * n_users + users)  # PAD when every branch is exhausted
        fused[:, t] = item
        available &= items != item
        holders = head_item[:-n_users].reshape(n_branches, n_users) == item
        move_on(np.flatnonzero(holders.reshape(-1) & alive[:-n_users]))
    return fused


def fuse(lists: np.ndarray, weights: np.ndarray, top_n: int, noise_range: float,
         seed: int | np.random.Generator) -> np.ndarray:
    """Algorithm 1 (vectorised) with fresh draws from ``seed``."""
    rng = np.random.default_rng(seed)
    draws = draw_fusion_randomness(lists.shape[0], lists.shape[1], top_n, rng)
    return fuse_vectorised(lists, weights, draws, top_n, noise_range)


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

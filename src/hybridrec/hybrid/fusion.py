"""Rank-level fusion of the branches' lists: the paper's Algorithm 1.

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

import numpy as np

from hybridrec.hybrid.align import PAD


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

"""The evaluation protocol shared by every model and by the hybrid stage.

Three protocols (docs/contracts.md): ``full`` ranks the target against the whole catalogue;
``uniform99`` and ``pop100`` rank it against the sampled negatives of the candidates files.

Conventions, identical for both entry points:

- Scores come in user batches from ``scores_fn(batch_index) -> (B, num_items + 1)`` logits, where
  ``batch_index`` is a ``LongTensor`` of row positions (0-based, into ``targets``) on the device of
  ``targets``. The logits may live on any device; all work follows them and only
  the (B,) ranks and (B, k) top-k lists are copied to the host. Column 0 (padding) is never ranked.
  A users x items matrix is never held for more than one batch at a time.
- Ties are pessimistic: ``rank = 1 + #{other ranked items with score >= target score}``.
- Top-k lists are ordered by score, best first; exactly tied scores are ordered by lower item id
  first. This order is exact (no epsilon tie keys) and is decided separately from the rank, so it
  can never change a rank.
- ``topk_scores`` are log-probabilities: ``log_softmax`` of the logits over items 1..num_items
  (column 0 excluded), gathered at the top-k items. History exclusion and candidate sampling decide
  which items are listed, never their scores.
- Logits are handled in at least float32 (half precision is upcast). A NaN or ``+inf`` logit,
  or a non-finite target logit, raises ``ValueError``: it would otherwise give silently wrong ranks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

_NEG_INF = float("-inf")

ScoresFn = Callable[[Tensor], Tensor]
"""Maps a (B,) LongTensor of row positions to (B, num_items + 1) logits (column 0 = padding)."""

_BatchFn = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, Tensor]]


@dataclass(frozen=True)
class RankResult:
    """Ranks and top-k lists for U users (host NumPy arrays, rows in input order).

    Attributes:
        target_rank: (U,) int64, 1-based rank of the target under the protocol.
        topk_items: (U, k) int64 item ids, best first (ties: lower id first).
        topk_scores: (U, k) float32 log-probabilities of those items over the full catalogue.
    """

    target_rank: np.ndarray
    topk_items: np.ndarray
    topk_scores: np.ndarray

    def __post_init__(self) -> None:
        if self.target_rank.ndim != 1 or self.topk_items.ndim != 2:
            raise ValueError("target_rank must be (U,) and topk_items (U, k)")
        if (self.topk_items.shape[0] != self.target_rank.shape[0]
                or self.topk_scores.shape != self.topk_items.shape):
            raise ValueError(
                f"inconsistent shapes: target_rank {self.target_rank.shape}, "
                f"topk_items {self.topk_items.shape}, topk_scores {self.topk_scores.shape}")

    @property
    def num_users(self) -> int:
        return int(self.target_rank.shape[0])

    @property
    def k(self) -> int:
        return int(self.topk_items.shape[1])


# ---------------------------------------------------------------------------------------------
# Public entry points


def rank_full(
    scores_fn: ScoresFn,
    inputs: Tensor | np.ndarray,
    targets: Tensor | np.ndarray,
    num_items: int,
    k: int,
    batch_size: int,
    exclude_history: bool = True,
) -> RankResult:
    """Rank each target against every item 1..num_items.

    Args:
        scores_fn: see the module docstring; called with row positions into ``inputs``.
        inputs: (U, N) left-padded input sequences (0 = padding), the same tensor the model reads.
            A padded matrix (not a list of arrays) is used so that history exclusion is one
            ``scatter`` per batch. Only consulted when ``exclude_history``.
        targets: (U,) target item ids in 1..num_items.
        num_items: catalogue size; logits must have ``num_items + 1`` columns.
        k: length of the top-k lists.
        batch_size: users per ``scores_fn`` call.
        exclude_history: items of the user's input sequence are not ranked (their score is set to
            -inf before ranking), except the target itself, which is always ranked.

    Raises:
        ValueError: on inconsistent shapes, ids out of range, non-finite logits, or a user with
            fewer than ``k`` rankable items.
    """
    inputs_t = _as_long(inputs, "inputs")
    targets_t = _as_long(targets, "targets")
    if inputs_t.ndim != 2 or targets_t.ndim != 1 or inputs_t.shape[0] != targets_t.shape[0]:
        raise ValueError(f"inputs must be (U, N) and targets (U,), got {tuple(inputs_t.shape)} "
                         f"and {tuple(targets_t.shape)}")
    if not 1 <= k <= num_items:
        raise ValueError(f"k must be in 1..num_items={num_items}, got {k}")
    _check_range(targets_t, 1, num_items, "targets")
    if exclude_history:
        _check_range(inputs_t, 0, num_items, "inputs")

    def batch(index: Tensor, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _check_width(logits, index, num_items + 1)
        device = logits.device
        history = inputs_t[index.to(inputs_t.device)].to(device) if exclude_history else None
        return _full_batch(logits, targets_t[index].to(device), history, k)

    return _run_batches(scores_fn, batch, targets_t, k, batch_size)


def fewest_rankable_items(history: Tensor, targets: Tensor, num_items: int) -> int:
    """The fewest items full ranking can list for any user: the catalogue less its history.

    history: (U, L) left-padded input sequences (0 = padding); targets: (U,). The target is
    always ranked, so the answer is at least 1.
    """
    rows = torch.sort(history, dim=1).values  # (U, L)
    first = torch.ones_like(rows, dtype=torch.bool)
    first[:, 1:] = rows[:, 1:] != rows[:, :-1]
    seen = (first & (rows != 0)).sum(dim=1) - (history == targets[:, None]).any(dim=1).long()
    return int((num_items - seen).min())


def rank_sampled(
    scores_fn: ScoresFn,
    targets: Tensor | np.ndarray,
    negatives: Tensor | np.ndarray,
    k: int,
    batch_size: int,
) -> RankResult:
    """Rank each target among itself and its sampled negatives.

    Args:
        scores_fn: see the module docstring; called with row positions into ``targets``.
        targets: (U,) target item ids (>= 1).
        negatives: (U, M) negative item ids per user, distinct, never 0 and never the target
            (as written by the candidates stage).
        k: length of the top-k lists, at most M + 1; they contain candidates only.
        batch_size: users per ``scores_fn`` call.

    Raises:
        ValueError: on inconsistent shapes, ids out of range, repeated candidates, or non-finite
            logits.
    """
    targets_t = _as_long(targets, "targets")
    negatives_t = _as_long(negatives, "negatives")
    if (targets_t.ndim != 1 or negatives_t.ndim != 2
            or negatives_t.shape[0] != targets_t.shape[0]):
        raise ValueError(f"targets must be (U,) and negatives (U, M), got "
                         f"{tuple(targets_t.shape)} and {tuple(negatives_t.shape)}")
    if not 1 <= k <= negatives_t.shape[1] + 1:
        raise ValueError(f"k must be in 1..{negatives_t.shape[1] + 1} (candidates), got {k}")
    candidates = torch.cat([targets_t[:, None], negatives_t.to(targets_t.device)], dim=1)
    _check_range(candidates, 1, None, "candidates")

    def batch(index: Tensor, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _check_width(logits, index, None)
        cand = candidates[index].to(logits.device)
        _check_range(cand, 1, logits.shape[1] - 1, "candidates")
        return _sampled_batch(logits, cand, k)

    return _run_batches(scores_fn, batch, targets_t, k, batch_size)


# ---------------------------------------------------------------------------------------------
# One batch of each protocol (all tensors on the logits' device)


def _full_batch(logits: Tensor, targets: Tensor, history: Tensor | None,
                k: int) -> tuple[Tensor, Tensor, Tensor]:
    logits = _as_float(logits)
    target_col = targets[:, None]
    target_logit = logits.gather(1, target_col)
    log_norm = _log_norm(logits, target_logit)

    masked = logits.scatter(1, history, _NEG_INF) if history is not None else logits.clone()
    masked[:, 0] = _NEG_INF
    masked.scatter_(1, target_col, target_logit)  # the target is ranked even if in the history

    rank = (masked >= target_logit).sum(dim=1)  # counts the target itself: 1 + #others >= it
    items = _topk_by_score_then_id(masked, k)
    return rank, items, logits.gather(1, items) - log_norm


def _sampled_batch(logits: Tensor, candidates: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    logits = _as_float(logits)
    cand_logits = logits.gather(1, candidates)  # column 0 holds the target
    log_norm = _log_norm(logits, cand_logits[:, :1])
    rank = 1 + (cand_logits[:, 1:] >= cand_logits[:, :1]).sum(dim=1)

    # Exact (-score, id) order: sort by id, then a stable sort by descending score.
    by_id, id_order = torch.sort(candidates, dim=1, stable=True)
    if bool((by_id[:, 1:] == by_id[:, :-1]).any()):
        raise ValueError("candidates repeat an item (negatives must be distinct and exclude "
                         "the target)")
    by_score = torch.sort(cand_logits.gather(1, id_order), dim=1, descending=True,
                          stable=True).indices[:, :k]
    items = by_id.gather(1, by_score)
    return rank, items, logits.gather(1, items) - log_norm


def _topk_by_score_then_id(scores: Tensor, k: int) -> Tensor:
    """(B, k) column ids of the k best scores per row, ordered by (-score, id), exactly.

    ``torch.topk`` gives the k best columns, but which of several columns tied at the k-th value
    it keeps is unspecified; rows where such a tie spills past the cut are redone by
    :func:`_lowest_id_cut`. The k columns are then stably sorted by descending score from
    ascending id order.
    """
    values, columns = torch.topk(scores, k, dim=1, sorted=True)
    kth = values[:, -1:]
    if bool(torch.isneginf(kth).any()):
        row = int(torch.isneginf(kth[:, 0]).nonzero()[0, 0])
        raise ValueError(f"batch row {row} has fewer than k={k} rankable items")
    spills = (scores == kth).sum(dim=1) > (values == kth).sum(dim=1)
    if bool(spills.any()):
        rows = spills.nonzero()[:, 0]
        columns[rows] = _lowest_id_cut(scores[rows], kth[rows], k)
    columns = torch.sort(columns, dim=1).values
    order = torch.sort(scores.gather(1, columns), dim=1, descending=True, stable=True).indices
    return columns.gather(1, order)


def _lowest_id_cut(scores: Tensor, kth: Tensor, k: int) -> Tensor:
    """(B, k) ascending column ids: every column above ``kth``, then the lowest-id ties."""
    above = scores > kth
    tied = scores == kth
    slots = k - above.sum(dim=1, keepdim=True)
    take = above | (tied & (tied.cumsum(dim=1) <= slots))
    return take.nonzero()[:, 1].view(-1, k)  # row-major, so ids ascend within a row


# ---------------------------------------------------------------------------------------------
# Batching and validation helpers


def _run_batches(scores_fn: ScoresFn, batch_fn: _BatchFn, targets: Tensor, k: int,
                 batch_size: int) -> RankResult:
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    users = targets.shape[0]
    target_rank = np.empty(users, dtype=np.int64)
    topk_items = np.empty((users, k), dtype=np.int64)
    topk_scores = np.empty((users, k), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, users, batch_size):
            stop = min(start + batch_size, users)
            index = torch.arange(start, stop, device=targets.device)
            rank, items, scores = batch_fn(index, scores_fn(index))
            target_rank[start:stop] = rank.cpu().numpy()
            topk_items[start:stop] = items.cpu().numpy()
            topk_scores[start:stop] = scores.float().cpu().numpy()
    return RankResult(target_rank, topk_items, topk_scores)


def _as_long(data: Tensor | np.ndarray, name: str) -> Tensor:
    tensor = torch.as_tensor(data)
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer item ids, got {tensor.dtype}")
    return tensor.long()


def _as_float(logits: Tensor) -> Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _check_range(ids: Tensor, low: int, high: int | None, name: str) -> None:
    if ids.numel() == 0:
        return
    if int(ids.min()) < low or (high is not None and int(ids.max()) > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be item ids {bound}, got range "
                         f"{int(ids.min())}..{int(ids.max())}")


def _check_width(logits: Tensor, index: Tensor, width: int | None) -> None:
    if logits.ndim != 2 or logits.shape[0] != index.shape[0] or (
            width is not None and logits.shape[1] != width):
        expected = f"({index.shape[0]}, {width if width is not None else 'num_items + 1'})"
        raise ValueError(f"scores_fn returned shape {tuple(logits.shape)}, expected {expected}")


def _log_norm(logits: Tensor, target_logit: Tensor) -> Tensor:
    """(B, 1) log-partition over items 1..num_items; rejects NaN/+inf logits and bad targets."""
    log_norm = torch.logsumexp(logits[:, 1:], dim=1, keepdim=True)
    if not bool(torch.isfinite(log_norm).all()):  # NaN or +inf anywhere, or all -inf
        raise ValueError("logits contain NaN or +inf (or a row is entirely -inf)")
    if not bool(torch.isfinite(target_logit).all()):
        raise ValueError("a target has a non-finite logit; its rank would be undefined")
    return log_norm


__all__ = ["RankResult", "ScoresFn", "rank_full", "rank_sampled"]

"""Ranking metrics with one relevant item per user, computed from 1-based target ranks.

With ``rank`` the 1-based position of the held-out target (docs/contracts.md, REFERENCE.md):

- ``hr@k``   = 1 if rank <= k else 0
- ``ndcg@k`` = 1 / log2(rank + 1) if rank <= k else 0 (the ideal DCG is 1)
- ``mrr@k``  = 1 / rank if rank <= k else 0
- ``mrr``    = 1 / rank (untruncated)

:func:`per_user_metrics` gives the per-user values (for bootstrap and paired tests);
:func:`metrics_from_ranks` averages them and adds ``users``. Both accept a NumPy array or a
tensor on any device, and compute every metric from one discount vector and one comparison per
cutoff, without Python loops over users.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

HR_CUTOFFS: tuple[int, ...] = (1, 5, 10)
NDCG_CUTOFFS: tuple[int, ...] = (5, 10)
MRR_CUTOFFS: tuple[int, ...] = (10,)

METRIC_KEYS: tuple[str, ...] = (
    *(f"hr@{k}" for k in HR_CUTOFFS),
    *(f"ndcg@{k}" for k in NDCG_CUTOFFS),
    *(f"mrr@{k}" for k in MRR_CUTOFFS),
    "mrr",
    "users",
)
"""Keys of :func:`metrics_from_ranks` with the default cutoffs, in output order."""


def as_rank_array(ranks: np.ndarray | Tensor | Sequence[int]) -> np.ndarray:
    """Validate 1-based integer ranks and return them as a 1-D ``int64`` NumPy array."""
    torch = sys.modules.get("torch")  # a Tensor comes from an imported torch: none to import
    if torch is not None and isinstance(ranks, torch.Tensor):
        ranks = ranks.detach().cpu().numpy()
    array = np.asarray(ranks)
    if array.ndim != 1:
        raise ValueError(f"ranks must be 1-D, got shape {array.shape}")
    if array.size == 0:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"ranks must be integers, got dtype {array.dtype}")
    if array.min() < 1:
        raise ValueError(f"ranks are 1-based, got minimum {array.min()}")
    return array.astype(np.int64)


def _check_cutoffs(name: str, cutoffs: Sequence[int]) -> None:
    if any(int(k) != k or k < 1 for k in cutoffs):
        raise ValueError(f"{name} cutoffs must be positive integers, got {tuple(cutoffs)}")


def per_user_metrics(
    ranks: np.ndarray | Tensor | Sequence[int],
    *,
    hr_cutoffs: Sequence[int] = HR_CUTOFFS,
    ndcg_cutoffs: Sequence[int] = NDCG_CUTOFFS,
    mrr_cutoffs: Sequence[int] = MRR_CUTOFFS,
) -> dict[str, np.ndarray]:
    """Per-user metric values (``float64``, one entry per rank), keyed ``hr@k``, ``ndcg@k``,
    ``mrr@k`` and ``mrr``."""
    for name, cutoffs in (("hr", hr_cutoffs), ("ndcg", ndcg_cutoffs), ("mrr", mrr_cutoffs)):
        _check_cutoffs(name, cutoffs)
    rank = as_rank_array(ranks)
    reciprocal = 1.0 / rank
    discount = 1.0 / np.log2(rank + 1.0)
    out: dict[str, np.ndarray] = {}
    for k in hr_cutoffs:
        out[f"hr@{k}"] = (rank <= k).astype(np.float64)
    for k in ndcg_cutoffs:
        out[f"ndcg@{k}"] = np.where(rank <= k, discount, 0.0)
    for k in mrr_cutoffs:
        out[f"mrr@{k}"] = np.where(rank <= k, reciprocal, 0.0)
    out["mrr"] = reciprocal
    return out


def metrics_from_ranks(
    ranks: np.ndarray | Tensor | Sequence[int],
    *,
    hr_cutoffs: Sequence[int] = HR_CUTOFFS,
    ndcg_cutoffs: Sequence[int] = NDCG_CUTOFFS,
    mrr_cutoffs: Sequence[int] = MRR_CUTOFFS,
) -> dict[str, float]:
    """Mean of :func:`per_user_metrics` over users, plus ``users`` (the number of ranks).

    Raises ``ValueError`` for an empty input: a mean over no users is undefined, and the metrics
    JSON does not admit NaN.
    """
    per_user = per_user_metrics(ranks, hr_cutoffs=hr_cutoffs, ndcg_cutoffs=ndcg_cutoffs,
                                mrr_cutoffs=mrr_cutoffs)
    users = len(per_user["mrr"])
    if users == 0:
        raise ValueError("cannot average metrics over zero users")
    means: dict[str, float] = {key: float(values.mean()) for key, values in per_user.items()}
    means["users"] = users
    return means


__all__ = [
    "HR_CUTOFFS",
    "METRIC_KEYS",
    "MRR_CUTOFFS",
    "NDCG_CUTOFFS",
    "as_rank_array",
    "metrics_from_ranks",
    "per_user_metrics",
]

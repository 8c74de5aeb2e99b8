"""Metrics of a ranked top-n list against one held-out target per user.

The target's 1-based position in the list is its rank; a target missing from the list gets
rank ``n + 1``, which contributes 0 at every cutoff ``<= n``. The arithmetic is
:mod:`hybridrec.evaluation.metrics`, shared with every model.
"""

from __future__ import annotations

import numpy as np

from hybridrec.evaluation.metrics import per_user_metrics
from hybridrec.hybrid.align import target_ranks

CUTOFF = 10
TOP_N = CUTOFF
"""The paper fuses, and scores, top-10 lists; deeper exports serve score-level fusion only."""
KEYS = (f"mrr@{CUTOFF}", f"ndcg@{CUTOFF}", f"hr@{CUTOFF}")


def per_user_list_metrics(lists: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """``mrr@10``, ``ndcg@10`` and ``hr@10`` per row of ``lists`` (..., n), shaped like ``target``.

    Only the first ten positions count, whatever ``n`` is.
    """
    ranks = target_ranks(lists[..., :CUTOFF], target)
    flat = per_user_metrics(ranks.reshape(-1), hr_cutoffs=(CUTOFF,), ndcg_cutoffs=(CUTOFF,),
                            mrr_cutoffs=(CUTOFF,))
    return {key: flat[key].reshape(ranks.shape) for key in KEYS}


def mean_list_metrics(lists: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Means of :func:`per_user_list_metrics` over users."""
    return {key: float(v.mean()) for key, v in per_user_list_metrics(lists, target).items()}

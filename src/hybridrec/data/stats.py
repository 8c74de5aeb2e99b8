"""Dataset statistics (the paper's Table IV)."""

from __future__ import annotations

import numpy as np

from hybridrec.data.preprocess import Interactions


def dataset_stats(data: Interactions) -> dict[str, float | int]:
    """Users, items, interactions, sparsity and sequence-length summary after preprocessing."""
    lengths = np.diff(data.offsets)
    users, items, interactions = len(data.user_ids), len(data.item_ids), len(data.items)
    return {
        "users": users,
        "items": items,
        "interactions": interactions,
        "sparsity": 1.0 - interactions / (users * items),
        "mean_length": float(lengths.mean()),
        "median_length": float(np.median(lengths)),
        "max_length": int(lengths.max()),
        "dropped_users": data.dropped_users,
        "duplicate_rows": data.duplicate_rows,
    }

"""Chronological leave-one-out split (all three papers) as Arrow tables with list columns.

Per user: last item = test target, second to last = validation target, the rest = training.
Validation input = training part; test input = all but the last item.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hybridrec.data.preprocess import Interactions

SPLITS = ("train", "valid", "test")


def _list_column(values: np.ndarray, keep: np.ndarray, lengths: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[keep]))


def sequences_table(data: Interactions) -> pa.Table:
    """One row per user: the full chronological sequence (and timestamps where known)."""
    everything = np.ones(len(data.items), dtype=bool)
    return _table(data, everything, np.diff(data.offsets), target_shift=None)


def leave_one_out_split(data: Interactions) -> dict[str, pa.Table]:
    """Return the train, valid and test tables described in docs/contracts.md."""
    offsets = data.offsets
    lengths = np.diff(offsets)
    # position counted from the end of the user's sequence: 0 = last item
    from_end = np.repeat(offsets[1:] - 1, lengths) - np.arange(len(data.items))
    return {
        "train": _table(data, from_end >= 2, lengths - 2, target_shift=None),
        "valid": _table(data, from_end >= 2, lengths - 2, target_shift=2),
        "test": _table(data, from_end >= 1, lengths - 1, target_shift=1),
    }


def _table(data: Interactions, keep: np.ndarray, lengths: np.ndarray,
           target_shift: int | None) -> pa.Table:
    users = np.arange(1, len(lengths) + 1, dtype=np.int32)
    columns: dict[str, pa.Array] = {
        "user": pa.array(users),
        "items": _list_column(data.items, keep, lengths),
    }
    if data.timestamps is not None:
        columns["timestamps"] = _list_column(data.timestamps, keep, lengths)
    else:
        columns["timestamps"] = pa.nulls(len(users), pa.list_(pa.int64()))
    if target_shift is not None:
        columns["target"] = pa.array(data.items[data.offsets[1:] - target_shift])
    return pa.table(columns)

"""From raw interactions to ordered sequences with contiguous ids (all vectorised pandas/numpy).

Steps: optional rating threshold -> optional de-duplication -> optional k-core filter ->
chronological order (file order breaks ties) -> internal ids from 1 (0 = padding).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hybridrec.errors import HybridrecError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreprocessConfig:
    """Filtering options; the defaults keep every interaction."""

    min_rating: float | None = None
    dedupe: bool = False
    user_core: int = 0
    item_core: int = 0
    min_length: int = 3  # leave-one-out needs a training, a validation and a test item


@dataclass(frozen=True)
class Interactions:
    """Interactions in internal ids sorted by (user, time): flat arrays plus per-user offsets."""

    users: np.ndarray  # (I,) int32, non-decreasing
    items: np.ndarray  # (I,) int32
    timestamps: np.ndarray | None  # (I,) int64, or None where the source has no time
    user_ids: pd.DataFrame  # original_id, user
    item_ids: pd.DataFrame  # original_id, item
    dropped_users: int = 0  # users shorter than min_length after filtering
    duplicate_rows: int = 0  # raw rows repeating an earlier (user, item, timestamp)

    @property
    def offsets(self) -> np.ndarray:
        """(U + 1,) run starts in the flat arrays: user u is rows offsets[u-1]:offsets[u]."""
        counts = np.bincount(self.users, minlength=len(self.user_ids) + 1)[1:]
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def filter_ratings(frame: pd.DataFrame, min_rating: float | None) -> pd.DataFrame:
    """Keep rows with rating >= min_rating (no-op when None)."""
    if min_rating is None:
        return frame
    if frame["rating"].isna().all():
        raise HybridrecError("preprocess.min_rating is set but the dataset has no ratings")
    return frame[frame["rating"] >= min_rating]


def k_core(frame: pd.DataFrame, user_core: int, item_core: int) -> pd.DataFrame:
    """Drop users with < user_core and items with < item_core interactions, until both hold."""
    while True:
        user_counts = frame.groupby("user", sort=False)["user"].transform("size")
        item_counts = frame.groupby("item", sort=False)["item"].transform("size")
        keep = (user_counts >= user_core) & (item_counts >= item_core)
        if keep.all():
            return frame
        frame = frame[keep]


def count_duplicate_rows(frame: pd.DataFrame) -> int:
    """Rows whose (user, item, timestamp) repeats an earlier row's; rows without time never do.

    Without timestamps a repeated (user, item) is a repeat interaction in file order, not a
    duplicate.
    """
    timed = frame[frame["timestamp"].notna()]
    return int(timed.duplicated(["user", "item", "timestamp"]).sum())


def contiguous_ids(values: pd.Series, name: str) -> tuple[pd.DataFrame, np.ndarray]:
    """Map original ids to 1..n in sorted order of the originals (numeric where they are ints).

    Returns the mapping table (original_id, name) and the internal id of every value.
    """
    uniques = np.sort(values.unique())
    mapping = pd.DataFrame({
        "original_id": uniques,
        name: np.arange(1, len(uniques) + 1, dtype=np.int32),
    })
    codes = np.searchsorted(uniques, values.to_numpy()).astype(np.int32) + 1
    return mapping, codes


def build_interactions(raw: pd.DataFrame, config: PreprocessConfig) -> Interactions:
    """Filter, order and re-index raw interactions (contract: docs/contracts.md)."""
    frame = raw.reset_index(drop=True)
    frame = frame.assign(row=np.arange(len(frame), dtype=np.int64))
    duplicate_rows = count_duplicate_rows(frame)
    if duplicate_rows:
        log.info("%d rows repeat an earlier row's (user, item, timestamp)%s", duplicate_rows,
                 "; preprocess.dedupe keeps each (user, item) pair's first" if not config.dedupe
                 else "")
    frame = filter_ratings(frame, config.min_rating)
    if config.dedupe:
        # keep each (user, item) pair's first occurrence in time
        frame = frame.sort_values(["timestamp", "row"], kind="stable", na_position="last")
        frame = frame.drop_duplicates(["user", "item"], keep="first")
    if config.user_core or config.item_core:
        frame = k_core(frame, config.user_core, config.item_core)
    lengths = frame.groupby("user", sort=False)["user"].transform("size")
    short = lengths < config.min_length
    dropped_users = int(frame.loc[short, "user"].nunique())
    if dropped_users:
        log.info("dropped %d users with fewer than %d interactions",
                 dropped_users, config.min_length)
    frame = frame[~short]
    if frame.empty:
        raise HybridrecError(
            f"no user has {config.min_length} or more interactions after filtering "
            f"({dropped_users} users dropped): nothing to split; check the dataset's "
            f"preprocess settings (min_length, min_rating, user_core, item_core)")

    user_ids, users = contiguous_ids(frame["user"], "user")
    item_ids, items = contiguous_ids(frame["item"], "item")
    has_time = bool(frame["timestamp"].notna().any())
    if has_time and frame["timestamp"].isna().any():
        raise HybridrecError("some interactions have a timestamp and others do not")
    time_key = (frame["timestamp"].to_numpy(dtype=np.int64) if has_time
                else np.zeros(len(frame), dtype=np.int64))
    # lexsort: last key is primary -> by user, then time, then original file row (stable tie-break)
    order = np.lexsort((frame["row"].to_numpy(), time_key, users))
    return Interactions(
        users=users[order],
        items=items[order],
        timestamps=time_key[order] if has_time else None,
        user_ids=user_ids,
        item_ids=item_ids,
        dropped_users=dropped_users,
        duplicate_rows=duplicate_rows,
    )

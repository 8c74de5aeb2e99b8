"""Reading and writing a preprocessed dataset folder (layout: docs/contracts.md)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.data.candidates import (
    candidates_table,
    check_negative_supply,
    protocol_rng,
)
from hybridrec.data.preprocess import Interactions, PreprocessConfig, build_interactions
from hybridrec.data.split import leave_one_out_split, sequences_table
from hybridrec.data.stats import dataset_stats
from hybridrec.errors import HybridrecError
from hybridrec.io import write_json, write_parquet, write_table
from hybridrec.protocols import SAMPLED_PROTOCOLS

log = logging.getLogger(__name__)

EVAL_SPLITS = ("valid", "test")
# a training part (all but the last two items) needs two items for one (input, target) pair
MIN_TRAINABLE_LENGTH = 4


def dataset_files(root: str | Path) -> dict[str, Path]:
    """Every file preprocessing writes in a dataset folder, by a short name (no candidates)."""
    root = Path(root)
    files = {
        "user_ids": root / "user_ids.parquet",
        "item_ids": root / "item_ids.parquet",
        "sequences": root / "sequences.parquet",
        "stats": root / "stats.json",
    }
    for split in ("train", *EVAL_SPLITS):
        files[split] = root / "split" / f"{split}.parquet"
    return files


def candidate_files(root: str | Path, protocol: str) -> dict[str, Path]:
    """The candidates files of one sampled protocol, by split (drawn only where asked for)."""
    return {split: Path(root) / "candidates" / f"{split}.{protocol}.parquet"
            for split in EVAL_SPLITS}


def write_dataset(raw: pd.DataFrame, config: PreprocessConfig, root: str | Path,
                  dataset: str) -> dict[str, float | int]:
    """Preprocess raw interactions and write the dataset folder; returns its statistics.

    Raises HybridrecError naming ``datasets.<dataset>`` where nothing could be trained on,
    before any file is written.
    """
    data = build_interactions(raw, config)
    if not (np.diff(data.offsets) >= MIN_TRAINABLE_LENGTH).any():
        raise HybridrecError(
            f"datasets.{dataset}: every user has fewer than {MIN_TRAINABLE_LENGTH} interactions "
            "after preprocessing, so no training part holds an (input, next item) pair: "
            "leave-one-out keeps each user's last two items for validation and test; training "
            f"needs users with {MIN_TRAINABLE_LENGTH} or more (check the data and "
            f"datasets.{dataset}.preprocess)")
    files = dataset_files(root)
    write_parquet(data.user_ids, files["user_ids"])
    write_parquet(data.item_ids, files["item_ids"])
    write_table(sequences_table(data), files["sequences"])
    for name, table in leave_one_out_split(data).items():
        write_table(table, files[name])
    stats = dataset_stats(data)
    write_json(stats, files["stats"])
    log.info("users %d, items %d, interactions %d, dropped users %d",
             stats["users"], stats["items"], stats["interactions"], stats["dropped_users"])
    return stats


def write_candidates(root: str | Path, protocol: str, seed: int, dataset: str,
                     asked_by: Sequence[str] = ()) -> None:
    """Draw one sampled protocol's candidates for the valid and test targets of a dataset folder.

    Raises ConfigError naming the dataset, the protocol, the users short of negatives and the
    config keys ``asked_by`` that ask for the protocol, before drawing anything.
    """
    files = dataset_files(root)
    data = read_interactions(files)
    check_negative_supply(data, SAMPLED_PROTOCOLS[protocol], dataset, asked_by)
    for split, path in candidate_files(root, protocol).items():
        targets = pq.read_table(files[split], columns=["target"]).column("target").to_numpy()
        rng = protocol_rng(seed, split, protocol)
        write_table(candidates_table(data, targets, SAMPLED_PROTOCOLS[protocol], rng), path)


def read_interactions(files: dict[str, Path]) -> Interactions:
    """The preprocessed interactions back from a dataset folder (no timestamps)."""
    items = pq.read_table(files["sequences"], columns=["items"]).column("items").combine_chunks()
    lengths = np.diff(items.offsets.to_numpy())
    return Interactions(
        users=np.repeat(np.arange(1, len(lengths) + 1, dtype=np.int32), lengths),
        items=items.flatten().to_numpy().astype(np.int32),
        timestamps=None,
        user_ids=pd.read_parquet(files["user_ids"]),
        item_ids=pd.read_parquet(files["item_ids"]),
    )


@dataclass(frozen=True)
class SplitArrays:
    """One split as flat arrays: user u's input is items[offsets[u-1]:offsets[u]]."""

    users: np.ndarray  # (U,) int32
    items: np.ndarray  # (sum of lengths,) int32
    offsets: np.ndarray  # (U + 1,) int64
    targets: np.ndarray | None  # (U,) int32; None for the training split

    def padded(self, max_len: int) -> np.ndarray:
        """(U, max_len) int64 left-padded with 0: the most recent max_len items of each input."""
        index = self.offsets[1:, None] - max_len + np.arange(max_len)[None, :]
        valid = index >= self.offsets[:-1, None]
        return np.where(valid, self.items[np.clip(index, 0, None)], 0).astype(np.int64)


def read_split(path: str | Path) -> SplitArrays:
    """Load split/{train,valid,test}.parquet into flat arrays."""
    table = pq.read_table(path)
    items = table.column("items").combine_chunks()
    targets = table.column("target").to_numpy() if "target" in table.column_names else None
    return SplitArrays(
        users=table.column("user").to_numpy(),
        items=items.flatten().to_numpy(),
        offsets=items.offsets.to_numpy().astype(np.int64),
        targets=targets,
    )


def read_negatives(path: str | Path) -> np.ndarray:
    """(U, M) int64 negatives from a candidates file, rows in user order."""
    table = pq.read_table(path)
    column: pa.ListArray = table.column("negatives").combine_chunks()
    return column.flatten().to_numpy().reshape(table.num_rows, -1).astype(np.int64)


"""Reading and writing a preprocessed dataset folder (layout: docs/contracts.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.data.candidates import SAMPLED_PROTOCOLS, candidates_table, protocol_rng
from hybridrec.data.preprocess import PreprocessConfig, build_interactions
from hybridrec.data.split import leave_one_out_split, sequences_table
from hybridrec.data.stats import dataset_stats
from hybridrec.io import write_json, write_parquet, write_table

log = logging.getLogger(__name__)

EVAL_SPLITS = ("valid", "test")


def dataset_files(root: str | Path) -> dict[str, Path]:
    """Every file a preprocessed dataset folder holds, by a short name."""
    root = Path(root)
    files = {
        "user_ids": root / "user_ids.parquet",
        "item_ids": root / "item_ids.parquet",
        "sequences": root / "sequences.parquet",
        "stats": root / "stats.json",
    }
    for split in ("train", *EVAL_SPLITS):
        files[split] = root / "split" / f"{split}.parquet"
    for split in EVAL_SPLITS:
        for protocol in SAMPLED_PROTOCOLS:
            files[f"{split}.{protocol}"] = root / "candidates" / f"{split}.{protocol}.parquet"
    return files


def write_dataset(raw: pd.DataFrame, config: PreprocessConfig, root: str | Path,
                  seed: int) -> dict[str, float | int]:
    """Preprocess raw interactions and write the whole dataset folder; returns its statistics."""
    data = build_interactions(raw, config)
    files = dataset_files(root)
    write_parquet(data.user_ids, files["user_ids"])
    write_parquet(data.item_ids, files["item_ids"])
    write_table(sequences_table(data), files["sequences"])
    splits = leave_one_out_split(data)
    for name, table in splits.items():
        write_table(table, files[name])
    for split in EVAL_SPLITS:
        targets = splits[split].column("target").to_numpy()
        for name, protocol in SAMPLED_PROTOCOLS.items():
            table = candidates_table(data, targets, protocol, protocol_rng(seed, split, name))
            write_table(table, files[f"{split}.{name}"])
    stats = dataset_stats(data)
    write_json(stats, files["stats"])
    log.info("users %d, items %d, interactions %d, dropped users %d",
             stats["users"], stats["items"], stats["interactions"], stats["dropped_users"])
    return stats


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


"""The aligned lists' file, ``results/hybrid/{dataset}/{protocol}/aligned/{split}.parquet``.

Columns (docs/contracts.md): ``user``, ``target`` (original ids) and per branch
``<branch>_items`` (list, original ids, best first) and ``<branch>_scores`` (list,
log-probabilities). Key/value metadata ``protocols``: JSON object, each branch's export protocol.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import PAD, AlignedLists, JoinedBranches, pad_column
from hybridrec.io import write_table


def list_column(values: np.ndarray, present: np.ndarray) -> pa.ListArray:
    """Rows of a (U, k) array as an Arrow list column, keeping only the ``present`` entries."""
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[present]))


def aligned_table(aligned: AlignedLists) -> pa.Table:
    """AlignedLists as Parquet columns in original ids: user, target, <branch>_items/_scores."""
    vocabulary = aligned.vocabulary
    columns: dict[str, pa.Array] = {
        "user": pa.array(aligned.users),
        "target": pa.array(vocabulary[aligned.target]),
    }
    for b, branch in enumerate(aligned.branches):
        lists = aligned.lists[:, b]
        present = lists != PAD
        columns[f"{branch}_items"] = list_column(vocabulary[np.maximum(lists, 0)], present)
        columns[f"{branch}_scores"] = list_column(aligned.scores[:, b], present)
    return pa.table(columns)


def joined_table(joined: JoinedBranches) -> pa.Table:
    """The same table as :func:`aligned_table` of :func:`~hybridrec.hybrid.align.align_branches`
    on the same exports, built from the joined lists as they are (no users x branches x k
    arrays: the align job's memory stays about that of the exports)."""
    columns: dict[str, pa.Array] = {"user": pa.array(joined.users),
                                    "target": pa.array(joined.target)}
    for branch, part in joined.parts.items():
        offsets = pa.array(part.offsets.astype(np.int32))
        columns[f"{branch}_items"] = pa.ListArray.from_arrays(offsets, pa.array(part.items))
        columns[f"{branch}_scores"] = pa.ListArray.from_arrays(offsets, pa.array(part.scores))
    return pa.table(columns)


def write_aligned(aligned: AlignedLists | JoinedBranches, protocols: Mapping[str, str],
                  path: str | Path) -> None:
    """Write :func:`aligned_table` (or :func:`joined_table`) with each branch's export
    protocol in the metadata."""
    table = aligned_table(aligned) if isinstance(aligned, AlignedLists) else joined_table(aligned)
    write_table(table, path, {"protocols": json.dumps(dict(protocols), sort_keys=True)})


def aligned_protocols(path: str | Path) -> dict[str, str]:
    """Each branch's export protocol, from the metadata of :func:`write_aligned`'s file."""
    metadata = pq.read_schema(path).metadata or {}
    if b"protocols" not in metadata:
        raise HybridrecError(f"{path}: no 'protocols' metadata; rerun the align job")
    return dict(json.loads(metadata[b"protocols"]))


def read_aligned(path: str | Path, branches: Sequence[str],
                 depth: int | None = None) -> AlignedLists:
    """Rebuild AlignedLists (shared item ids) from :func:`aligned_table`'s file.

    ``depth`` keeps only the first ``depth`` entries of every list (the rank-level stages read
    the top 10 of exports 100 or more deep); the shared ids then number only the items kept.
    One list column is decoded at a time, straight into the padded arrays: Parquet's list
    decoding needs a few times a column's size while it runs (measured: 3.5x), so the whole
    file at once would need several times the result (a million users' top-100 lists).
    """
    present = pq.read_schema(path).names
    missing = [f"{b}_items" for b in branches if f"{b}_items" not in present]
    if missing:
        raise HybridrecError(f"{path}: no column(s) {missing}; was it aligned with other branches?")
    ids = pq.read_table(path, columns=["user", "target"])
    users = ids.column("user").to_numpy(zero_copy_only=False)
    targets = ids.column("target").to_numpy(zero_copy_only=False)
    distinct, k = [targets], 0
    for branch in branches:  # first pass: the shared ids (sorted distinct) and the depth
        items, offsets = _column_head(path, f"{branch}_items", depth)
        distinct.append(pd.unique(items))
        k = max(k, int(np.diff(offsets).max(initial=0)))
    vocabulary = np.unique(np.concatenate(distinct))
    lists = np.full((len(users), len(branches), k), PAD, dtype=np.int64)
    scores = np.full((len(users), len(branches), k), np.nan)
    for b, branch in enumerate(branches):
        items, offsets = _column_head(path, f"{branch}_items", depth)
        lists[:, b] = pad_column(np.searchsorted(vocabulary, items), offsets, k, PAD, np.int64)
        del items
        values, offsets = _column_head(path, f"{branch}_scores", depth)
        scores[:, b] = pad_column(values, offsets, k, np.nan, np.float64)
        del values
    return AlignedLists(tuple(branches), users, vocabulary, lists, scores,
                        np.searchsorted(vocabulary, targets).astype(np.int64))


def _column_head(path: str | Path, column: str,
                 depth: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Flat values and int64 offsets of one list column's first ``depth`` entries per row
    (every entry for None)."""
    lists = pq.read_table(path, columns=[column]).column(column).combine_chunks()
    offsets = lists.offsets.to_numpy().astype(np.int64)
    offsets -= offsets[0]  # flatten() starts at the first list's values
    values = lists.flatten().to_numpy(zero_copy_only=False)
    if depth is None:
        return values, offsets
    kept = np.minimum(np.diff(offsets), depth)
    head_offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=head_offsets[1:])
    take = np.repeat(offsets[:-1] - head_offsets[:-1], kept) + np.arange(head_offsets[-1])
    return values[take], head_offsets

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
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec.errors import HybridrecError
from hybridrec.hybrid.align import PAD, AlignedLists, JoinedBranches, pad_lists
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
    """
    columns = ["user", "target", *(f"{b}_{part}" for b in branches for part in ("items", "scores"))]
    present = pq.read_schema(path).names
    missing = [f"{b}_items" for b in branches if f"{b}_items" not in present]
    if missing:
        raise HybridrecError(f"{path}: no column(s) {missing}; was it aligned with other branches?")
    table = pq.read_table(path, columns=columns)
    users = table.column("user").to_numpy(zero_copy_only=False)
    targets = table.column("target").to_numpy(zero_copy_only=False)
    heads = {b: _list_head(table.column(f"{b}_items").combine_chunks(),
                           table.column(f"{b}_scores").combine_chunks(), depth)
             for b in branches}
    del table
    vocabulary = np.unique(np.concatenate([targets, *(heads[b][0] for b in branches)]))
    k = max(int(np.diff(heads[b][2]).max(initial=0)) for b in branches)
    lists = np.full((len(users), len(branches), k), PAD, dtype=np.int64)
    scores = np.full((len(users), len(branches), k), np.nan)
    for b, branch in enumerate(branches):
        items, scores_flat, offsets = heads.pop(branch)
        lists[:, b], scores[:, b] = pad_lists(np.searchsorted(vocabulary, items), scores_flat,
                                              offsets, k)
    return AlignedLists(tuple(branches), users, vocabulary, lists, scores,
                        np.searchsorted(vocabulary, targets).astype(np.int64))


def _list_head(items: pa.ListArray, scores: pa.ListArray,
               depth: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat items, flat scores and int64 offsets of the lists' first ``depth`` entries (all
    entries for None)."""
    offsets = items.offsets.to_numpy().astype(np.int64)
    offsets -= offsets[0]  # flatten() starts at the first list's values
    flat_items = items.flatten().to_numpy(zero_copy_only=False)
    flat_scores = scores.flatten().to_numpy(zero_copy_only=False)
    if depth is None:
        return flat_items, flat_scores, offsets
    kept = np.minimum(np.diff(offsets), depth)
    head_offsets = np.zeros(len(kept) + 1, dtype=np.int64)
    np.cumsum(kept, out=head_offsets[1:])
    take = np.repeat(offsets[:-1] - head_offsets[:-1], kept) + np.arange(head_offsets[-1])
    return flat_items[take], flat_scores[take], head_offsets

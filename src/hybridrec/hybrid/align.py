"""Align the branches' top-k exports on original user and item ids.

Each branch numbers users and items its own way; its mapping tables (``user_ids.parquet``,
``item_ids.parquet``: columns ``original_id`` and ``user``/``item``) take the ids back to the
dataset's original ids. After alignment every branch's list for a user sits in one array, over one
shared contiguous item vocabulary, so that features and fusion work on plain integer arrays.

Branch order is the iteration order of the ``exports`` mapping: build it from the config list
``hybrid.branches`` (branch 0 is LinRec in the paper's setting; the gate's alpha is its weight).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from hybridrec.errors import HybridrecError
from hybridrec.plain import plain

PAD = -1
"""Shared item id that fills a list shorter than ``k``."""

_MAX_NAMED = 5


@dataclass(frozen=True)
class AlignedLists:
    """Every branch's top-k list for every user, in one shared item id space.

    Users are sorted by original id. A shared item id ``i`` stands for ``vocabulary[i]``.
    """

    branches: tuple[str, ...]
    users: np.ndarray  # (U,) original user ids
    vocabulary: np.ndarray  # (V,) original item ids; shared id = position
    lists: np.ndarray  # (U, B, k) int64 shared item ids, best first, PAD past a list's end
    scores: np.ndarray  # (U, B, k) float64 log-probabilities, NaN past a list's end
    target: np.ndarray  # (U,) int64 shared id of the held-out item

    @property
    def n_users(self) -> int:
        return int(self.lists.shape[0])

    @property
    def n_branches(self) -> int:
        return int(self.lists.shape[1])

    @property
    def k(self) -> int:
        return int(self.lists.shape[2])


def flatten_list_column(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """A list-valued column as (flat values, CSR offsets of length ``len(column) + 1``).

    Accepts what ``pandas.read_parquet`` returns for ``list<...>`` columns (object arrays of
    numpy arrays, or an Arrow-backed dtype); a null list counts as empty.
    """
    array = pa.array(column, from_pandas=True)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    lengths = array.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    values = array.flatten().to_numpy(zero_copy_only=False)
    return values, offsets


def target_ranks(lists: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based position of ``target`` in each list, ``k + 1`` where it is absent.

    ``lists`` has shape ``(..., k)`` and ``target`` the leading shape ``(U,)``; the target is
    broadcast over the middle axes, so ``(U, B, k)`` gives ``(U, B)`` and ``(U, k)`` gives ``(U,)``.
    """
    k = lists.shape[-1]
    shaped = target.reshape(target.shape + (1,) * (lists.ndim - target.ndim))
    hit = lists == shaped
    return np.where(hit.any(axis=-1), hit.argmax(axis=-1) + 1, k + 1).astype(np.int64)


def first_occurrence(lists: np.ndarray) -> np.ndarray:
    """True where an entry of ``lists`` (..., n) is an item (not ``PAD``) that no earlier entry
    of its row repeats; the rows read as ordered sets.

    One stable sort per row (equal items keep their order, so the first of a run is the earliest
    position): O(n log n) time and O(n) memory per row, for lists of any length.
    """
    order = np.argsort(lists, axis=-1, kind="stable")
    ordered = np.take_along_axis(lists, order, axis=-1)
    starts_run = np.ones(ordered.shape, dtype=bool)
    starts_run[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    first = np.empty_like(starts_run)
    np.put_along_axis(first, order, starts_run, axis=-1)
    return first & (lists != PAD)


def align_branches(exports: Mapping[str, pd.DataFrame],
                   user_maps: Mapping[str, pd.DataFrame],
                   item_maps: Mapping[str, pd.DataFrame],
                   dataset: str = "?", split: str = "?") -> AlignedLists:
    """Join the branches' exports (``contracts.md``, Predictions) per original user.

    Raises :class:`HybridrecError` naming ``dataset``/``split`` and the first offending users when
    a branch lacks a user another branch has, lists a user twice, or disagrees on a target, or
    when an id is missing from its mapping table.
    """
    joined = join_branches(exports, user_maps, item_maps, dataset, split)
    parts = list(joined.parts.values())
    vocabulary = np.sort(pd.unique(np.concatenate([p.items for p in parts] + [joined.target])))
    vocab_index = pd.Index(vocabulary)
    k = max(int(np.diff(p.offsets).max(initial=0)) for p in parts)
    lists = np.full((len(joined.users), len(parts), k), PAD, dtype=np.int64)
    scores = np.full((len(joined.users), len(parts), k), np.nan, dtype=np.float64)
    for b, part in enumerate(parts):
        lists[:, b], scores[:, b] = pad_lists(vocab_index.get_indexer(part.items), part.scores,
                                              part.offsets, k)
    target = vocab_index.get_indexer(joined.target).astype(np.int64)
    return AlignedLists(tuple(joined.parts), joined.users, vocabulary, lists, scores, target)


@dataclass(frozen=True)
class JoinedBranches:
    """Every branch's lists in original ids, rows in one user order (sorted original ids).

    What :func:`align_branches` numbers into shared ids; the align job writes it as it is
    (:func:`hybridrec.hybrid.aligned_file.joined_table`), without the users x branches x k
    arrays.
    """

    users: np.ndarray  # (U,) original user ids, sorted
    target: np.ndarray  # (U,) original item ids
    parts: dict[str, BranchInOriginalIds]  # by branch, in branch order, rows as ``users``


def join_branches(exports: Mapping[str, pd.DataFrame], user_maps: Mapping[str, pd.DataFrame],
                  item_maps: Mapping[str, pd.DataFrame], dataset: str = "?",
                  split: str = "?") -> JoinedBranches:
    """Map every branch's export to original ids and put its rows in one user order (the
    checks and errors of :func:`align_branches`). Item ids take the dtype all branches' ids
    and the targets share (``numpy.result_type``)."""
    parts = {b: branch_in_original_ids(exports[b], user_maps[b], item_maps[b], b, dataset, split)
             for b in exports}
    return join_parts(parts, dataset, split)


def branch_in_original_ids(export: pd.DataFrame, user_map: pd.DataFrame,
                           item_map: pd.DataFrame, branch: str, dataset: str = "?",
                           split: str = "?") -> BranchInOriginalIds:
    """One branch's export (contracts.md, Predictions) in original ids, flat."""
    return _to_original(export, user_map, item_map, f"{dataset}/{split}, branch {branch!r}")


def join_parts(parts: dict[str, BranchInOriginalIds], dataset: str = "?",
               split: str = "?") -> JoinedBranches:
    """:func:`join_branches` of branches already in original ids (``parts`` is emptied)."""
    if not parts:
        raise HybridrecError(f"{dataset}/{split}: no branch exports to align")
    where = f"{dataset}/{split}"
    branches = tuple(parts)
    users = _common_users([p.users for p in parts.values()], branches, where)
    rows = {b: _rows_of(p.users, users) for b, p in parts.items()}
    targets = [p.target if r is None else p.target[r] for p, r in
               zip(parts.values(), rows.values(), strict=True)]
    _check_targets(users, targets, branches, where)
    dtype = np.result_type(*(p.items for p in parts.values()), targets[0])
    ordered = {b: _reordered(parts.pop(b), rows[b], dtype) for b in branches}
    return JoinedBranches(users, targets[0].astype(dtype, copy=False), ordered)


def _rows_of(users: np.ndarray, order: np.ndarray) -> np.ndarray | None:
    """Row of each of ``order``'s users in ``users``; None where they are already in order."""
    if len(users) == len(order) and np.array_equal(users, order):
        return None
    return pd.Index(users).get_indexer(order)


def _reordered(part: BranchInOriginalIds, rows: np.ndarray | None,
               dtype: np.dtype) -> BranchInOriginalIds:
    """``part`` with its lists in the order ``rows`` (None: as it is), items as ``dtype``."""
    items = part.items.astype(dtype, copy=False)
    if rows is None:
        return BranchInOriginalIds(part.users, items, part.scores, part.offsets, part.target)
    lengths = np.diff(part.offsets)[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    gather = np.repeat(part.offsets[:-1][rows] - offsets[:-1], lengths) + np.arange(offsets[-1])
    return BranchInOriginalIds(part.users[rows], items[gather], part.scores[gather], offsets,
                                part.target[rows])


def align_sequences(users: np.ndarray, split_frame: pd.DataFrame, user_map: pd.DataFrame,
                    dataset: str = "?", split: str = "?") -> tuple[np.ndarray, np.ndarray]:
    """Input sequences of ``users`` (original ids) as flat items and CSR offsets, in that order.

    ``split_frame`` is ``split/{valid,test}.parquet`` (internal ``user``, ``items``), ``user_map``
    its ``user_ids.parquet``. Item ids stay internal: the features only count them.
    """
    where = f"{dataset}/{split}, input sequences"
    original = _map_ids(split_frame["user"].to_numpy(), user_map, "user", where)
    index = pd.Index(original)
    if index.has_duplicates:
        raise HybridrecError(f"{where}: users listed twice: {_first(index[index.duplicated()])}")
    rows = index.get_indexer(users)
    if (rows < 0).any():
        raise HybridrecError(f"{where}: no input sequence for users {_first(users[rows < 0])}")
    values, offsets = flatten_list_column(split_frame["items"])
    lengths = np.diff(offsets)[rows]
    starts = offsets[:-1][rows]
    new_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1])
    return values[gather].astype(np.int64), new_offsets


@dataclass(frozen=True)
class BranchInOriginalIds:
    """One branch's lists in original ids: user ``i``'s are ``items[offsets[i]:offsets[i+1]]``."""

    users: np.ndarray  # (U_b,) original user ids, export order
    items: np.ndarray  # flat original item ids
    scores: np.ndarray  # flat float64 log-probabilities
    offsets: np.ndarray  # (U_b + 1,)
    target: np.ndarray  # (U_b,) original item ids


def _to_original(export: pd.DataFrame, user_map: pd.DataFrame, item_map: pd.DataFrame,
                 where: str) -> BranchInOriginalIds:
    items, offsets = flatten_list_column(export["items"])
    scores, score_offsets = flatten_list_column(export["scores"])
    if not np.array_equal(offsets, score_offsets):
        raise HybridrecError(f"{where}: 'items' and 'scores' lists differ in length")
    return BranchInOriginalIds(
        users=_map_ids(export["user"].to_numpy(), user_map, "user", where),
        items=_map_ids(items, item_map, "item", where),
        scores=scores.astype(np.float64),
        offsets=offsets,
        target=_map_ids(export["target"].to_numpy(), item_map, "item", where),
    )


def _map_ids(internal: np.ndarray, mapping: pd.DataFrame, column: str, where: str) -> np.ndarray:
    ids = mapping[column].to_numpy()
    if np.array_equal(ids, np.arange(1, len(ids) + 1)):  # 1..n in order, as our id tables are
        rows = np.where((internal >= 1) & (internal <= len(ids)), internal - 1, -1)
    else:
        index = pd.Index(ids)
        if index.has_duplicates:
            raise HybridrecError(f"{where}: {column} mapping lists internal ids twice: "
                                 f"{_first(index[index.duplicated()])}")
        rows = index.get_indexer(internal)
    if (rows < 0).any():
        raise HybridrecError(f"{where}: internal {column} ids missing from the mapping table: "
                             f"{_first(np.unique(internal[rows < 0]))}")
    return mapping["original_id"].to_numpy()[rows]


def _common_users(per_branch: Sequence[np.ndarray], branches: Sequence[str],
                  where: str) -> np.ndarray:
    for name, users in zip(branches, per_branch, strict=True):
        index = pd.Index(users)
        if index.has_duplicates:
            raise HybridrecError(f"{where}: branch {name!r} lists users twice: "
                                 f"{_first(np.unique(index[index.duplicated()]))}")
    reference = np.sort(per_branch[0])
    for name, users in zip(branches[1:], per_branch[1:], strict=True):
        missing = np.setdiff1d(reference, users)
        extra = np.setdiff1d(users, reference)
        if len(missing) or len(extra):
            raise HybridrecError(
                f"{where}: every user must appear in every branch; branch {name!r} lacks "
                f"{len(missing)} user(s) of branch {branches[0]!r} (first: {_first(missing)}) "
                f"and has {len(extra)} it lacks (first: {_first(extra)})")
    return reference


def _check_targets(users: np.ndarray, targets: Sequence[np.ndarray], branches: Sequence[str],
                   where: str) -> None:
    for name, target in zip(branches[1:], targets[1:], strict=True):
        differ = target != targets[0]
        if differ.any():
            shown = ", ".join(f"{u!r}: {a!r} vs {b!r}" for u, a, b in
                              zip(users[differ][:_MAX_NAMED], targets[0][differ][:_MAX_NAMED],
                                  target[differ][:_MAX_NAMED], strict=True))
            raise HybridrecError(
                f"{where}: targets differ between branches {branches[0]!r} and {name!r} for "
                f"{int(differ.sum())} user(s); first (user: target vs target): {shown}")


def pad_lists(items: np.ndarray, scores: np.ndarray, offsets: np.ndarray,
              k: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR lists (flat items and scores, offsets) as (U, k) arrays padded with PAD and NaN."""
    return (pad_column(items, offsets, k, PAD, np.int64),
            pad_column(scores, offsets, k, np.nan, np.float64))


def pad_column(values: np.ndarray, offsets: np.ndarray, k: int, fill: float,
               dtype: type) -> np.ndarray:
    """CSR lists (flat values, offsets) as a (U, k) array of ``dtype`` padded with ``fill``."""
    lengths = np.diff(offsets)
    padded: np.ndarray = np.full((len(lengths), k), fill, dtype=dtype)
    if len(lengths) and (lengths == k).all():  # every list full: no index arrays needed
        padded[:] = values[offsets[0]:offsets[-1]].reshape(len(lengths), k)
        return padded
    row = np.repeat(np.arange(len(lengths)), lengths)
    col = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    padded[row, col] = values
    return padded


def _first(values: np.ndarray | pd.Index) -> list[object]:
    return [plain(v) for v in list(values[:_MAX_NAMED])]

"""Top-k prediction exports: ``results/predictions/{dataset}/{model}/{split}.parquet``.

Layout (docs/contracts.md): ``user`` int32, ``items`` list<int32> (best first), ``scores``
list<float32> (log-probabilities over the whole catalogue), ``target`` int32, ``target_rank`` int32;
key/value metadata ``protocol``, ``k``, ``user_ids``, ``item_ids``, ``model``, ``dataset``,
``split``. Rows are sorted by ``user``. Tables are built from flat NumPy buffers and offsets, and
written atomically through :func:`hybridrec.io.write_table`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hybridrec.errors import DataFormatError
from hybridrec.io import write_table
from hybridrec.protocols import PROTOCOLS
from hybridrec.rebuild import rebuild_command

if TYPE_CHECKING:  # ranking imports torch; the readers (the hybrid's jobs) need neither
    from hybridrec.evaluation.ranking import RankResult

SPLITS: tuple[str, ...] = ("valid", "test")

PREDICTIONS_SCHEMA = pa.schema([
    ("user", pa.int32()),
    ("items", pa.list_(pa.int32())),
    ("scores", pa.list_(pa.float32())),
    ("target", pa.int32()),
    ("target_rank", pa.int32()),
])

METADATA_KEYS: tuple[str, ...] = (
    "protocol", "k", "user_ids", "item_ids", "model", "dataset", "split",
)

PathLike = str | os.PathLike[str]


def predictions_table(users: np.ndarray, result: RankResult, targets: np.ndarray,
                      k: int) -> pa.Table:
    """Arrow table of the predictions layout, rows sorted by user, lists cut to the first ``k``.

    ``users`` and ``targets`` are (U,) arrays aligned with the rows of ``result``.
    """
    users_arr = _int32(users, "users")
    targets_arr = _int32(targets, "targets")
    n = result.num_users
    if users_arr.shape != (n,) or targets_arr.shape != (n,):
        raise ValueError(f"users {users_arr.shape} and targets {targets_arr.shape} must both be "
                         f"({n},) to match the rank result")
    if not 1 <= k <= result.k:
        raise ValueError(f"k must be in 1..{result.k} (the result's list length), got {k}")

    order = np.argsort(users_arr, kind="stable")
    sorted_users = users_arr[order]
    if n and (sorted_users[0] < 1 or np.any(sorted_users[1:] == sorted_users[:-1])):
        raise ValueError("users must be distinct internal ids >= 1")
    offsets = pa.array(np.arange(0, n * k + 1, k, dtype=np.int32))
    items = _int32(result.topk_items[order, :k], "topk_items").ravel()
    scores = np.ascontiguousarray(result.topk_scores[order, :k], dtype=np.float32).ravel()
    return pa.Table.from_arrays(
        [
            pa.array(sorted_users),
            pa.ListArray.from_arrays(offsets, pa.array(items)),
            pa.ListArray.from_arrays(offsets, pa.array(scores)),
            pa.array(targets_arr[order]),
            pa.array(_int32(result.target_rank[order], "target_rank")),
        ],
        schema=PREDICTIONS_SCHEMA,
    )


def write_predictions(
    path: PathLike,
    users: np.ndarray,
    result: RankResult,
    targets: np.ndarray,
    *,
    protocol: str,
    k: int,
    user_ids_path: PathLike,
    item_ids_path: PathLike,
    model: str,
    dataset: str,
    split: str,
) -> None:
    """Write the predictions Parquet for one (dataset, model, split) atomically.

    ``users`` and ``targets`` are (U,) internal ids aligned with ``result``'s rows (any order; the
    file is sorted by user). ``k`` may be shorter than ``result.k``: the lists are then cut, which
    is exact because they are sorted. ``user_ids_path``/``item_ids_path`` name the id mapping
    tables the ids refer to and are stored as given.
    """

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    table = predictions_table(np.asarray(users), result, np.asarray(targets), k)
    metadata = {
        "protocol": protocol,
        "k": str(k),
        "user_ids": str(user_ids_path),
        "item_ids": str(item_ids_path),
        "model": model,
        "dataset": dataset,
        "split": split,
    }
    write_table(table, path, metadata)


def read_predictions(path: PathLike) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a predictions file; return the frame (contract dtypes) and its string metadata.

    Integer and list columns written with other widths (e.g. int64, large_list by another
    framework) are cast safely to the contract types.

    Raises:
        DataFormatError: naming the file and the column or metadata key that is missing, has the
            wrong type, or whose lists are not all of length ``k``; a file that is not readable
            Parquet, with the command that remakes it.
    """
    path = Path(path)
    try:
        table = pq.read_table(path)
    except pa.ArrowException as error:  # not Parquet, truncated, a bad page
        raise DataFormatError(path, f"not a readable Parquet file ({error}); remake it with "
                                    f"`{rebuild_command(path)}`") from None
    raw = table.schema.metadata or {}
    metadata = {key.decode(): value.decode() for key, value in raw.items()}
    for key in METADATA_KEYS:
        if key not in metadata:
            raise DataFormatError(path, f"missing metadata key {key!r}")
    k = _metadata_k(path, metadata["k"])

    columns = []
    for field in PREDICTIONS_SCHEMA:
        if field.name not in table.column_names:
            raise DataFormatError(path, "missing column", column=field.name)
        columns.append(_cast_column(path, field, table.column(field.name)))
    for name in ("items", "scores"):
        lengths = pc.list_value_length(columns[PREDICTIONS_SCHEMA.get_field_index(name)])
        if len(lengths) and (pc.min(lengths).as_py() != k or pc.max(lengths).as_py() != k):
            raise DataFormatError(path, f"every list must have k={k} entries", column=name)
    frame = pa.Table.from_arrays(columns, schema=PREDICTIONS_SCHEMA).to_pandas()
    return frame, metadata


def _int32(values: np.ndarray, name: str) -> np.ndarray:
    """``values`` as int32, refusing non-integers and values outside the int32 range."""
    array = np.asarray(values)
    if not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {array.dtype}")
    info = np.iinfo(np.int32)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"{name} do not fit in int32")
    return np.ascontiguousarray(array, dtype=np.int32)


def _metadata_k(path: Path, text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise DataFormatError(path, f"metadata key 'k' must be a positive integer, got {text!r}")
    return k


def _cast_column(path: Path, field: pa.Field, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Cast ``column`` safely to the contract type of ``field`` (same kind, any width)."""
    actual, expected = column.type, field.type
    if pa.types.is_list(expected):
        same_kind = ((pa.types.is_list(actual) or pa.types.is_large_list(actual)
                      or pa.types.is_fixed_size_list(actual))
                     and _same_kind(actual.value_type, expected.value_type))
    else:
        same_kind = _same_kind(actual, expected)
    if not same_kind:
        raise DataFormatError(path, f"expected type {expected}, got {actual}", column=field.name)
    try:
        return column.cast(expected, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise DataFormatError(path, f"cannot cast {actual} to {expected}: {error}",
                              column=field.name) from error


def _same_kind(actual: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_integer(expected):
        return bool(pa.types.is_integer(actual))
    return bool(pa.types.is_floating(actual))


__all__ = [
    "METADATA_KEYS",
    "PREDICTIONS_SCHEMA",
    "SPLITS",
    "predictions_table",
    "read_predictions",
    "write_predictions",
]

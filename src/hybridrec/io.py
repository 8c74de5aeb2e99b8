"""Atomic, deterministic file output: every writer goes through a temporary file and a rename.

A reader never sees a half-written file: content is written to a sibling temporary path in the
same directory, flushed to disk, then moved over the destination with ``os.replace``.
Parquet files are written without wall-clock metadata so that equal frames give equal bytes.
Inside a pipeline job every writer attaches the job's provenance record
(:mod:`hybridrec.provenance`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hybridrec import provenance

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(table: pa.Table, path: str | os.PathLike[str],
                metadata: Mapping[str, str] | None = None) -> None:
    """Write an Arrow table to Parquet atomically, with optional string key/value metadata
    (and the job's provenance record)."""
    extra = dict(metadata or {})
    if (record := provenance.record_json()) is not None:
        extra[provenance.KEY] = record
    if extra:
        merged = dict(table.schema.metadata or {})
        merged.update({k.encode(): v.encode() for k, v in extra.items()})
        table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True)


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike[str],
                  metadata: Mapping[str, str] | None = None,
                  schema: pa.Schema | None = None) -> None:
    """Write a DataFrame to Parquet atomically (no index, no pandas metadata: stable bytes)."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    table = table.replace_schema_metadata(None)
    write_table(table, path, metadata)


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON atomically with sorted keys, so equal objects give equal bytes; an object
    gains a ``provenance`` key inside a job."""
    record = provenance.current_record()
    if record is not None and isinstance(obj, Mapping) and "provenance" not in obj:
        obj = {**obj, "provenance": record}
    _write_json_as_is(obj, path)


def _write_json_as_is(obj: Any, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a result table as CSV atomically; inside a job its provenance record goes first to
    the sidecar ``<name>.provenance.json``, so a table never stands without one."""
    record = provenance.current_record()
    if record is not None:
        _write_json_as_is(record, provenance.sidecar_path(path))
    write_text(frame.to_csv(index=False), path)


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def file_checksum(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """``"algorithm:hex"`` of a file, read in chunks of 1 MiB."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"

"""Provenance: what produced a result file - the rule, its code, its config values, the packages,
the device and the thread count.

A Snakemake script calls :func:`start_job` once; from then on every writer in :mod:`hybridrec.io`
attaches the job's record to what it writes:

- Parquet: the key-value metadata entry ``hybridrec.provenance`` (JSON);
- JSON objects: a top-level ``"provenance"`` key;
- CSV tables: a sidecar ``<name>.provenance.json`` written before the table;
- PNG figures: a ``hybridrec.provenance`` text chunk;
- ``model.pt``: a ``"provenance"`` entry (JSON text).

:func:`read_provenance` reads it back from any of them. The record holds no wall time, host name or
date, so results stay byte-identical across runs, ``--cores`` and machines of one kind. The rule's
code version is its ``code`` param (:mod:`hybridrec.codehash`), one of the params recorded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from hybridrec.plain import plain

KEY = "hybridrec.provenance"
PACKAGES = ("hybridrec", "torch", "numpy", "pandas", "pyarrow", "scikit-learn", "snakemake")

_record: dict[str, Any] | None = None


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (``None`` where absent)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def job_record(rule: str, wildcards: Mapping[str, Any], params: Mapping[str, Any]
               ) -> dict[str, Any]:
    """The record of one job: rule, wildcards, every param (config values, code hash), packages."""
    return {"rule": rule, "wildcards": plain(wildcards), "params": plain(params),
            "packages": package_versions()}


def set_record(record: Mapping[str, Any] | None) -> None:
    """Make ``record`` the one every writer of this process attaches (``None`` stops it)."""
    global _record
    _record = None if record is None else plain(record)


def add_to_record(**fields: Any) -> None:
    """Add runtime facts (the device claimed, the thread count) to the current record."""
    if _record is not None:
        _record.update(plain(fields))


def current_record() -> dict[str, Any] | None:
    return _record


def record_json() -> str | None:
    """The current record as compact JSON with sorted keys, or ``None``."""
    return None if _record is None else json.dumps(_record, sort_keys=True,
                                                   separators=(",", ":"))


def png_metadata() -> dict[str, str | None]:
    """``savefig(metadata=...)`` for a PNG: no software stamp, and the record as a text chunk."""
    metadata: dict[str, str | None] = {"Software": None}
    if (text := record_json()) is not None:
        metadata[KEY] = text
    return metadata


def start_job(smk: Any) -> None:
    """Logging to the rule's log file and this job's provenance, from Snakemake's object."""
    from hybridrec.logsetup import configure_logging

    configure_logging(smk.log[0] if smk.log else None)
    set_record(job_record(smk.rule, dict(smk.wildcards.items()), dict(smk.params.items())))


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """Where a CSV table's record lives: ``table5.csv`` -> ``table5.provenance.json``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.provenance.json")


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The record attached to a result file written by a job; KeyError where there is none."""
    path = Path(path)
    suffix = path.suffix
    text: str | None
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        raw = pq.read_schema(path).metadata or {}
        found = raw.get(KEY.encode())
        text = None if found is None else found.decode()
    elif suffix == ".json":
        value = json.loads(path.read_text()).get("provenance")
        text = None if value is None else json.dumps(value)
    elif suffix == ".csv":
        sidecar = sidecar_path(path)
        text = sidecar.read_text() if sidecar.exists() else None
    elif suffix == ".png":
        from PIL import Image

        with Image.open(path) as image:
            text = image.info.get(KEY)
    elif suffix == ".pt":
        import torch

        text = torch.load(path, map_location="cpu", weights_only=True).get("provenance")
    else:
        raise KeyError(f"{path}: no provenance for files of type {suffix!r}")
    if text is None:
        raise KeyError(f"{path}: carries no provenance record")
    record: dict[str, Any] = json.loads(text)
    return record

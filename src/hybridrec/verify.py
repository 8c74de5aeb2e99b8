"""Check every cached result file for integrity and say how to rebuild the damaged ones.

    python -m hybridrec.verify results/ --configfile config/demo.yaml

Snakemake trusts any file that exists and is newer than its inputs: a Parquet file replaced by
garbage fails every consumer until it is rebuilt, and a deleted intermediate is rebuilt only when
a consumer reruns. This reads every Parquet, JSON, torch and SQLite file under ``results/`` in
full, checks the columns, metadata, keys and tables that docs/contracts.md specifies for its path
(a gate search's ``study.db``: the tables Optuna writes), and prints each damaged file with the
command that rebuilds it (``snakemake --force <file>``: that job only; the next ordinary run then
reruns its consumers, whose input is now newer). A damaged training checkpoint is moved aside
instead: training resumes from the newest intact one.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import json
import pickle
import sqlite3
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import torch

from hybridrec.evaluation.export import METADATA_KEYS, PREDICTIONS_SCHEMA
from hybridrec.rebuild import rebuild_command
from hybridrec.training.checkpoint import weights_only_refusal

# (pattern relative to results/, what the file must hold); the first matching pattern applies
PARQUET_COLUMNS: tuple[tuple[str, frozenset[str]], ...] = (
    ("data/*/user_ids.parquet", frozenset({"original_id", "user"})),
    ("data/*/item_ids.parquet", frozenset({"original_id", "item"})),
    ("data/*/sequences.parquet", frozenset({"user", "items", "timestamps"})),
    ("data/*/split/train.parquet", frozenset({"user", "items", "timestamps"})),
    ("data/*/split/*.parquet", frozenset({"user", "items", "timestamps", "target"})),
    ("data/*/candidates/*.parquet", frozenset({"user", "target", "negatives"})),
    ("predictions/*.parquet", frozenset(PREDICTIONS_SCHEMA.names)),
)
PARQUET_METADATA: tuple[tuple[str, frozenset[str]], ...] = (
    ("predictions/*.parquet", frozenset(METADATA_KEYS)),
)
JSON_KEYS: tuple[tuple[str, frozenset[str]], ...] = (
    ("data/*/stats.json", frozenset({"users", "items", "interactions", "dropped_users"})),
    ("metrics/*.json", frozenset({"dataset", "model", "splits", "training"})),
)
TORCH_KEYS: tuple[tuple[str, frozenset[str]], ...] = (
    ("models/*/model.pt", frozenset({"format", "name", "num_items", "architecture", "weights",
                                       "selections"})),
)
# the tables of Optuna's RDB storage that a finished search fills (hybrid/search.py) and that
# optuna-dashboard reads
SQLITE_TABLES: tuple[tuple[str, frozenset[str]], ...] = (
    ("hybrid/*/search/study.db", frozenset({"studies", "study_directions",
                                            "study_user_attributes", "trials", "trial_params",
                                            "trial_values", "trial_user_attributes",
                                            "version_info"})),
)
CHECKED_SUFFIXES = (".parquet", ".json", ".pt", ".db")


@dataclass(frozen=True)
class Damage:
    """A damaged file, what is wrong with it and the command that rebuilds it."""

    path: Path
    problem: str
    command: str


def verify_results(root: str | Path, configfiles: Sequence[str] = ()) -> tuple[int, list[Damage]]:
    """Check every Parquet, JSON, torch and SQLite file under ``root``; return (files checked,
    damage).

    Temporary files of an interrupted atomic write (``.<name>.*.tmp``) are not results and are
    skipped. ``configfiles`` are the run's ``--configfile`` arguments, repeated in the commands.
    """
    root = Path(root)
    paths = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in CHECKED_SUFFIXES
                   and not p.name.startswith("."))
    damage = []
    for path in paths:
        problem = _problem(path, path.relative_to(root).as_posix())
        if problem:
            damage.append(Damage(path, problem, rebuild_command(path, configfiles)))
    return len(paths), damage


def _problem(path: Path, relative: str) -> str | None:
    """What is wrong with one file, or None."""
    try:
        if path.suffix == ".parquet":
            return _parquet_problem(path, relative)
        if path.suffix == ".json":
            return _missing(json.loads(path.read_text()), JSON_KEYS, relative, "key")
        if path.suffix == ".db":
            return _sqlite_problem(path, relative)
        return _torch_problem(path, relative)
    except Exception as exc:  # noqa: BLE001 (any failure to read is the finding)
        return f"unreadable: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _torch_problem(path: Path, relative: str) -> str | None:
    """A torch file: every entry's CRC-32, then a weights-only load (a pickle of Python objects
    is refused, never loaded)."""
    with zipfile.ZipFile(path) as archive:
        corrupt = archive.testzip()
    if corrupt is not None:
        return f"entry {corrupt} fails its CRC-32"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        return f"{weights_only_refusal(error)}; not written by this pipeline"
    return _missing(payload, TORCH_KEYS, relative, "entry")


def _sqlite_problem(path: Path, relative: str) -> str | None:
    """An SQLite file, opened read-only: SQLite's integrity check, then the expected tables."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
        if verdict != "ok":  # "*** in database main ***", then a line per problem
            first = [line for line in verdict.splitlines() if not line.startswith("***")]
            return f"fails SQLite's integrity check ({(first or [verdict])[0]})"
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return _missing(dict.fromkeys(name for (name,) in tables), SQLITE_TABLES, relative, "table")


def _parquet_problem(path: Path, relative: str) -> str | None:
    table = pq.read_table(path)  # reads every page: a checksum or decoding error raises
    problem = _missing(dict.fromkeys(table.column_names), PARQUET_COLUMNS, relative, "column")
    metadata = {key.decode() for key in (table.schema.metadata or {})}
    return problem or _missing(dict.fromkeys(metadata), PARQUET_METADATA, relative,
                               "metadata key")


def _missing(content: object, expected: tuple[tuple[str, frozenset[str]], ...], relative: str,
             what: str) -> str | None:
    """The first expected name absent from ``content`` (a mapping), for the first pattern."""
    for pattern, names in expected:
        if fnmatch.fnmatch(relative, pattern):
            if not isinstance(content, dict):
                return f"expected a mapping, found {type(content).__name__}"
            absent = sorted(names - set(content))
            return f"no {what} {absent[0]!r} ({len(absent)} missing)" if absent else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Print the damaged files and their rebuild commands; exit status 1 if there are any."""
    parser = argparse.ArgumentParser(prog="python -m hybridrec.verify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", default="results", help="results folder")
    parser.add_argument("--configfile", nargs="*", default=[],
                        help="the run's --configfile arguments, repeated in the commands")
    args = parser.parse_args(argv)
    checked, damage = verify_results(args.root, args.configfile)
    for item in damage:
        print(f"DAMAGED {item.path}: {item.problem}\n  rebuild: {item.command}")
    print(f"{checked} files checked, {len(damage)} damaged")
    return 1 if damage else 0


if __name__ == "__main__":
    sys.exit(main())

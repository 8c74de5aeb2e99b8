"""hybridrec.verify: every damaged cached file is listed with the command that rebuilds it."""

from __future__ import annotations

import contextlib
import pathlib
import re
import sqlite3

import numpy as np
import optuna
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import raw_frame

from hybridrec.data.preprocess import PreprocessConfig
from hybridrec.data.store import write_candidates, write_dataset
from hybridrec.errors import DataFormatError
from hybridrec.io import write_json
from hybridrec.jobs.align import join_exports
from hybridrec.verify import main, verify_results

STUDY = "hybrid/d/full/search/study.db"


def _results(root):
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(1, 31), 6)
    raw = raw_frame(users, rng.integers(1, 200, len(users)), np.arange(len(users)))
    write_dataset(raw, PreprocessConfig(), root / "data" / "d", dataset="d")
    write_candidates(root / "data" / "d", "uniform99", seed=0, dataset="d")
    write_json({"dataset": "d", "model": "m", "splits": {}, "training": {}},
               root / "metrics" / "d" / "m.json")
    model = {"format": 2, "name": "m", "num_items": 3, "architecture": {}, "selections": {},
             "weights": {"1": {"w": torch.ones(2)}}}
    (root / "models" / "d" / "m" / "checkpoints").mkdir(parents=True)
    torch.save(model, root / "models" / "d" / "m" / "model.pt")
    torch.save(model, root / "models" / "d" / "m" / "checkpoints" / "last.pt")
    (root / "data" / "d" / ".stats.json.x1.tmp").write_text("{")  # an interrupted write: skipped
    (root / STUDY).parent.mkdir(parents=True)
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / STUDY}")
    optuna.create_study(storage=storage, study_name="d", directions=["maximize", "maximize"])
    storage.engine.dispose()


def test_an_intact_results_folder_passes(tmp_path, capsys):
    _results(tmp_path)
    checked, damage = verify_results(tmp_path)
    assert checked == 13 and damage == []  # 9 data, metrics, model, checkpoint, study
    assert main([str(tmp_path)]) == 0
    assert "13 files checked, 0 damaged" in capsys.readouterr().out


def test_damaged_files_are_listed_with_the_command_that_rebuilds_them(tmp_path, capsys):
    _results(tmp_path)
    candidates = tmp_path / "data/d/candidates/test.uniform99.parquet"
    candidates.write_bytes(candidates.read_bytes()[:200])  # truncated
    valid = tmp_path / "data/d/split/valid.parquet"
    pq.write_table(pq.read_table(valid).drop_columns(["target"]), valid)  # wrong schema
    (tmp_path / "metrics/d/m.json").write_text("garbage")
    (tmp_path / "data/d/stats.json").write_text('{"users": 1}')  # readable, keys missing
    model = tmp_path / "models/d/m/model.pt"
    model.write_bytes(model.read_bytes()[:100])
    checkpoint = tmp_path / "models/d/m/checkpoints/last.pt"
    checkpoint.write_bytes(b"\0" * 64)
    pq.write_table(pa.table({"x": [1]}), tmp_path / "predictions.parquet")  # unmatched: read only

    _, damage = verify_results(tmp_path, ["config/demo.yaml", "my overrides.yaml"])
    found = {d.path.relative_to(tmp_path).as_posix(): d for d in damage}
    assert set(found) == {"data/d/candidates/test.uniform99.parquet", "data/d/split/valid.parquet",
                          "metrics/d/m.json", "data/d/stats.json", "models/d/m/model.pt",
                          "models/d/m/checkpoints/last.pt"}
    assert found["data/d/split/valid.parquet"].problem == "no column 'target' (1 missing)"
    assert found["data/d/stats.json"].problem.startswith("no key 'dropped_users'")
    assert found["metrics/d/m.json"].problem.startswith("unreadable: JSONDecodeError")
    assert found["metrics/d/m.json"].command == (
        f"snakemake --force {tmp_path}/metrics/d/m.json "
        "--configfile config/demo.yaml 'my overrides.yaml'")
    moved = f"mv {checkpoint} {checkpoint}.damaged"
    assert found["models/d/m/checkpoints/last.pt"].command == moved
    assert main([str(tmp_path)]) == 1
    assert "6 damaged" in capsys.readouterr().out


def _drop_table(path, table):
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"DROP TABLE {table}")


def _scramble_a_page(path):
    """An SQLite file whose fourth page has cells that overlap: it opens, its check fails."""
    path.unlink()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO t (name) VALUES (?)", [(f"n{i:05d}",) for i in range(2000)])
        db.commit()
    data = bytearray(path.read_bytes())
    for byte in range(4 * 4096 - 200, 4 * 4096 - 190):
        data[byte] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, problem", [
    (lambda path: path.write_bytes(b"garbage " * 512),
     "unreadable: DatabaseError: file is not a database"),
    (lambda path: path.write_bytes(path.read_bytes()[:5000]),
     "unreadable: DatabaseError: database disk image is malformed"),
    (_scramble_a_page, "fails SQLite's integrity check (On tree page "),
    (lambda path: _drop_table(path, "trial_values"), "no table 'trial_values' (1 missing)"),
])
def test_a_damaged_gate_search_study_is_listed_with_its_rebuild_command(tmp_path, damage,
                                                                         problem):
    _results(tmp_path)
    study = tmp_path / STUDY
    damage(study)
    before = study.read_bytes()
    _, found = verify_results(tmp_path, ["config/demo.yaml"])
    assert [d.path for d in found] == [study]
    assert found[0].problem.startswith(problem)
    assert found[0].command == f"snakemake --force {study} --configfile config/demo.yaml"
    assert study.read_bytes() == before  # opened read-only


def test_a_pickle_of_python_objects_is_named_and_never_loaded(tmp_path):
    _results(tmp_path)
    model = tmp_path / "models/d/m/model.pt"
    torch.save({"format": 2, "path": pathlib.Path("x")}, model)
    _, found = verify_results(tmp_path)
    assert [d.problem for d in found] == [
        "holds Python objects (pathlib.PosixPath) a weights-only load refuses; not written by "
        "this pipeline"]


def test_an_unreadable_export_names_itself_and_its_rebuild_command_in_the_align_job(tmp_path):
    export = tmp_path / "results/predictions/d/linrec/full/test.parquet"
    export.parent.mkdir(parents=True)
    export.write_bytes(b"PAR1" + b"\0" * 100)  # a Parquet header, then garbage
    message = (f"{export}: not a readable Parquet file (.*); remake it with "
               f"`snakemake --force {export}`")
    with pytest.raises(DataFormatError, match=re.escape(message).replace(re.escape("(.*)"),
                                                                         r"\(.*\)")):
        join_exports({"linrec": export, "fmlp": export}, {"linrec": "full", "fmlp": "full"},
                     "d", "test")

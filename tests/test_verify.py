"""hybridrec.verify: every damaged cached file is listed with the command that rebuilds it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from conftest import raw_frame

from hybridrec.data.preprocess import PreprocessConfig
from hybridrec.data.store import write_candidates, write_dataset
from hybridrec.io import write_json
from hybridrec.verify import main, verify_results


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


def test_an_intact_results_folder_passes(tmp_path, capsys):
    _results(tmp_path)
    checked, damage = verify_results(tmp_path)
    assert checked == 12 and damage == []  # 9 data, metrics, model, checkpoint
    assert main([str(tmp_path)]) == 0
    assert "12 files checked, 0 damaged" in capsys.readouterr().out


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

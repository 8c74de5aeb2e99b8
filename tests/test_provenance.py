"""Provenance records: attached by every writer inside a job, read back from every file type."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from hybridrec import io, provenance
from hybridrec.reporting.figures import save_figure


@pytest.fixture
def record():
    provenance.set_record(provenance.job_record("fusion", {"dataset": "demo"},
                                                {"seed": 42, "code": "ab" * 32}))
    provenance.add_to_record(device="cpu", threads=2)
    yield provenance.current_record()
    provenance.set_record(None)


def test_every_writer_attaches_the_record(tmp_path, record):
    frame = pd.DataFrame({"a": [1, 2]})
    io.write_parquet(frame, tmp_path / "t.parquet")
    io.write_json({"x": 1}, tmp_path / "m.json")
    io.write_csv(frame, tmp_path / "table.csv")
    figure = plt.figure()
    save_figure(figure, tmp_path / "f.png")
    for name in ("t.parquet", "m.json", "table.csv", "f.png"):
        found = provenance.read_provenance(tmp_path / name)
        assert found == record, name
    assert found["params"]["code"] == "ab" * 32 and found["threads"] == 2
    assert found["packages"]["torch"] == torch.__version__
    assert (tmp_path / "table.provenance.json").exists()
    assert pd.read_csv(tmp_path / "table.csv").equals(frame)  # the CSV itself is unchanged
    assert json.loads((tmp_path / "m.json").read_text())["x"] == 1


def test_outside_a_job_nothing_is_attached(tmp_path):
    provenance.set_record(None)
    io.write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    io.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    with pytest.raises(KeyError, match="carries no provenance"):
        provenance.read_provenance(tmp_path / "t.parquet")
    assert not (tmp_path / "t.provenance.json").exists()


def test_the_record_is_deterministic_and_has_no_clock(record):
    text = provenance.record_json()
    assert text == provenance.record_json()
    assert not {"time", "date", "host", "seconds"} & set(json.loads(text))

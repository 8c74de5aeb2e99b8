"""Predictions export: layout, round trip, validation on read, atomic writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import hybridrec.io
from hybridrec.errors import DataFormatError
from hybridrec.evaluation.export import (
    METADATA_KEYS,
    PREDICTIONS_SCHEMA,
    read_predictions,
    write_predictions,
)
from hybridrec.evaluation.ranking import RankResult

META: dict[str, Any] = {
    "protocol": "pop100",
    "user_ids_path": "results/data/beauty/user_ids.parquet",
    "item_ids_path": Path("results/data/beauty/item_ids.parquet"),
    "model": "linrec",
    "dataset": "beauty",
    "split": "test",
}
EXPECTED_METADATA = {
    "protocol": "pop100",
    "user_ids": "results/data/beauty/user_ids.parquet",
    "item_ids": "results/data/beauty/item_ids.parquet",
    "model": "linrec",
    "dataset": "beauty",
    "split": "test",
}


def _result(users: int = 6, k: int = 4, seed: int = 0) -> RankResult:
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(np.arange(1, 50))[:k] for _ in range(users)])
    scores = -np.sort(rng.random((users, k)), axis=1).astype(np.float32)
    return RankResult(rng.integers(1, 100, users), items, scores)


def test_round_trip_dtypes_order_and_metadata(tmp_path: Path) -> None:
    result = _result()
    users = np.array([5, 2, 6, 1, 4, 3])
    targets = users * 10
    path = tmp_path / "out" / "test.parquet"
    write_predictions(path, users, result, targets, k=4, **META)

    schema = pq.read_schema(path)
    assert schema.remove_metadata() == PREDICTIONS_SCHEMA
    frame, metadata = read_predictions(path)
    assert metadata == {**EXPECTED_METADATA, "k": "4"}
    assert list(frame.columns) == ["user", "items", "scores", "target", "target_rank"]
    assert {frame[c].dtype for c in ("user", "target", "target_rank")} == {np.dtype(np.int32)}

    order = np.argsort(users)
    np.testing.assert_array_equal(frame["user"], users[order])  # rows sorted by user
    np.testing.assert_array_equal(frame["target"], targets[order])
    np.testing.assert_array_equal(frame["target_rank"], result.target_rank[order])
    items = np.stack(frame["items"].to_numpy())
    scores = np.stack(frame["scores"].to_numpy())
    assert items.dtype == np.int32 and scores.dtype == np.float32
    np.testing.assert_array_equal(items, result.topk_items[order])
    np.testing.assert_array_equal(scores, result.topk_scores[order])


def test_k_cuts_the_lists(tmp_path: Path) -> None:
    result = _result(k=5)
    path = tmp_path / "p.parquet"
    write_predictions(path, np.arange(1, 7), result, np.ones(6, int), k=3, **META)
    frame, metadata = read_predictions(path)
    assert metadata["k"] == "3"
    np.testing.assert_array_equal(np.stack(frame["items"].to_numpy()), result.topk_items[:, :3])


def test_identical_inputs_give_identical_bytes(tmp_path: Path) -> None:
    result = _result()
    for name in ("a.parquet", "b.parquet"):
        write_predictions(tmp_path / name, np.arange(1, 7), result, np.ones(6, int), k=4, **META)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_no_temporary_file_left(tmp_path: Path) -> None:
    write_predictions(tmp_path / "p.parquet", np.arange(1, 7), _result(), np.ones(6, int), k=4,
                      **META)
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


def test_failure_mid_write_leaves_no_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.parquet"

    def half_write(table: pa.Table, where: Any, **_: Any) -> None:
        Path(where).write_bytes(b"PAR1 partial")
        raise OSError("disk full")

    monkeypatch.setattr(hybridrec.io.pq, "write_table", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(path, np.arange(1, 7), _result(), np.ones(6, int), k=4, **META)
    assert list(tmp_path.iterdir()) == []


def test_failed_rewrite_keeps_previous_file(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.parquet"
    write_predictions(path, np.arange(1, 7), _result(), np.ones(6, int), k=4, **META)
    before = path.read_bytes()

    def fail(*_: Any, **__: Any) -> None:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(hybridrec.io.pq, "write_table", fail)
    with pytest.raises(RuntimeError):
        write_predictions(path, np.arange(1, 7), _result(seed=1), np.ones(6, int), k=4, **META)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["p.parquet"]


@pytest.mark.parametrize(("change", "message"), [
    ({"protocol": "pop99"}, "protocol"),
    ({"split": "train"}, "split"),
    ({"k": 5}, "k must be"),
])
def test_write_rejects_bad_arguments(tmp_path: Path, change: dict[str, Any],
                                     message: str) -> None:
    kwargs = {**META, "k": 4, **change}
    with pytest.raises(ValueError, match=message):
        write_predictions(tmp_path / "p.parquet", np.arange(1, 7), _result(), np.ones(6, int),
                          **kwargs)


def test_write_rejects_duplicate_users_and_bad_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        write_predictions(tmp_path / "p.parquet", np.array([1, 2, 2, 3, 4, 5]), _result(),
                          np.ones(6, int), k=4, **META)
    with pytest.raises(ValueError, match="match"):
        write_predictions(tmp_path / "p.parquet", np.arange(1, 6), _result(), np.ones(6, int),
                          k=4, **META)
    assert not (tmp_path / "p.parquet").exists()


def _rewrite(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path)


def test_read_names_file_and_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    write_predictions(path, np.arange(1, 7), _result(), np.ones(6, int), k=4, **META)
    _rewrite(path, pq.read_table(path).drop_columns(["target_rank"]))
    with pytest.raises(DataFormatError, match=r"p\.parquet.*'target_rank'.*missing column"):
        read_predictions(path)


def test_read_rejects_missing_metadata_and_ragged_lists(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    write_predictions(path, np.arange(1, 7), _result(), np.ones(6, int), k=4, **META)
    table = pq.read_table(path)
    for key in METADATA_KEYS:
        metadata = {k: v for k, v in table.schema.metadata.items() if k.decode() != key}
        _rewrite(path, table.replace_schema_metadata(metadata))
        with pytest.raises(DataFormatError, match=f"p.parquet.*{key}"):
            read_predictions(path)

    ragged = pa.array([[1, 2, 3, 4]] * 5 + [[1, 2]], type=pa.list_(pa.int32()))
    _rewrite(path, table.set_column(1, "items", ragged))
    with pytest.raises(DataFormatError, match="'items'.*k=4"):
        read_predictions(path)


def test_read_casts_other_integer_widths_and_rejects_wrong_kinds(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    write_predictions(path, np.arange(1, 7), _result(), np.ones(6, int), k=4, **META)
    table = pq.read_table(path)
    wide = table.set_column(0, "user", table.column("user").cast(pa.int64()))
    wide = wide.set_column(1, "items", wide.column("items").cast(pa.large_list(pa.int64())))
    _rewrite(path, wide)
    frame, _ = read_predictions(path)
    assert frame["user"].dtype == np.int32
    assert np.stack(frame["items"].to_numpy()).dtype == np.int32

    _rewrite(path, table.set_column(3, "target", table.column("target").cast(pa.string())))
    with pytest.raises(DataFormatError, match="'target'"):
        read_predictions(path)

"""Raw-interaction readers: contract dtypes, file order, and errors that name file, line, column."""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridrec.data.readers import READERS, check_reader_options, read_interactions
from hybridrec.errors import ConfigError, DataFormatError

COLUMNS = ["user", "item", "timestamp", "rating"]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def assert_contract(frame: pd.DataFrame, id_dtype: str = "int64",
                    item_dtype: str | None = None) -> None:
    assert list(frame.columns) == COLUMNS
    assert str(frame["user"].dtype) == id_dtype
    assert str(frame["item"].dtype) == (item_dtype or id_dtype)
    assert frame["timestamp"].dtype == "Int64"
    assert frame["rating"].dtype == "Float64"
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def check_error(info: pytest.ExceptionInfo[DataFormatError], path: Path, line: int | None,
                column: str | None = None) -> None:
    error = info.value
    assert error.path == str(path) and str(path) in str(error)
    assert error.line == line
    assert error.column == column


# -- MovieLens -----------------------------------------------------------------------------------


def test_movielens_dat_reads_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.dat", "1::1193::5::978300760\r\n2::661::3::978302109\n"
                 "1::914::4::978301968\n\n")
    frame = read_interactions(path, "movielens_dat")
    assert_contract(frame)
    assert frame["user"].tolist() == [1, 2, 1]
    assert frame["item"].tolist() == [1193, 661, 914]
    assert frame["timestamp"].tolist() == [978300760, 978302109, 978301968]
    assert frame["rating"].tolist() == [5.0, 3.0, 4.0]


def test_movielens_dat_gzipped_is_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_bytes(gzip.compress(b"7::8::1::100\n"))
    assert read_interactions(path, "movielens_dat")["item"].tolist() == [8]


@pytest.mark.parametrize(("text", "line", "column", "match"), [
    ("1::2::3::4\n1::2::3\n", 2, None, "expected 4 fields separated by '::', found 3"),
    ("1::2::3::4\n\n1::2::3::4::5\n", 3, None, "found 5"),
    ("1::2::3::4\n1::x::3::4\n1::2::3::y\n", 2, "item", "expected an integer, found 'x'"),
    ("1::2::3::4\n5::6::7::8\nu\xe9::2::3::4\n", 3, "user", "found 'u\xe9'"),
    ("1::2::3::4\n1::2::3::4.5\n", 2, "timestamp", "expected an integer"),
    ("1::2::five::4\n", 1, "rating", "expected a number, found 'five'"),
    # the earliest line wins, whichever column or check finds it
    ("1::2::3::4\n1::2::3::x\n1::y::3::4\n", 2, "timestamp", "found 'x'"),
    ("1::x::3::4\n1::2\n", 1, "item", "found 'x'"),
    ("1::2::3::4\n1::2\n1::x::3::4\n", 2, None, "found 2"),
])
def test_movielens_dat_errors_name_first_bad_line(tmp_path: Path, text: str, line: int,
                                                  column: str | None, match: str) -> None:
    path = write(tmp_path / "ratings.dat", text, encoding="latin-1")
    with pytest.raises(DataFormatError, match=match) as info:
        read_interactions(path, "movielens_dat")
    check_error(info, path, line, column)


@pytest.mark.parametrize("fmt", ["movielens_dat", "movielens_tsv", "fmlp_txt", "amazon_json"])
@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_empty_text_file_is_an_error(tmp_path: Path, fmt: str, text: str) -> None:
    path = write(tmp_path / "data.txt", text)
    with pytest.raises(DataFormatError, match="is empty"):
        read_interactions(path, fmt)


def test_movielens_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    frame = read_interactions(path, "movielens_tsv")
    assert_contract(frame)
    assert frame.to_dict("list") == {"user": [196, 186], "item": [242, 302],
                                     "timestamp": [881250949, 891717742], "rating": [3.0, 3.0]}


def test_movielens_tsv_short_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "196\t242\t3\t881250949\n186 302 3 891717742\n")
    with pytest.raises(DataFormatError, match="found 1") as info:
        read_interactions(path, "movielens_tsv")
    check_error(info, path, 2)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 5),
                          st.integers(0, 2**40)), min_size=1, max_size=50))
def test_movielens_dat_round_trip(rows: list[tuple[int, int, int, int]]) -> None:
    text = "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows)
    with tempfile.TemporaryDirectory() as folder:  # hypothesis reuses function-scoped fixtures
        frame = read_interactions(write(Path(folder) / "ratings.dat", text), "movielens_dat")
    assert_contract(frame)
    assert list(zip(frame["user"], frame["item"], frame["rating"], frame["timestamp"],
                    strict=True)) == rows


# -- Amazon ---------------------------------------------------------------------------------------


def review(user: str, asin: object, time_: object, **extra: object) -> str:
    return json.dumps({"reviewerID": user, "asin": asin, "unixReviewTime": time_,
                       "reviewText": "Gr\u00e9at", **extra})


def test_amazon_json_plain_and_gzip(tmp_path: Path) -> None:
    text = "\n".join([review("A2", "0205616461", 1400000000, overall=5.0),
                      review("A1", "B00004TMFE", 1300000000)]) + "\n"
    plain = write(tmp_path / "reviews.json", text)
    zipped = tmp_path / "reviews.json.gz"
    zipped.write_bytes(gzip.compress(text.encode()))
    for path in (plain, zipped):
        frame = read_interactions(path, "amazon_json")
        assert_contract(frame, id_dtype="string")
        assert frame["user"].tolist() == ["A2", "A1"]
        assert frame["item"].tolist() == ["0205616461", "B00004TMFE"]  # leading zero kept
        assert frame["timestamp"].tolist() == [1400000000, 1300000000]
        assert frame["rating"].iloc[0] == 5.0 and frame["rating"].isna().iloc[1]


def test_amazon_json_without_overall_has_na_ratings(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", review("A", "B", 1) + "\n")
    assert read_interactions(path, "amazon_json")["rating"].isna().all()


@pytest.mark.parametrize(("lines", "line", "match"), [
    ([review("A", "B", 1), "", '{"reviewerID": "A", "asin":', review("A", "C", 2)], 3,
     "invalid JSON"),
    ([review("A", "B", 1), "[1, 2]"], 2, "expected a JSON object"),
    ([review("A", "B", 1), json.dumps({"reviewerID": "A", "unixReviewTime": 3})], 2,
     "missing field 'asin'"),
    ([json.dumps({"asin": "B", "unixReviewTime": 3})] * 2, 1, "missing field 'reviewerID'"),
    ([review("A", "B", 1), review("A", "C", None), json.dumps({"reviewerID": "A"})], 2,
     "missing field 'unixReviewTime'"),
    ([review("A", "B", 1), review("A", "C", None)], 2, "missing field 'unixReviewTime'"),
])
def test_amazon_json_errors_name_line(tmp_path: Path, lines: list[str], line: int,
                                      match: str) -> None:
    path = write(tmp_path / "r.json", "\n".join(lines) + "\n")
    with pytest.raises(DataFormatError, match=match) as info:
        read_interactions(path, "amazon_json")
    check_error(info, path, line)


@pytest.mark.parametrize(("bad", "column", "match"), [
    (review("A", "C", "soon"), "unixReviewTime", "expected an integer, found 'soon'"),
    (review("A", "C", 1.5), "unixReviewTime", "expected an integer, found 1.5"),
    (review("A", 42, 2), "asin", "expected a string, found 42"),
    (review("A", "C", 2, overall="5"), "overall", "expected a number, found '5'"),
])
def test_amazon_json_wrong_types_name_line_and_field(tmp_path: Path, bad: str, column: str,
                                                     match: str) -> None:
    path = write(tmp_path / "r.json", review("A", "B", 1, overall=4) + "\n" + bad + "\n")
    with pytest.raises(DataFormatError, match=match) as info:
        read_interactions(path, "amazon_json")
    check_error(info, path, 2, column)


# -- FMLP-Rec text ----------------------------------------------------------------------------


def test_fmlp_txt_expands_sequences(tmp_path: Path) -> None:
    path = write(tmp_path / "Beauty.txt", "1 1 2 3\n2  4 1\n\n10 7 8\n")
    frame = read_interactions(path, "fmlp_txt")
    assert_contract(frame)
    assert frame["user"].tolist() == [1, 1, 1, 2, 2, 10, 10]
    assert frame["item"].tolist() == [1, 2, 3, 4, 1, 7, 8]
    assert frame["timestamp"].isna().all() and frame["rating"].isna().all()


@pytest.mark.parametrize(("text", "line", "column", "match"), [
    ("1 1 2\n2\n3 4\n", 2, None, "a user with no items"),
    ("1 1 2\n2 3 x4 5\n", 2, "item", "found 'x4'"),
    ("1 1 2\n\nu3 3\n4 y\n", 3, "user", "found 'u3'"),
    ("1 1 2\n2 x\n3\n", 2, "item", "found 'x'"),
    ("1 1 2\n2\n3 x\n", 2, None, "a user with no items"),
])
def test_fmlp_txt_errors(tmp_path: Path, text: str, line: int, column: str | None,
                         match: str) -> None:
    path = write(tmp_path / "seq.txt", text)
    with pytest.raises(DataFormatError, match=match) as info:
        read_interactions(path, "fmlp_txt")
    check_error(info, path, line, column)


@pytest.mark.integration
def test_real_beauty_txt() -> None:
    path = shared_file("beauty/Beauty.txt")  # ../shared/datasets, or a skip naming the path
    frame = read_interactions(path, "fmlp_txt")
    assert_contract(frame)
    assert (frame["user"].nunique(), frame["item"].nunique(), len(frame)) == (22_363, 12_101,
                                                                             198_502)
    assert frame["item"].iloc[:5].tolist() == [1, 2, 3, 4, 5]
    assert frame["user"].is_monotonic_increasing


# -- Generic tables ---------------------------------------------------------------------------


def test_csv_with_configured_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "uid,asin,ts,stars,extra\n7,0042,100,4.5,x\n"
                 "3,B01,90,,y\n\n")
    frame = read_interactions(path, "table", user_col="uid", item_col="asin",
                              timestamp_col="ts", rating_col="stars")
    assert_contract(frame, item_dtype="string")  # "0042" is not a canonical integer
    assert frame["user"].tolist() == [7, 3]
    assert frame["item"].tolist() == ["0042", "B01"]
    assert frame["timestamp"].tolist() == [100, 90]
    assert frame["rating"].iloc[0] == 4.5 and frame["rating"].isna().iloc[1]


def test_tsv_and_custom_sep(tmp_path: Path) -> None:
    tsv = write(tmp_path / "log.tsv", "user\titem\n1\t2\n")
    semi = write(tmp_path / "log.csv", "user;item\n1;2\n")
    for path, options in ((tsv, {}), (semi, {"sep": ";"})):
        frame = read_interactions(path, "table", **options)
        assert_contract(frame)
        assert frame[["user", "item"]].values.tolist() == [[1, 2]]
        assert frame["timestamp"].isna().all()


def test_parquet_keeps_id_types_and_converts_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    table = pa.table({
        "u": pa.array([5, 6], pa.int32()),
        "i": pa.array(["10", "11"]),
        "when": pa.array(pd.to_datetime([100, 978307200], unit="s", utc=True)),
    })
    pq.write_table(table, path)
    frame = read_interactions(path, "table", user_col="u", item_col="i", timestamp_col="when")
    assert_contract(frame, item_dtype="string")
    assert frame["timestamp"].tolist() == [100, 978307200]


def test_missing_column_names_column_and_file(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n1,2\n")
    with pytest.raises(DataFormatError, match="no column 'ts'") as info:
        read_interactions(path, "table", timestamp_col="ts")
    check_error(info, path, None, "ts")
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [1]}), parquet)
    with pytest.raises(DataFormatError, match="no column 'item'"):
        read_interactions(parquet, "table")


def test_table_errors_name_line_or_row(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item,ts\n1,2,3\n\n1,,4\n")
    with pytest.raises(DataFormatError, match="missing id") as info:
        read_interactions(path, "table", timestamp_col="ts")
    check_error(info, path, 4, "item")
    path = write(tmp_path / "log.csv", "user,item,ts\n1,2,3\n1,3,later\n,4,5\n")
    with pytest.raises(DataFormatError, match="found 'later'") as info:
        read_interactions(path, "table", timestamp_col="ts")
    check_error(info, path, 3, "ts")
    parquet = tmp_path / "log.parquet"
    pq.write_table(pa.table({"user": [1, None, 3], "item": [1, 2, 3]}), parquet)
    with pytest.raises(DataFormatError, match="row 2: missing id"):
        read_interactions(parquet, "table")


def test_table_encoding_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n1,2\nu\xe9,3\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match="invalid utf-8 byte") as info:
        read_interactions(path, "table")
    check_error(info, path, 3)
    frame = read_interactions(path, "table", encoding="latin-1")
    assert frame["user"].tolist() == ["1", "u\xe9"]


@pytest.mark.parametrize(("name", "text", "match"), [
    ("a.csv", "", "is empty"),
    ("a.csv", "user,item\n", "is empty"),
    ("a.json", "user,item\n", "unsupported suffix '.json'"),
    ("a.csv", "user,item\n1,2\n3,4,5\n", "line 3"),
])
def test_table_file_errors(tmp_path: Path, name: str, text: str, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        read_interactions(write(tmp_path / name, text), "table")


# -- dispatch -------------------------------------------------------------------------------------


def test_registry_and_dispatch_errors(tmp_path: Path) -> None:
    assert set(READERS) == {"movielens_dat", "movielens_tsv", "amazon_json", "fmlp_txt", "table"}
    assert all(reader.__doc__ for reader in READERS.values())
    path = write(tmp_path / "x.txt", "1 2\n")
    with pytest.raises(ConfigError, match="unknown interactions format 'csv'"):
        read_interactions(path, "csv")
    with pytest.raises(ConfigError, match="fmlp_txt"):
        read_interactions(path, "fmlp_txt", user_col="u")
    assert np.array_equal(read_interactions(str(path), "fmlp_txt")["item"], [2])


@pytest.mark.parametrize("fmt, options, message", [
    ("table", {"user_col": "u", "time_col": "ts"},
     "datasets.d.options.time_col: unknown option for format 'table' (did you mean "
     "'timestamp_col'?); its options: ['user_col', 'item_col', 'timestamp_col', 'rating_col', "
     "'sep', 'encoding']"),
    ("table", {"seperator": ";"}, "datasets.d.options.seperator: unknown option for format "
                                  "'table'; its options: "),
    ("fmlp_txt", {"sep": " "},
     "datasets.d.options.sep: unknown option for format 'fmlp_txt'; it takes no options"),
    ("csv", {}, "datasets.d.format: unknown interactions format 'csv'; known formats: "),
])
def test_reader_options_are_checked_by_name_before_reading(fmt, options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_reader_options(fmt, options, "datasets.d")


def test_read_interactions_names_an_unknown_option_and_the_nearest_one(tmp_path: Path) -> None:
    path = write(tmp_path / "x.csv", "u,i,ts\n1,2,3\n")
    with pytest.raises(ConfigError, match=re.escape("options.time_col: unknown option for format "
                                                    "'table' (did you mean 'timestamp_col'?)")):
        read_interactions(path, "table", user_col="u", item_col="i", time_col="ts")
    options = {"user_col": "u", "item_col": "i", "timestamp_col": "ts", "sep": ","}
    check_reader_options("table", options, "datasets.d")
    assert read_interactions(path, "table", **options)["timestamp"].tolist() == [3]


BEYOND_INT64 = "99999999999999999999"  # 2^66 and a bit: fits no int64


def test_csv_ids_beyond_int64_are_read_as_strings(tmp_path):
    path = write(tmp_path / "big.csv", f"user,item\n1,{BEYOND_INT64}\n2,3\n")
    frame = read_interactions(path, "table", user_col="user", item_col="item")
    assert_contract(frame, item_dtype="string")
    assert frame["item"].tolist() == [BEYOND_INT64, "3"]


def test_parquet_uint64_ids_beyond_int64_are_read_as_strings(tmp_path):
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"user": pa.array([1, 2], pa.uint64()),
                             "item": pa.array([2**64 - 1, 3], pa.uint64())}), path)
    frame = read_interactions(path, "table", user_col="user", item_col="item")
    assert frame["item"].tolist() == [str(2**64 - 1), "3"] and frame["user"].dtype == "int64"


@pytest.mark.parametrize("fmt, text, where", [
    ("movielens_dat", f"1::2::5::10\n1::{BEYOND_INT64}::5::11\n", "line 2, column 'item'"),
    ("fmlp_txt", f"1 2 3\n\n{BEYOND_INT64} 4 5\n", "line 3, column 'user'"),
    ("movielens_tsv", f"1\t2\t5\t{BEYOND_INT64}\n", "line 1, column 'timestamp'"),
])
def test_integers_beyond_int64_in_typed_formats_name_file_line_and_column(tmp_path, fmt, text,
                                                                           where):
    path = write(tmp_path / "data.txt", text)
    with pytest.raises(DataFormatError, match=f"data.txt, {where}: integer beyond the int64"):
        read_interactions(path, fmt)


def test_a_csv_that_is_not_utf8_names_the_line_of_the_first_bad_byte(tmp_path):
    path = write(tmp_path / "latin.csv", "user,item\n1,a\n2,café\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match=r"latin.csv, line 3: invalid utf-8 byte"):
        read_interactions(path, "table", user_col="user", item_col="item")


def test_a_directory_is_named_not_read(tmp_path):
    with pytest.raises(DataFormatError, match="is a directory"):
        read_interactions(tmp_path, "fmlp_txt")

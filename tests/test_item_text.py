"""Item-text readers, their alignment to a dataset's item ids, and the demo's generated text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import shared_file

from hybridrec.data.demo import generate_demo, generate_demo_item_text
from hybridrec.data.item_text import (
    ITEM_TEXT_READERS,
    align_item_text,
    item_text_files,
    read_item_text,
)
from hybridrec.data.sources import load_item_text
from hybridrec.errors import ConfigError, DataFormatError, DownloadError

HEADER = "item_id\tsource_id\ttext\n"
GENRES = "unknown|0\nAction|1\nComedy|2\n\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def check_error(info: pytest.ExceptionInfo[DataFormatError], path: Path, line: int | None,
                column: str | None = None) -> None:
    assert info.value.path == str(path) and str(path) in str(info.value)
    assert (info.value.line, info.value.column) == (line, column)


def texts(frame: pd.DataFrame) -> list[str | None]:
    return [None if pd.isna(t) else t for t in frame["text"]]


# -- item_text.tsv -------------------------------------------------------------------------------


def test_item_text_tsv_reads_ids_and_text_with_empty_text_as_missing(tmp_path: Path) -> None:
    path = write(tmp_path / "item_text.tsv", HEADER + "2\tB01\tred nail polish\r\n\n"
                 "1\t0042\t \n3\tB03\t\n10\tB10\tsmall  tent \n")
    frame = read_item_text(path, "item_text_tsv")
    assert list(frame.columns) == ["item", "text"]
    assert str(frame["item"].dtype) == "int64" and str(frame["text"].dtype) == "string"
    assert frame["item"].tolist() == [2, 1, 3, 10]  # file order
    assert texts(frame) == ["red nail polish", None, None, "small  tent"]
    by_source = read_item_text(path, "item_text_tsv", id_column="source_id")
    assert by_source["item"].tolist() == ["B01", "0042", "B03", "B10"]  # leading zero kept


@pytest.mark.parametrize(("body", "line", "column", "match"), [
    ("item\tsource\ttext\n1\tA\tx\n", 1, None, "expected the header"),
    (HEADER + "1\tA\tx\n2\tB\n", 3, None, "expected 3 fields separated by '\\\\t', found 2"),
    (HEADER + "1\tA\tx\n\n2\tB\tx\ty\n", 4, None, "found 4"),
    (HEADER + "1\tA\tx\n\tB\ty\n", 3, "item_id", "missing id"),
    (HEADER + "1\tA\tx\n2\tB\ty\n1\tC\tz\n", 4, "item_id", "'1' repeats the one on line 2"),
    (HEADER + "1\tA\tx\n2\tB\tcaf\xe9\n", 3, None, "invalid utf-8 byte"),
])
def test_item_text_tsv_errors_name_the_first_bad_line(tmp_path: Path, body: str, line: int,
                                                     column: str | None, match: str) -> None:
    path = write(tmp_path / "item_text.tsv", body, encoding="latin-1")
    with pytest.raises(DataFormatError, match=match) as info:
        read_item_text(path, "item_text_tsv")
    check_error(info, path, line, column)


def test_item_text_tsv_header_only_or_empty_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no item rows after the header"):
        read_item_text(write(tmp_path / "a.tsv", HEADER), "item_text_tsv")
    with pytest.raises(DataFormatError, match="is empty"):
        read_item_text(write(tmp_path / "b.tsv", "\n\n"), "item_text_tsv")


# -- MovieLens -----------------------------------------------------------------------------------


def u_item(*rows: str) -> str:
    return "".join(f"{row}\n" for row in rows)


def test_movielens_item_joins_title_and_named_genres(tmp_path: Path) -> None:
    write(tmp_path / "u.genre", GENRES)
    path = write(tmp_path / "u.item", u_item(
        "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|1",
        "2|Am\xe9lie (2001)|01-Jan-2001||http://y|0|1|1",
        "3|unknown||||1|0|0",
        "4||||http://z|0|0|0"), encoding="latin-1")
    frame = read_item_text(path, "movielens_item")
    assert frame["item"].tolist() == [1, 2, 3, 4]
    # the placeholder genre 'unknown' is left out; an item with neither title nor genre has none
    assert texts(frame) == ["Toy Story (1995), Comedy", "Am\xe9lie (2001), Action, Comedy",
                            "unknown", None]
    assert item_text_files(path, "movielens_item", {}) == [path, tmp_path / "u.genre"]


def test_movielens_item_reads_genres_from_the_named_file(tmp_path: Path) -> None:
    genres = write(tmp_path / "genres.txt", "Drama|0\n")
    path = write(tmp_path / "u.item", u_item("5|Heat (1995)|||url|1"))
    assert texts(read_item_text(path, "movielens_item", genres=str(genres))) == [
        "Heat (1995), Drama"]


@pytest.mark.parametrize(("rows", "line", "column", "match"), [
    (("1|A|||u|0|0|1", "2|B|||u|0|1"), 2, None, "expected 8 fields separated by '|'"),
    (("1|A|||u|0|0|1", "x|B|||u|0|1|0"), 2, "id", "expected an integer, found 'x'"),
    (("1|A|||u|0|2|1",), 1, "Action", "expected a genre flag 0 or 1, found '2'"),
    (("1|A|||u|0|0|1", "", "1|B|||u|0|0|1"), 3, "id", "1 repeats the one on line 1"),
])
def test_movielens_item_errors(tmp_path: Path, rows: tuple[str, ...], line: int,
                               column: str | None, match: str) -> None:
    write(tmp_path / "u.genre", GENRES)
    path = write(tmp_path / "u.item", u_item(*rows))
    with pytest.raises(DataFormatError, match=match) as info:
        read_item_text(path, "movielens_item")
    check_error(info, path, line, column)


def test_movielens_item_needs_its_genre_names(tmp_path: Path) -> None:
    path = write(tmp_path / "u.item", u_item("1|A|||u|0"))
    with pytest.raises(DataFormatError, match="u.genre beside u.item") as info:
        read_item_text(path, "movielens_item")
    assert info.value.path == str(tmp_path / "u.genre")
    genres = write(tmp_path / "u.genre", "Action|0\nComedy|2\n")
    with pytest.raises(DataFormatError, match="indices 0, 1, 2") as info:
        read_item_text(path, "movielens_item")
    check_error(info, genres, 2, "index")


def test_movielens_movies(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                 "73::Mis\xe9rables, Les (1995)::Drama|Musical\r\n"
                 "9::Untitled (2015)::(no genres listed)\n", encoding="latin-1")
    frame = read_item_text(path, "movielens_movies")
    assert frame["item"].tolist() == [1, 73, 9]
    assert texts(frame) == ["Toy Story (1995), Animation, Children's, Comedy",
                            "Mis\xe9rables, Les (1995), Drama, Musical", "Untitled (2015)"]


@pytest.mark.parametrize(("text", "line", "column", "match"), [
    ("1::A::Drama\n2::B\n", 2, None, "expected 3 fields separated by '::', found 2"),
    ("1::A::Drama\n\nB::B::Drama\n", 3, "MovieID", "expected an integer, found 'B'"),
    ("1::A::Drama\n1::B::Drama\n", 2, "MovieID", "repeats the one on line 1"),
])
def test_movielens_movies_errors(tmp_path: Path, text: str, line: int, column: str | None,
                                 match: str) -> None:
    path = write(tmp_path / "movies.dat", text)
    with pytest.raises(DataFormatError, match=match) as info:
        read_item_text(path, "movielens_movies")
    check_error(info, path, line, column)


# -- tables --------------------------------------------------------------------------------------


def test_table_csv_tsv_and_parquet(tmp_path: Path) -> None:
    csv = write(tmp_path / "text.csv", 'asin,title,price\nB02,"tent, 2 person",9\n0042,,3\n\n')
    frame = read_item_text(csv, "table", id_col="asin", text_col="title")
    assert frame["item"].tolist() == ["B02", "0042"] and texts(frame) == ["tent, 2 person", None]
    tsv = write(tmp_path / "text.tsv", "item\ttext\n7\tlamp\n")
    assert read_item_text(tsv, "table")["item"].tolist() == [7]
    parquet = tmp_path / "text.parquet"
    pq.write_table(pa.table({"id": pa.array([4, 5], pa.int32()), "t": ["kite", None]}), parquet)
    frame = read_item_text(parquet, "table", id_col="id", text_col="t")
    assert str(frame["item"].dtype) == "int64" and texts(frame) == ["kite", None]


def test_table_errors_name_line_row_and_column(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "item,text\n1,a\n\n1,b\n")
    with pytest.raises(DataFormatError, match="repeats the one on line 2") as info:
        read_item_text(path, "table")
    check_error(info, path, 4, "item")
    path = write(tmp_path / "t.csv", "item,text\n1,a\n2,caf\xe9\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match="invalid utf-8 byte") as info:
        read_item_text(path, "table")
    check_error(info, path, 3)
    assert texts(read_item_text(path, "table", encoding="latin-1")) == ["a", "caf\xe9"]
    with pytest.raises(DataFormatError, match="no column 'title'"):
        read_item_text(path, "table", text_col="title", encoding="latin-1")
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.table({"item": ["a", None], "text": ["x", "y"]}), parquet)
    with pytest.raises(DataFormatError, match="row 2: missing id"):
        read_item_text(parquet, "table")


def test_registry_and_dispatch_errors_name_the_config_key(tmp_path: Path) -> None:
    assert set(ITEM_TEXT_READERS) == {"item_text_tsv", "movielens_item", "movielens_movies",
                                      "table"}
    assert all(reader.__doc__ for reader in ITEM_TEXT_READERS.values())
    path = write(tmp_path / "t.csv", "item,text\n1,a\n")
    with pytest.raises(ConfigError, match="item_text.format: unknown item text format 'xml'"):
        read_item_text(path, "xml")
    with pytest.raises(ConfigError, match=r"item_text.options: format 'table' .*'text_column'"):
        read_item_text(path, "table", text_column="text")
    with pytest.raises(ConfigError, match="id_column"):
        read_item_text(path, "item_text_tsv", id_column="asin")


# -- alignment to item_ids.parquet ----------------------------------------------------------------


def test_alignment_follows_item_ids_and_flags_items_without_text() -> None:
    item_ids = pd.DataFrame({"original_id": [3, 10, 42, 7],
                             "item": np.array([1, 2, 3, 4], np.int32)})
    text = pd.DataFrame({"item": [7, 42, 99, 3, 10],
                         "text": pd.array(["seven", None, "not in data", "three", "ten"],
                                          dtype="string")})
    aligned = align_item_text(item_ids, text.drop(index=4), "t.tsv")
    assert aligned["item"].tolist() == [1, 2, 3, 4]
    assert aligned["original_id"].tolist() == [3, 10, 42, 7]
    assert texts(aligned) == ["three", None, None, "seven"]
    assert aligned["has_text"].tolist() == [True, False, False, True]


def test_alignment_refuses_ids_that_cannot_match() -> None:
    item_ids = pd.DataFrame({"original_id": [1, 2], "item": np.array([1, 2], np.int32)})
    strings = pd.DataFrame({"item": pd.array(["B01"], dtype="string"),
                            "text": pd.array(["x"], dtype="string")})
    with pytest.raises(DataFormatError, match=r"t.tsv: .*integers against strings"):
        align_item_text(item_ids, strings, "t.tsv")
    other = pd.DataFrame({"item": [5, 6], "text": pd.array(["x", "y"], dtype="string")})
    with pytest.raises(DataFormatError, match="no item of the dataset has a row here"):
        align_item_text(item_ids, other, "t.tsv")


def test_load_item_text_verifies_the_checksum(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "item,text\n1,a\n")
    entry = {"format": "table", "checksum": "sha256:" + "0" * 64, "options": {}}
    with pytest.raises(DownloadError, match="has checksum sha256:"):
        load_item_text(entry, None, path)


# -- the demo's text -----------------------------------------------------------------------------


def test_demo_text_is_deterministic_and_covers_most_items() -> None:
    first = generate_demo_item_text(7)
    pd.testing.assert_frame_equal(first, generate_demo_item_text(7))
    assert not first.equals(generate_demo_item_text(8))
    assert first["item"].is_unique and first["item"].between(1, 500).all()
    assert 470 <= len(first) < 500  # about 2% have no text
    assert first["text"].notna().all()
    demo = load_item_text({"format": "demo"}, {"seed": 7, "items": 500}, None)
    pd.testing.assert_frame_equal(demo, first)


def test_demo_text_is_tied_to_the_topics_the_interactions_follow() -> None:
    """Consecutive items of the demo's users share a word far more often than random pairs."""
    words = {item: set(text.split()[1:]) for item, text in
             generate_demo_item_text(7).itertuples(index=False)}
    frame = generate_demo(seed=7)
    same_user = frame["user"].to_numpy()[1:] == frame["user"].to_numpy()[:-1]
    pairs = np.stack([frame["item"].to_numpy()[:-1], frame["item"].to_numpy()[1:]], 1)[same_user]
    rng = np.random.default_rng(0)
    shuffled = np.stack([pairs[:, 0], rng.permutation(pairs[:, 1])], 1)

    def shared(pairs: np.ndarray) -> float:
        hits = [bool(words[a] & words[b]) for a, b in pairs if a in words and b in words]
        return float(np.mean(hits))

    assert shared(pairs) > 4 * shared(shuffled)  # measured: 0.44 against 0.07


# -- real files ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_real_item_text_tsv_files() -> None:
    beauty = read_item_text(shared_file("beauty/item_text.tsv"), "item_text_tsv")
    assert beauty["item"].tolist() == list(range(1, 12_102))
    assert beauty["text"].isna().sum() == 1 and pd.isna(beauty["text"].iloc[10_204])
    assert beauty["text"].iloc[1] == "red shatter crackle nail polish e55"
    asins = read_item_text(shared_file("beauty/item_text.tsv"), "item_text_tsv",
                           id_column="source_id")
    assert asins["item"].iloc[1] == "B004ZT0SSG" and asins["item"].is_unique
    for name, rows in (("sports", 18_357), ("yelp", 20_033)):
        frame = read_item_text(shared_file(f"{name}/item_text.tsv"), "item_text_tsv")
        assert len(frame) == rows and frame["item"].is_unique


@pytest.mark.integration
def test_real_movielens_item_text() -> None:
    ml100k = read_item_text(shared_file("ml-100k/u.item"), "movielens_item")
    assert len(ml100k) == 1682 and ml100k["item"].tolist() == list(range(1, 1683))
    assert ml100k["text"].iloc[0] == "Toy Story (1995), Animation, Children's, Comedy"
    assert ml100k["text"].notna().all()
    ml1m = read_item_text(shared_file("ml-1m/movies.dat"), "movielens_movies")
    assert len(ml1m) == 3883 and ml1m["item"].max() == 3952
    assert ml1m["text"].str.contains("\xe9").sum() > 10  # ISO-8859-1 decoded, not mangled

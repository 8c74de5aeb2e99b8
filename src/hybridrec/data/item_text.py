"""Item text: one reader per upstream format, one output layout, and its alignment to a dataset.

Every reader returns the item-text frame of ``docs/contracts.md``: ``item``, the raw item id as
the interactions file spells it (int64 where every id is a canonical integer, else string), and
``text`` (string, trimmed; ``<NA>`` where the file lists the item with an empty text), one row per
id, in file order. Problems are reported like the interaction readers report them: a
:class:`~hybridrec.errors.DataFormatError` naming the file, the 1-based line (``row`` for
Parquet) and the column, for the earliest bad line.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hybridrec.data.readers import (
    PathLike,
    Reader,
    _id_values,
    _read_lines,
    _read_table_columns,
    _Source,
    _to_id,
    _to_int64,
)
from hybridrec.errors import ConfigError, DataFormatError

log = logging.getLogger(__name__)

ITEM_TEXT_HEADER = ("item_id", "source_id", "text")
# MovieLens genre labels that say nothing about the movie
_NO_GENRE = frozenset({"unknown", "(no genres listed)"})


def read_item_text(path: PathLike, fmt: str, **options: Any) -> pd.DataFrame:
    """Read ``path`` in format ``fmt`` (a key of :data:`ITEM_TEXT_READERS`) as item text."""
    check_item_text_options(fmt, options, "item_text")
    return ITEM_TEXT_READERS[fmt](path, **options)


def check_item_text_options(fmt: str, options: Mapping[str, Any], key: str) -> None:
    """Raise ConfigError naming ``key`` if ``fmt`` is unknown or does not take ``options``."""
    try:
        reader = ITEM_TEXT_READERS[fmt]
    except KeyError:
        known = ", ".join(sorted(ITEM_TEXT_READERS))
        raise ConfigError(f"{key}.format: unknown item text format {fmt!r}; known formats: "
                          f"{known}") from None
    try:
        inspect.signature(reader).bind("path", **options)
    except TypeError as exc:
        raise ConfigError(f"{key}.options: format {fmt!r} got invalid options {sorted(options)}: "
                          f"{exc}") from None


def item_text_files(path: PathLike, fmt: str, options: Mapping[str, Any]) -> list[Path]:
    """Every file the reader of ``fmt`` opens (``u.item`` also reads ``u.genre``)."""
    files = [Path(path)]
    if fmt == "movielens_item":
        files.append(_genre_path(Path(path), options.get("genres")))
    return files


def read_item_text_tsv(path: PathLike, *, id_column: str = "item_id",
                       encoding: str = "utf-8") -> pd.DataFrame:
    """``item_text.tsv`` (Beauty, Sports, Yelp): ``item_id<TAB>source_id<TAB>text``, a header.

    ``id_column`` names the id the interactions use: ``item_id`` (the S3-Rec / FMLP-Rec sequence
    files) or ``source_id`` (the Amazon ASIN or Yelp business id of the raw reviews).
    """
    if id_column not in ITEM_TEXT_HEADER[:2]:
        raise ConfigError(f"item_text.options.id_column: {id_column!r} is not one of "
                          f"{list(ITEM_TEXT_HEADER[:2])}")
    path = Path(path)
    lines, source = _read_lines(path, encoding=encoding, trim="\r")  # the text may be empty
    header = lines[0].as_py()
    if tuple(header.split("\t")) != ITEM_TEXT_HEADER:
        raise source.error(0, f"expected the header {chr(9).join(ITEM_TEXT_HEADER)!r}, "
                              f"found {header!r}")
    if len(lines) == 1:
        raise DataFormatError(path, "no item rows after the header")
    rows, body = lines[1:], _Source(path, source.numbers[1:])
    fields = pc.split_pattern(rows, "\t")
    sizes = pc.list_value_length(fields)
    if body.flag(pc.not_equal(sizes, 3), "expected 3 fields separated by '\\t'", values=sizes):
        fields = pc.if_else(pc.equal(sizes, 3), fields, pa.scalar(None, fields.type))
    ids = pc.list_element(fields, ITEM_TEXT_HEADER.index(id_column))
    return _text_frame(ids, pc.list_element(fields, 2), body, id_column, infer_int=True)


def read_movielens_item(path: PathLike, *, genres: str | None = None,
                        encoding: str = "latin-1") -> pd.DataFrame:
    """MovieLens 100K ``u.item``: ``id|title|release|video release|IMDb URL|genre flags``.

    Text is ``"title, genre, genre"``, the genre names read from ``u.genre`` beside the file (or
    the file ``genres``); the placeholder genre ``unknown`` is left out.
    """
    path = Path(path)
    names = _read_genre_names(_genre_path(path, genres))
    lines, source = _read_lines(path, encoding=encoding)
    expected = 5 + len(names)
    fields = pc.split_pattern(lines, "|")
    sizes = pc.list_value_length(fields)
    if source.flag(pc.not_equal(sizes, expected),
                   f"expected {expected} fields separated by '|' (5 + the {len(names)} genres of "
                   f"u.genre)", values=sizes):
        fields = pc.if_else(pc.equal(sizes, expected), fields, pa.scalar(None, fields.type))
    item = _to_int64(pc.list_element(fields, 0), source, "id")
    flags = np.zeros((len(lines), len(names)), dtype=bool)
    for k, name in enumerate(names):
        flag = pc.list_element(fields, 5 + k)
        source.flag(pc.invert(pc.is_in(flag, pa.array(["0", "1"]))), "expected a genre flag 0 or 1",
                    name, flag)
        flags[:, k] = pc.fill_null(pc.equal(flag, "1"), False).to_numpy(zero_copy_only=False)
    _flag_duplicates(item, source, "id")
    source.raise_first()
    titles = pc.utf8_trim_whitespace(pc.list_element(fields, 1)).to_pylist()
    keep = [name not in _NO_GENRE for name in names]
    texts = [_join_text(title, [n for n, on, k in zip(names, row, keep, strict=True) if on and k])
             for title, row in zip(titles, flags, strict=True)]
    return _frame(item, texts)


def read_movielens_movies(path: PathLike, *, encoding: str = "latin-1") -> pd.DataFrame:
    """MovieLens 1M / 10M ``movies.dat``: ``MovieID::Title::Genres`` (genres ``|``-separated).

    Text is ``"title, genre, genre"``; ``(no genres listed)`` is left out.
    """
    lines, source = _read_lines(Path(path), encoding=encoding)
    fields = pc.split_pattern(lines, "::")
    sizes = pc.list_value_length(fields)
    if source.flag(pc.not_equal(sizes, 3), "expected 3 fields separated by '::'", values=sizes):
        fields = pc.if_else(pc.equal(sizes, 3), fields, pa.scalar(None, fields.type))
    item = _to_int64(pc.list_element(fields, 0), source, "MovieID")
    _flag_duplicates(item, source, "MovieID")
    source.raise_first()
    titles = pc.utf8_trim_whitespace(pc.list_element(fields, 1)).to_pylist()
    genres = pc.list_element(fields, 2).to_pylist()
    texts = [_join_text(title, [g for g in genre.split("|") if g and g not in _NO_GENRE])
             for title, genre in zip(titles, genres, strict=True)]
    return _frame(item, texts)


def read_item_text_table(path: PathLike, *, id_col: str = "item", text_col: str = "text",
                         sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """CSV (``.csv``, ``.tsv``, with a header row) or Parquet with an id and a text column.

    Ids are typed as in the interactions ``table`` format (CSV ids are int64 when every one is a
    canonical integer); an empty text cell means the item has no text.
    """
    path = Path(path)
    table, source = _read_table_columns(path, [id_col, text_col], sep, encoding)
    return _text_frame(table.column(id_col).combine_chunks(),
                       pc.cast(table.column(text_col).combine_chunks(), pa.large_string()),
                       source, id_col, infer_int=path.suffix.lower() != ".parquet")


ITEM_TEXT_READERS: dict[str, Reader] = {
    "item_text_tsv": read_item_text_tsv,
    "movielens_item": read_movielens_item,
    "movielens_movies": read_movielens_movies,
    "table": read_item_text_table,
}


def align_item_text(item_ids: pd.DataFrame, text: pd.DataFrame, source: str) -> pd.DataFrame:
    """The text of every item of a dataset, in the order of its ``item_ids`` table.

    ``item_ids`` is the dataset's ``item_ids.parquet`` (``original_id``, ``item``); ``text`` is a
    reader's frame, whose ids are the raw ``original_id`` values. Returns ``item`` (int32),
    ``original_id``, ``text`` (``<NA>`` where the item has none) and ``has_text``. Text rows of
    items the dataset does not hold (filtered out, or never seen) are dropped and counted. An id
    type that cannot match (integers against strings), or no match at all, is an error naming
    ``source``.
    """
    ours, theirs = item_ids["original_id"], text["item"]
    if pd.api.types.is_integer_dtype(ours) != pd.api.types.is_integer_dtype(theirs):
        raise DataFormatError(source, f"item ids such as {theirs.iloc[0]!r} cannot match the "
                                      f"dataset's item ids such as {ours.iloc[0]!r} (integers "
                                      f"against strings): is the id column the right one?")
    lookup = pd.Series(text["text"].array, index=pd.Index(theirs.array))
    matched = pd.Index(theirs.array).get_indexer(pd.Index(ours.array)) >= 0
    if not matched.any():
        raise DataFormatError(source, f"no item of the dataset has a row here (its ids look like "
                                      f"{ours.iloc[:3].tolist()}, this file's like "
                                      f"{theirs.iloc[:3].tolist()})")
    values = lookup.reindex(pd.Index(ours.array)).array
    frame = pd.DataFrame({
        "item": item_ids["item"].to_numpy(np.int32),
        "original_id": ours.array,
        "text": pd.array(values, dtype="string"),
    })
    frame["has_text"] = frame["text"].notna().to_numpy()
    unmatched = int(len(theirs) - matched.sum())
    if unmatched:
        log.info("%s: %d text rows name items the dataset does not hold (left out)", source,
                 unmatched)
    return frame


# -- helpers ------------------------------------------------------------------------------------


def _genre_path(path: Path, genres: str | None) -> Path:
    return Path(genres) if genres else path.with_name("u.genre")


def _read_genre_names(path: Path) -> list[str]:
    """``u.genre``: ``name|index`` lines, indices 0, 1, 2, ... in order."""
    if not path.exists():
        raise DataFormatError(path, "genre names not found: movielens_item reads them from "
                                    "u.genre beside u.item (the option 'genres' names another "
                                    "file)")
    lines, source = _read_lines(path)
    fields = pc.split_pattern(lines, "|")
    source.flag(pc.not_equal(pc.list_value_length(fields), 2),
                "expected 'name|index'", values=lines)
    source.raise_first()
    index = pc.list_element(fields, 1)
    expected = pa.array([str(k) for k in range(len(lines))], pa.large_string())
    source.flag(pc.not_equal(pc.cast(index, pa.large_string()), expected),
                "expected the genre indices 0, 1, 2, ... in order", "index", index)
    source.raise_first()
    return [str(name) for name in pc.list_element(fields, 0).to_pylist()]


def _text_frame(ids: pa.Array, text: pa.Array, source: _Source, column: str,
                infer_int: bool) -> pd.DataFrame:
    """Typed ids (no blanks, no repeats) and trimmed text (empty -> ``<NA>``)."""
    if not pa.types.is_integer(ids.type):
        ids = pc.utf8_trim_whitespace(pc.cast(ids, pa.large_string()))
        ids = pc.if_else(pc.equal(ids, ""), pa.scalar(None, ids.type), ids)
    item = _to_id(ids, source, column, infer_int)
    _flag_duplicates(ids, source, column)
    source.raise_first()
    texts = pc.utf8_trim_whitespace(text)
    return _frame(item, pc.if_else(pc.equal(texts, ""), pa.scalar(None, texts.type), texts))


def _flag_duplicates(ids: pa.Array, source: _Source, column: str) -> None:
    """Note the first id that repeats an earlier one (nulls are reported elsewhere)."""
    values = pd.Series(ids.to_pandas())
    repeated = (values.duplicated() & values.notna()).to_numpy()
    if repeated.any():
        position = int(repeated.argmax())
        first = int(np.flatnonzero((values == values.iloc[position]).to_numpy())[0])
        source.note(position, f"item id {ids[position].as_py()!r} repeats the one on "
                              f"{source.unit} {source.numbers[first]}", column)


def _join_text(title: str | None, genres: list[str]) -> str | None:
    parts = [part for part in (title or "", *genres) if part]
    return ", ".join(parts) or None


def _frame(item: pa.Array, text: pa.Array | list[str | None]) -> pd.DataFrame:
    return pd.DataFrame({"item": _id_values(item), "text": pd.array(text, dtype="string")})

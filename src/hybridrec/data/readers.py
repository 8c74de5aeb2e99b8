"""Readers for raw interaction files: one function per upstream format, one output layout.

Every reader returns the raw-interactions frame of ``docs/contracts.md`` (``user``, ``item``,
``timestamp`` Int64, ``rating`` Float64; rows in file order). Parsing is vectorised with Arrow
compute kernels. Validation is vectorised too: each check yields a mask, and of all the problems
found the one on the earliest line is raised as a :class:`~hybridrec.errors.DataFormatError`
naming the file, the 1-based line (``row`` for Parquet) and the column. Blank lines are skipped
but still counted.
"""

from __future__ import annotations

import difflib
import gzip
import inspect
import io
import json
import os
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq

from hybridrec.errors import ConfigError, DataFormatError

PathLike = str | os.PathLike[str]
Reader = Callable[..., pd.DataFrame]

_GZIP_MAGIC = b"\x1f\x8b"
_INTEGER = r"^-?\d+$"
_CANONICAL_INTEGER = r"^(0|-?[1-9]\d*)$"
_DECIMAL = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_BEYOND_INT64 = "integer beyond the int64 range"

_AMAZON_SCHEMA = pa.schema([("reviewerID", pa.large_string()), ("asin", pa.large_string()),
                            ("unixReviewTime", pa.int64()), ("overall", pa.float64())])
_AMAZON_REQUIRED = ("reviewerID", "asin", "unixReviewTime")
_AMAZON_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "reviewerID": ((str,), "a string"), "asin": ((str,), "a string"),
    "unixReviewTime": ((int,), "an integer"), "overall": ((int, float), "a number"),
}
_JSON_PARSE = pj.ParseOptions(explicit_schema=_AMAZON_SCHEMA, unexpected_field_behavior="ignore")
_JSON_READ = pj.ReadOptions(block_size=1 << 24)  # a record must fit in one block


@dataclass
class _Source:
    """Where each parsed record came from; collects problems and raises the earliest."""

    path: Path
    numbers: np.ndarray  # 1-based line (or row) number of each record
    unit: str = "line"
    _first: tuple[int, str, str | None] | None = field(default=None, init=False)

    def flag(self, bad: np.ndarray | pa.Array, message: str, column: str | None = None,
             values: pa.Array | None = None) -> bool:
        """Note the first record flagged in ``bad`` (quoting its value when given)."""
        flags = _to_bool(bad)
        if not flags.any():
            return False
        position = int(flags.argmax())
        if values is not None:
            message = f"{message}, found {values[position].as_py()!r}"
        self.note(position, message, column)
        return True

    def note(self, position: int, message: str, column: str | None = None) -> None:
        """Keep the problem if it comes before every problem noted so far (ties: the first)."""
        if self._first is None or position < self._first[0]:
            self._first = (position, message, column)

    def raise_first(self) -> None:
        if self._first is not None:
            raise self.error(*self._first)

    def error(self, position: int, message: str, column: str | None = None) -> DataFormatError:
        """The error for the record at 0-based ``position``, reported by its line/row number."""
        number = int(self.numbers[position])
        if self.unit == "line":
            return DataFormatError(self.path, message, line=number, column=column)
        return DataFormatError(self.path, f"{self.unit} {number}: {message}", column=column)


def read_interactions(path: PathLike, fmt: str, **options: Any) -> pd.DataFrame:
    """Read ``path`` in format ``fmt`` (a key of :data:`READERS`) as raw interactions."""
    check_reader_options(fmt, options, "dataset")
    if Path(path).is_dir():
        raise DataFormatError(path, "is a directory; expected the raw interactions file")
    return READERS[fmt](path, **options)


def check_reader_options(fmt: str, options: Mapping[str, Any], key: str) -> None:
    """Raise ConfigError naming ``key`` (a dataset entry) if ``fmt`` is unknown or does not take
    one of ``options``; an unknown option's error suggests the nearest one it takes."""
    try:
        reader = READERS[fmt]
    except KeyError:
        known = ", ".join(sorted(READERS))
        raise ConfigError(f"{key}.format: unknown interactions format {fmt!r}; known formats: "
                          f"{known}") from None
    taken = list(inspect.signature(reader).parameters)[1:]  # after the path
    for name in options:
        if name not in taken:
            near = difflib.get_close_matches(name, taken, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            known = f"its options: {taken}" if taken else "it takes no options"
            raise ConfigError(f"{key}.options.{name}: unknown option for format {fmt!r}{hint}; "
                              f"{known}")


def read_movielens_dat(path: PathLike) -> pd.DataFrame:
    """MovieLens 1M/10M ``ratings.dat`` (GroupLens): ``UserID::MovieID::Rating::Timestamp``."""
    return _read_delimited_ints(Path(path), "::")


def read_movielens_tsv(path: PathLike) -> pd.DataFrame:
    """MovieLens 100K ``u.data`` (GroupLens): ``user<TAB>item<TAB>rating<TAB>timestamp``."""
    return _read_delimited_ints(Path(path), "\t")


def read_amazon_json(path: PathLike) -> pd.DataFrame:
    """Amazon product reviews 2014 (McAuley et al., UCSD): one JSON object per line, maybe gzipped.

    Uses ``reviewerID`` (user), ``asin`` (item), ``unixReviewTime`` and, where present, ``overall``;
    the parser skips every other field, so review texts are never materialised.
    """
    path = Path(path)
    try:
        table = pj.read_json(io.BytesIO(_read_bytes(path)), read_options=_JSON_READ,
                             parse_options=_JSON_PARSE)
    except pa.ArrowInvalid as exc:
        raise _json_error(path, exc) from None
    if table.num_rows == 0:
        raise DataFormatError(path, "file is empty")
    missing = {name: pc.is_null(table.column(name)) for name in _AMAZON_REQUIRED}
    if any(pc.any(mask).as_py() for mask in missing.values()):
        _, source = _read_lines(path, encoding="utf-8")  # line numbers, on the error path only
        for name, mask in missing.items():
            source.flag(mask, f"missing field {name!r}")
        source.raise_first()
    fields = ("reviewerID", "asin", "unixReviewTime", "overall")
    user, item, timestamp, rating = (table.column(name).combine_chunks() for name in fields)
    return _frame(user, item, timestamp, rating)


def read_fmlp_txt(path: PathLike) -> pd.DataFrame:
    """FMLP-Rec / S3-Rec sequence file (e.g. ``Beauty.txt``): ``user item item ...`` per line.

    Items are in chronological order; the format has no timestamps or ratings.
    """
    lines, source = _read_lines(Path(path))
    tokens = pc.utf8_split_whitespace(lines)
    sizes = pc.list_value_length(tokens).to_numpy()
    source.flag(sizes < 2, "a user with no items")
    flat = pc.list_flatten(tokens)
    starts = np.cumsum(sizes) - sizes  # position of each line's user token in ``flat``

    def note_first(bad: np.ndarray, message: str) -> None:
        position = int(bad.argmax())
        line = int(np.searchsorted(starts, position, side="right")) - 1
        column = "user" if starts[line] == position else "item"
        source.note(line, f"{message}, found {flat[position].as_py()!r}", column)

    bad = _to_bool(pc.invert(pc.match_substring_regex(flat, _INTEGER)))
    if bad.any():
        note_first(bad, "expected an integer id")
    source.raise_first()
    try:
        ids = pc.cast(flat, pa.int64()).to_numpy()
    except pa.ArrowInvalid:
        note_first(_beyond_int64(flat), _BEYOND_INT64)
        source.raise_first()
        raise
    return _frame(pa.array(np.repeat(ids[starts], sizes - 1)), pa.array(np.delete(ids, starts)))


def read_table(path: PathLike, *, user_col: str = "user", item_col: str = "item",
               timestamp_col: str | None = None, rating_col: str | None = None,
               sep: str | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """Generic CSV (``.csv``, ``.tsv``, with a header row, in ``encoding``) or Parquet table.

    Id columns keep their type: Parquet integer columns give int64, other columns strings. CSV has
    no types, so a CSV id column is int64 when every value is a canonical integer within int64 (no
    leading zeros, so ``"0205616461"``-style ASINs stay strings) and strings otherwise; ids beyond
    int64 (in CSV, or uint64 in Parquet) are read as strings. Timestamps must be integer seconds
    (or a Parquet timestamp column); empty ratings read as ``<NA>``.
    """
    path = Path(path)
    columns = [name for name in (user_col, item_col, timestamp_col, rating_col) if name]
    table, source = _read_table_columns(path, columns, sep, encoding)
    infer_int = path.suffix.lower() != ".parquet"

    def col(name: str) -> pa.Array:
        return table.column(name).combine_chunks()

    user = _to_id(col(user_col), source, user_col, infer_int)
    item = _to_id(col(item_col), source, item_col, infer_int)
    timestamp = _to_int64(col(timestamp_col), source, timestamp_col) if timestamp_col else None
    rating = _to_float64(col(rating_col), source, rating_col) if rating_col else None
    source.raise_first()
    return _frame(user, item, timestamp, rating)


READERS: dict[str, Reader] = {
    "movielens_dat": read_movielens_dat,
    "movielens_tsv": read_movielens_tsv,
    "amazon_json": read_amazon_json,
    "fmlp_txt": read_fmlp_txt,
    "table": read_table,
}


# -- text input -------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when they start with the gzip magic number."""
    data = path.read_bytes()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(path, f"corrupt gzip data: {exc}") from None
    return data


def _decode(path: Path, data: bytes, encoding: str) -> str:
    """``data`` as text; an undecodable byte is an error naming its line."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataFormatError(path, f"invalid {encoding} byte: {exc.reason}", line=line) from None
    except LookupError:
        raise DataFormatError(path, f"unknown encoding {encoding!r}") from None


def _read_lines(path: Path, encoding: str = "latin-1",
                trim: str = " \t\r") -> tuple[pa.Array, _Source]:
    """Non-blank lines, trimmed of the characters in ``trim``, with their line numbers.

    ISO-8859-1 (the default) decodes any byte, so id-only formats never fail on stray bytes.
    Formats whose last field may be empty trim only ``"\r"``, so that a trailing tab stays.
    """
    text = _decode(path, _read_bytes(path), encoding)
    lines = pc.utf8_trim(pa.array(text.split("\n"), pa.large_string()), trim)
    keep = pc.not_equal(pc.utf8_trim(lines, " \t\r"), "")
    numbers = np.flatnonzero(_to_bool(keep)) + 1
    if numbers.size == 0:
        raise DataFormatError(path, "file is empty")
    return lines.filter(keep), _Source(path, numbers)


def _read_delimited_ints(path: Path, sep: str) -> pd.DataFrame:
    """``user SEP item SEP rating SEP timestamp`` lines, all four fields numeric."""
    lines, source = _read_lines(path)
    fields = pc.split_pattern(lines, sep)
    sizes = pc.list_value_length(fields)
    if source.flag(pc.not_equal(sizes, 4), f"expected 4 fields separated by {sep!r}",
                   values=sizes):
        fields = pc.if_else(pc.equal(sizes, 4), fields, pa.scalar(None, fields.type))
    user, item, rating, timestamp = (pc.list_element(fields, k) for k in range(4))
    columns = (_to_int64(user, source, "user"), _to_int64(item, source, "item"),
               _to_int64(timestamp, source, "timestamp"), _to_float64(rating, source, "rating"))
    source.raise_first()
    return _frame(*columns)


def _json_error(path: Path, exc: pa.ArrowInvalid) -> DataFormatError:
    """Locate the line Arrow's JSON reader rejected (error path only, hence a Python loop)."""
    lines, source = _read_lines(path, encoding="utf-8")
    for position, line in enumerate(lines.to_pylist()):
        try:
            record = json.loads(line)
        except ValueError as line_exc:
            return source.error(position, f"invalid JSON: {line_exc}")
        if not isinstance(record, dict):
            return source.error(position, "expected a JSON object")
        for name, (types, kind) in _AMAZON_TYPES.items():
            value = record.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, types)):
                return source.error(position, f"expected {kind}, found {value!r}", name)
    return DataFormatError(path, f"invalid JSON lines: {exc}")


# -- tables -------------------------------------------------------------------------------------


def _require_columns(path: Path, present: list[str], columns: list[str]) -> None:
    for column in columns:
        if column not in present:
            raise DataFormatError(path, f"no column {column!r} (columns: {present})", column=column)


def _read_table_columns(path: Path, columns: list[str], sep: str | None,
                        encoding: str) -> tuple[pa.Table, _Source]:
    """``columns`` of a ``.parquet``, ``.csv`` or ``.tsv`` file (CSV columns as strings)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path, columns)
    if suffix in (".csv", ".tsv"):
        return _read_csv(path, columns, sep or ("\t" if suffix == ".tsv" else ","), encoding)
    raise DataFormatError(path, f"unsupported suffix {suffix!r} (use .csv, .tsv or .parquet)")


def _read_parquet(path: Path, columns: list[str]) -> tuple[pa.Table, _Source]:
    _require_columns(path, pq.read_schema(path).names, columns)
    table = pq.read_table(path, columns=columns)
    if table.num_rows == 0:
        raise DataFormatError(path, "file is empty (no rows)")
    return table, _Source(path, np.arange(1, table.num_rows + 1), unit="row")


def _read_csv(path: Path, columns: list[str], sep: str,
              encoding: str = "utf-8") -> tuple[pa.Table, _Source]:
    """Read ``columns`` as strings; blank lines are dropped but keep their line numbers."""
    if path.stat().st_size == 0:
        raise DataFormatError(path, "file is empty")
    text = _decode(path, path.read_bytes(), encoding)  # a bad byte is reported by its line
    options: dict[str, Any] = {"sep": sep, "dtype": "string", "keep_default_na": False,
                               "na_values": [""]}
    try:
        header = pd.read_csv(io.StringIO(text), nrows=0, **options)
        _require_columns(path, list(header.columns), columns)
        # every column is read, so that a row with extra fields is an error, not a shift
        frame = pd.read_csv(io.StringIO(text), skip_blank_lines=False, **options)[columns]
    except pd.errors.ParserError as exc:
        raise DataFormatError(path, f"malformed CSV: {exc}") from None
    except UnicodeDecodeError:
        _read_lines(path, encoding="utf-8")  # raises, naming the line of the first bad byte
        raise
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.all():
        raise DataFormatError(path, "file is empty (no data rows)")
    numbers = np.flatnonzero(~blank) + 2  # line 1 is the header
    return pa.Table.from_pandas(frame[~blank], preserve_index=False), _Source(path, numbers)


# -- typed columns ------------------------------------------------------------------------------
# Each converter notes its problems on the source and then returns a null placeholder: the
# caller raises the earliest problem of all columns before using any result.


def _to_id(values: pa.Array, source: _Source, column: str, infer_int: bool) -> pa.Array:
    if source.flag(pc.is_null(values), "missing id", column):
        return values
    if pa.types.is_integer(values.type):
        if pa.types.is_uint64(values.type) and pc.max(values).as_py() > _INT64_MAX:
            return pc.cast(values, pa.large_string())  # ids are labels: beyond int64, strings
        return pc.cast(values, pa.int64())
    strings = pc.cast(values, pa.large_string())
    if infer_int and pc.all(pc.match_substring_regex(strings, _CANONICAL_INTEGER)).as_py():
        try:
            return pc.cast(strings, pa.int64())
        except pa.ArrowInvalid:  # an integer beyond int64: the column stays strings
            return strings
    return strings


def _to_int64(values: pa.Array, source: _Source, column: str) -> pa.Array:
    """Integers from integer, timestamp (as epoch seconds) or decimal-string columns; no nulls."""
    missing = source.flag(pc.is_null(values), "missing value", column)
    if pa.types.is_integer(values.type):
        return pc.cast(values, pa.int64())
    if pa.types.is_timestamp(values.type) or pa.types.is_date(values.type):
        return pc.cast(pc.cast(values, pa.timestamp("s"), safe=False), pa.int64())
    strings = pc.cast(values, pa.large_string())
    malformed = pc.invert(pc.match_substring_regex(strings, _INTEGER))
    if source.flag(malformed, "expected an integer", column, strings) or missing:
        return pa.nulls(len(values), pa.int64())
    try:
        return pc.cast(strings, pa.int64())
    except pa.ArrowInvalid:
        source.flag(_beyond_int64(strings), _BEYOND_INT64, column, strings)
        return pa.nulls(len(values), pa.int64())


def _beyond_int64(integers: pa.Array) -> np.ndarray:
    """Mask of integer strings outside int64 (a Python loop: called on the error path only)."""
    return np.array([value is not None and not _INT64_MIN <= int(value) <= _INT64_MAX
                     for value in integers.to_pylist()], dtype=bool)


def _to_float64(values: pa.Array, source: _Source, column: str) -> pa.Array:
    """Floats from numeric or decimal-string columns; nulls stay null."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return pc.cast(values, pa.float64())
    strings = pc.cast(values, pa.large_string())
    malformed = pc.invert(pc.match_substring_regex(strings, _DECIMAL))
    if source.flag(malformed, "expected a number", column, strings):
        return pa.nulls(len(values), pa.float64())
    return pc.cast(strings, pa.float64())


def _to_bool(mask: np.ndarray | pa.Array) -> np.ndarray:
    """Boolean numpy mask; Arrow nulls count as False."""
    if isinstance(mask, pa.Array | pa.ChunkedArray):
        mask = pc.fill_null(mask, False).to_numpy(zero_copy_only=False)
    return np.asarray(mask, dtype=bool)


def _frame(user: pa.Array, item: pa.Array, timestamp: pa.Array | None = None,
           rating: pa.Array | None = None) -> pd.DataFrame:
    """Assemble the contract's columns and dtypes; absent timestamp/rating become ``<NA>``."""
    n = len(user)
    return pd.DataFrame({
        "user": _id_values(user),
        "item": _id_values(item),
        "timestamp": pd.array(pa.nulls(n) if timestamp is None else timestamp, dtype="Int64"),
        "rating": pd.array(pa.nulls(n) if rating is None else rating, dtype="Float64"),
    })


def _id_values(values: pa.Array) -> np.ndarray | pd.api.extensions.ExtensionArray:
    if pa.types.is_integer(values.type):
        return values.to_numpy()
    return pd.array(values, dtype="string")

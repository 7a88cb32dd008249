"""One table reader for every app: CSV, TSV, JSON, JSONL and Parquet, with positions on every row.

Every input file the suite reads (training data, KB sources, news files, interaction logs, question
lists) goes through :func:`read_rows` (records one by one) or :func:`read_frame` (a pandas frame of the
same cells); whole text files (Markdown, JSON documents) through :func:`read_text`. All

* pick the format from the suffix (``.csv``, ``.tsv``/``.tab``, ``.txt`` with a ``delimiter``, ``.json``
  (a list of objects), ``.jsonl``/``.ndjson``, ``.parquet``/``.pq``) or from ``format=``;
* decode UTF-8 by default, dropping a byte-order mark, and honour a UTF-16 BOM; ``encoding=`` picks
  another codec, and bytes that do not decode are reported with their line and offset;
* number records from ``row_base`` (header excluded) and keep the 1-based physical line where each
  record starts (``line``; ``None`` for a JSON array or Parquet, which have no lines), so a multi-line
  quoted CSV cell does not shift the lines of later rows;
* check the required ``columns`` once, from the header (or the keys of the JSON objects), naming the
  missing ones and those found;
* raise :class:`~core.errors.InputError` (or the app's subclass, ``error=``) naming file, row, line and
  field: one line a person can act on.

Example:
    >>> for row in read_rows("faq.csv", columns=["question", "answer"]):
    ...     if not row.text("answer"):
    ...         raise row.error("empty answer; write one", field="answer")
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

#: Suffix -> format name.
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".txt": "csv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
# The csv module refuses fields over 128 KiB by default; KB articles can be longer.
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class Row(Mapping[str, Any]):
    """One record of a table with where it came from.

    A read-only mapping of column -> value (CSV cells are strings; JSON and Parquet keep their types).

    Attributes:
        data: The record.
        path: The file.
        row: Record number (header excluded), counted from the reader's ``row_base``.
        line: 1-based physical line where the record starts, or ``None`` where the format has no lines.
        error_type: The :class:`InputError` subclass :meth:`error` builds.
    """

    data: Mapping[str, Any]
    path: Path
    row: int
    line: int | None = None
    error_type: type[InputError] = InputError

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def text(self, field: str, *, strip: bool = True) -> str:
        """The cell as a string: ``""`` for a missing, null or NaN cell; stripped unless ``strip=False``."""
        value = cell_text(self.data.get(field))
        return value.strip() if strip else value

    def error(self, problem: str, field: str | None = None) -> InputError:
        """An error naming this row's file, row, line and ``field`` (raise it)."""
        return self.error_type(self.path, problem, row=self.row, line=self.line, field=field)


def cell_text(value: Any) -> str:
    """A cell as text: ``""`` for ``None`` and NaN, ``str(value)`` otherwise."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value if isinstance(value, str) else str(value)


def label_confidence(value: Any, labels: int | None = None) -> float | None:
    """``value`` as a label confidence, or ``None`` when it is none.

    A confidence is a number in (0, 1]; with ``labels`` (k) at least 1/k, so that the label stays the
    most likely one. Strings are parsed (surrounding spaces allowed); NaN and infinities are refused.
    """
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    lowest_ok = number >= 1 / labels - 1e-9 if labels else number > 0
    return number if lowest_ok and number <= 1 else None  # NaN fails every comparison


def table_format(path: str | Path, format: str | None = None, *, error: type[InputError] = InputError) -> str:
    """The format name of ``path`` (``csv``, ``tsv``, ``json``, ``jsonl``, ``parquet``).

    Raises:
        InputError: (as ``error``) an unknown suffix or format name.
    """
    if format is not None:
        name = FORMATS.get("." + format.lower().lstrip("."), format.lower())
        if name not in set(FORMATS.values()):
            raise error(path, f"unknown table format {format!r}; use one of {sorted(set(FORMATS.values()))}")
        return name
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise error(path, f"unsupported file type {suffix or '(none)'!r}; use {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


def decode_text(
    raw: bytes, path: str | Path, encoding: str | None = None, *, error: type[InputError] = InputError
) -> str:
    """Decode a file's bytes: UTF-8 (BOM dropped) by default, UTF-16 when it starts with its BOM.

    Raises:
        InputError: Bytes that do not decode, naming the line and offset of the first bad byte.
    """
    if encoding is None:
        encoding = "utf-16" if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 4]
        name = "UTF-8" if encoding.replace("-sig", "").lower() in ("utf-8", "utf8") else encoding
        raise error(
            path,
            f"not valid {name}: byte(s) {bad!r} at offset {err.start}; re-save the file as UTF-8 "
            "or name its encoding",
            line=line,
        ) from err
    except LookupError as err:
        raise error(path, f"unknown encoding {encoding!r}") from err


def read_text(path: str | Path, encoding: str | None = None, *, error: type[InputError] = InputError) -> str:
    """A whole text file (Markdown, JSON), decoded like the tables (:func:`decode_text`).

    Raises:
        InputError: (as ``error``) a folder or missing file, or bytes that do not decode.
    """
    path = _open_file(path, error)
    return decode_text(path.read_bytes(), path, encoding, error=error)


def _open_file(path: str | Path, error: type[InputError]) -> Path:
    path = Path(path)
    if path.is_dir():  # as check_path_kind, but raised as the caller's error type
        raise error(path, "is a folder, not a file; give the path of a file")
    if not path.is_file():
        raise error(path, "no such file")
    return path


def _check_columns(
    path: Path,
    found: Sequence[str],
    columns: Sequence[str],
    error: type[InputError],
    *,
    line: int | None = None,
) -> None:
    missing = [c for c in columns if c not in found]
    if missing:
        raise error(
            path,
            f"missing column(s) {missing}; found {list(found)}",
            line=line,
            field=missing[0],
        )


def _delimited_rows(
    text: str,
    path: Path,
    delimiter: str,
    columns: Sequence[str],
    row_base: int,
    error: type[InputError],
    lower_header: bool = False,
    names: Sequence[str] | None = None,
    quoting: bool = True,
    header_out: list[str] | None = None,
) -> Iterator[Row]:
    quote = csv.QUOTE_MINIMAL if quoting else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True, quoting=quote)
    try:
        header = list(names) if names is not None else next(reader, None)
        if header is None:
            raise error(path, "empty file; the first line must name the columns")
        header = [h.strip().lower() if lower_header else h.strip() for h in header]
        _check_columns(path, header, columns, error, line=None if names is not None else 1)
        seen = {h for h in header if h}
        if len(seen) != len([h for h in header if h]):
            duplicated = sorted({h for h in header if h and header.count(h) > 1})
            raise error(
                path,
                f"duplicate column name(s) {duplicated}",
                line=None if names is not None else 1,
                field=duplicated[0],
            )
        if header_out is not None:  # read_frame's columns, also for a file without records
            header_out.extend(h for h in header if h)
        previous_end = reader.line_num
        number = row_base
        for values in reader:
            start = previous_end + 1
            previous_end = reader.line_num
            if not any(v.strip() for v in values):
                continue  # a blank line (or one of empty cells, as spreadsheets export) is no record
            if len(values) > len(header) and any(v.strip() for v in values[len(header) :]):
                named = "the header names" if names is None else "the file's layout has"
                hint = f"; quote cells holding {delimiter!r}" if quoting else ""
                raise error(
                    path,
                    f"{len(values)} fields but {named} {len(header)}{hint}",
                    row=number,
                    line=start,
                )
            data = {h: (values[i] if i < len(values) else "") for i, h in enumerate(header) if h}
            yield Row(data, path, number, start, error)
            number += 1
    except csv.Error as err:
        raise error(
            path, f"malformed {'TSV' if delimiter == chr(9) else 'CSV'}: {err}", line=reader.line_num
        ) from err


def _jsonl_rows(
    text: str, path: Path, columns: Sequence[str], row_base: int, error: type[InputError]
) -> Iterator[Row]:
    number = row_base
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as err:
            raise error(
                path, f"not valid JSON: {err.msg} (column {err.colno})", row=number, line=line_no
            ) from err
        if not isinstance(value, dict):
            raise error(path, f"expected a JSON object, got {type(value).__name__}", row=number, line=line_no)
        # Keys are per object: a missing required key is reported on the first object lacking it.
        missing = [c for c in columns if c not in value]
        if missing:
            raise error(
                path,
                f"missing key(s) {missing}; found {list(value)}",
                row=number,
                line=line_no,
                field=missing[0],
            )
        yield Row(value, path, number, line_no, error)
        number += 1


def _json_rows(
    text: str,
    path: Path,
    columns: Sequence[str],
    row_base: int,
    error: type[InputError],
    records_keys: Sequence[str] = (),
) -> Iterator[Row]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise error(path, f"not valid JSON: {err.msg} (column {err.colno})", line=err.lineno) from err
    if records_keys and isinstance(value, dict):
        keys = [key for key in records_keys if isinstance(value.get(key), list)]
        if not keys:
            named = " or ".join(repr(key) for key in records_keys)
            raise error(path, f"expected a JSON list of objects, or an object with a {named} list")
        value = value[keys[0]]
    elif isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), list):
        value = next(iter(value.values()))  # {"items": [...]} as written by many exporters
    if not isinstance(value, list):
        raise error(path, f"expected a JSON list of objects, got {type(value).__name__}")
    for i, item in enumerate(value):
        number = row_base + i
        if not isinstance(item, dict):
            raise error(path, f"expected a JSON object, got {type(item).__name__}", row=number)
        missing = [c for c in columns if c not in item]
        if missing:
            raise error(path, f"missing key(s) {missing}; found {list(item)}", row=number, field=missing[0])
        yield Row(item, path, number, None, error)


def _parquet_frame(path: Path, error: type[InputError]) -> pd.DataFrame:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for corrupt files
        raise error(path, f"cannot read Parquet: {err}") from err
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def read_rows(
    path: str | Path,
    *,
    columns: Sequence[str] = (),
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    row_base: int = 1,
    names: Sequence[str] | None = None,
    quoting: bool = True,
    error: type[InputError] = InputError,
    lower_header: bool = False,
    records_keys: Sequence[str] = (),
) -> Iterator[Row]:
    """Yield the records of a table file, each with its file, row number and line.

    Args:
        path: The file.
        columns: Columns (JSON keys) every record must have; checked from the header where there is one.
        format: Override the suffix's format (``csv``, ``tsv``, ``json``, ``jsonl``, ``parquet``).
        encoding: Text encoding; default UTF-8 (a BOM is dropped; a UTF-16 BOM switches to UTF-16).
        delimiter: Cell delimiter of a delimited file (default ``,`` for CSV, tab for TSV).
        row_base: Number of the first record (1, or 0 where an app's ids count from 0).
        names: Column names of a delimited file that has no header line (every line is a record;
            MovieLens ml-100k, MIND); ``None``: the first line names the columns.
        quoting: ``False`` reads quote characters as plain text (files that never quote cells, whose
            titles may hold a lone ``"``).
        error: :class:`InputError` subclass to raise (the app's own, for its callers).
        lower_header: Lower-case the header names of a delimited file (``Question`` reads as
            ``question``); ``columns`` are then given in lower case.
        records_keys: Keys under which a JSON object may hold the list of records
            (``{"entries": [...], "version": 2}``); when given, a JSON object without one is refused.
            Without them an object with exactly one key holding a list is read as that list.

    Yields:
        :class:`Row` per record (blank lines, and lines of only empty cells, skipped).

    Raises:
        InputError: (as ``error``) a missing file, unknown type, undecodable bytes, malformed record or
            missing column, naming file, row, line and field.
    """
    path = _open_file(path, error)
    fmt = table_format(path, format, error=error)
    if fmt == "parquet":
        frame = _parquet_frame(path, error)
        _check_columns(path, list(frame.columns), columns, error)
        for i, record in enumerate(frame.to_dict(orient="records")):
            yield Row(record, path, row_base + i, None, error)
        return
    text = decode_text(path.read_bytes(), path, encoding, error=error)
    if fmt in _DELIMITERS or delimiter is not None:
        yield from _delimited_rows(
            text,
            path,
            delimiter or _DELIMITERS.get(fmt, ","),
            columns,
            row_base,
            error,
            lower_header,
            names,
            quoting,
        )
    elif fmt == "jsonl":
        yield from _jsonl_rows(text, path, columns, row_base, error)
    else:
        yield from _json_rows(text, path, columns, row_base, error, records_keys)


def read_frame(
    path: str | Path,
    *,
    columns: Sequence[str] = (),
    format: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    names: Sequence[str] | None = None,
    quoting: bool = True,
    error: type[InputError] = InputError,
) -> pd.DataFrame:
    """Read a table file into a pandas frame (for column-wise work on large files).

    Delimited files give string cells (empty cells ``""``); JSON and Parquet keep their types. The frame
    carries a ``attrs["lines"]`` list (1-based start line of each record, ``None`` where the format has no
    lines) so callers can name the line of a bad row; its index is the record number from 1.

    ``names`` and ``quoting`` are as in :func:`read_rows`.

    Raises:
        InputError: as :func:`read_rows`.
    """
    import pandas as pd

    path = _open_file(path, error)
    fmt = table_format(path, format, error=error)
    if fmt == "parquet":
        frame = _parquet_frame(path, error)
        _check_columns(path, list(frame.columns), columns, error)
        lines: list[int | None] = [None] * len(frame)
    elif fmt in _DELIMITERS or delimiter is not None:
        header: list[str] = []
        text = decode_text(path.read_bytes(), path, encoding, error=error)
        sep = delimiter or _DELIMITERS.get(fmt, ",")
        rows = list(_delimited_rows(text, path, sep, columns, 1, error, False, names, quoting, header))
        frame = pd.DataFrame.from_records([r.data for r in rows], columns=header).astype(str)
        lines = [r.line for r in rows]
    else:
        rows = list(read_rows(path, columns=columns, format=fmt, encoding=encoding, error=error))
        frame = pd.DataFrame.from_records([r.data for r in rows])
        for column in columns:
            if column not in frame.columns:
                frame[column] = pd.Series(dtype=object)
        lines = [r.line for r in rows]
    frame.index = pd.RangeIndex(1, len(frame) + 1)
    frame.attrs["lines"] = lines
    frame.attrs["path"] = str(path)
    return frame

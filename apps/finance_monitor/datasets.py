"""Labelled text for training and evaluating the sentiment and topic classifiers.

Formats (``format="auto"`` picks one from the extension, then from the content):

* CSV with a header holding ``text`` and ``label`` columns (names configurable), Parquet and JSON
  Lines with the same two fields, all read by :func:`core.io.tables.read_rows` (CRLF record ends
  and newlines inside quoted fields, as in twitter-financial-news, are handled; UTF-8 by default,
  a BOM is ignored).
* Financial PhraseBank: one ``sentence@label`` record per line, no header, split on the last
  ``@``. Decoded as UTF-8 when valid, else Latin-1 (the upstream files are Latin-1); the
  upstream mojibake is kept as is so numbers stay comparable with published ones.

Numeric labels need a label map: ``"0=negative,1=positive,2=neutral"``, a preset name
(``"tfns"`` for twitter-financial-news-sentiment, ``"tfn-topic"`` for its 20 topics) or the
path of a classes file (one name per line, line index = id, like ``classes.txt``).

Unlabelled texts (the rows ``aigc finance classify`` labels, a distillation transfer set) are read by
:func:`read_texts`: the same table formats, or a ``.txt`` file of one text per line.

Every problem raises :class:`~apps.finance_monitor.errors.DataError` naming the file, row
(and line) and field.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from apps.finance_monitor.errors import DataError
from apps.finance_monitor.labels import (
    INT_LABEL,
    LABEL_MAP_PRESETS,
    SENTIMENT_LABELS,
    normalise_int_label,
    parse_label_map,
)
from core.errors import check_path_kind
from core.io.tables import FORMATS, decode_text, label_confidence, read_frame, read_rows

logger = logging.getLogger(__name__)

TEXT_COLUMNS: tuple[str, ...] = ("text", "title", "headline", "sentence")
"""Columns tried, in order, for the text of an unlabelled file (``aigc finance classify``, transfer sets)."""

Format = Literal["auto", "csv", "parquet", "jsonl", "phrasebank"]
Dedup = Literal["none", "exact", "text"]

_PHRASEBANK_LINE = re.compile(r".+@\s*(positive|neutral|negative)\s*$")


@dataclass
class LabelledData:
    """Texts with one string label each, plus where they came from.

    Attributes:
        texts: The texts, in file order.
        labels: One label per text, from ``label_names``.
        label_names: The label set in a stable order (label map order, the ``labels`` argument,
            negative/neutral/positive for PhraseBank, else sorted); may include labels with no rows.
        source: The file read.
        format: The format it was read as.
        rows: 1-based record number in the source of each text (for error reports and audits).
        duplicates_removed: Rows dropped as repeats by de-duplication.
        conflicts_removed: Rows dropped because the same text carried different labels.
        confidence: Optional per-row label confidence in (0, 1], such as the share of annotators who
            chose the label; training then aims at that probability (see
            :func:`core.finetune.train_classifier`).
    """

    texts: list[str]
    labels: list[str]
    label_names: list[str]
    source: str
    format: str
    rows: list[int] = field(default_factory=list)
    duplicates_removed: int = 0
    conflicts_removed: int = 0
    confidence: list[float] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> dict[str, int]:
        """Rows per label, in ``label_names`` order (zero counts included)."""
        counts = Counter(self.labels)
        return {name: counts.get(name, 0) for name in self.label_names}

    def label_ids(self) -> list[int]:
        """Each row's label as an index into ``label_names``."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return [index[label] for label in self.labels]

    def subset(self, indices: Sequence[int]) -> LabelledData:
        """The rows at ``indices``, in that order, with the same label set, source and counts."""
        return replace(
            self,
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            rows=[self.rows[i] for i in indices] if self.rows else [],
            confidence=None if self.confidence is None else [self.confidence[i] for i in indices],
        )

    def to_records(self) -> list[dict[str, str]]:
        """``[{"text": ..., "label": ...}, ...]``."""
        return [{"text": t, "label": y} for t, y in zip(self.texts, self.labels, strict=True)]


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path``: by extension, then PhraseBank lines, then CSV.

    Raises:
        DataError: The content fits no supported format.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    with path.open("rb") as fh:
        head = fh.read(64 * 1024).decode("latin-1")
    # split on \n only: str.splitlines also breaks on \x85, a byte of UTF-8 "Å" decoded as Latin-1
    chunks = head.split("\n")
    lines = [line.rstrip("\r") for line in chunks[:-1] or chunks if line.strip()][:20]
    if lines and all(_PHRASEBANK_LINE.fullmatch(line) for line in lines):
        return "phrasebank"
    if lines and lines[0].lstrip().startswith("{"):
        return "jsonl"
    if lines and "," in lines[0]:
        return "csv"
    raise DataError(
        path,
        "cannot tell the format: expected CSV with a header, Parquet, JSON Lines or Financial "
        "PhraseBank 'sentence@label' lines; pass format= explicitly",
    )


def load_labelled(
    path: str | Path,
    *,
    format: Format = "auto",
    text_column: str = "text",
    label_column: str = "label",
    label_map: str | Path | Mapping[Any, str] | None = None,
    labels: Sequence[str] | None = None,
    encoding: str | None = None,
    dedup: Dedup = "none",
    confidence_column: str | None = None,
) -> LabelledData:
    """Read a labelled file for training or evaluation.

    Args:
        path: The file.
        format: ``"auto"``, ``"csv"``, ``"parquet"``, ``"jsonl"`` or ``"phrasebank"``.
        text_column: Column (or JSON key) of the text.
        label_column: Column (or JSON key) of the label.
        label_map: Maps raw (numeric) labels to names (:func:`apps.finance_monitor.labels.parse_label_map`).
        labels: The allowed label names (in order); others are an error. Case differences are
            forgiven (``"Positive"`` becomes ``"positive"``).
        encoding: Text encoding. Default UTF-8, and for PhraseBank UTF-8 else Latin-1.
        dedup: ``"none"``; ``"exact"`` drops repeated (text, label) rows; ``"text"`` keeps one
            row per text and drops every row of a text whose rows disagree on the label. Texts
            are compared with runs of whitespace collapsed.
        confidence_column: Optional column (CSV, Parquet, JSON Lines) of each row's label confidence,
            such as the share of annotators who chose the label: a number from 1/k (k labels) to 1,
            kept in :attr:`LabelledData.confidence` for training towards soft targets.

    Returns:
        The texts and labels.

    Raises:
        FileNotFoundError: No such file.
        DataError: Missing columns, empty texts, unknown or missing labels, undecodable bytes,
            malformed records; the message names file, row and field.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"labelled data file not found: {path}")
    fmt = detect_format(path) if format == "auto" else format
    raw_confidence: dict[int, tuple[int | None, Any]] = {}
    if fmt == "phrasebank":
        if confidence_column is not None:
            raise DataError(
                path, "a PhraseBank file has no columns; a confidence column needs CSV, Parquet or JSONL"
            )
        records = _read_phrasebank(path, encoding)
    elif fmt in ("csv", "parquet", "jsonl"):
        columns = [text_column, label_column, *([confidence_column] if confidence_column else [])]
        records: list[_Record] = []
        for r in read_rows(path, columns=columns, format=fmt, encoding=encoding, error=DataError):
            records.append((r.row, r.line, r[text_column], r[label_column]))
            if confidence_column:
                raw_confidence[r.row] = (r.line, r[confidence_column])
    else:
        raise ValueError(f"{path}: unknown format {fmt!r}; expected csv, parquet, jsonl or phrasebank")
    if not records:
        raise DataError(path, "no labelled rows")
    allowed = list(SENTIMENT_LABELS) if fmt == "phrasebank" and labels is None else labels
    data = _resolve_labels(path, fmt, records, parse_label_map(label_map), allowed, label_column)
    if confidence_column:
        data = replace(data, confidence=_confidences(path, data, raw_confidence, confidence_column))
    if dedup != "none":
        data = deduplicate(data, dedup)
    logger.info(
        "Loaded labelled data",
        extra={"path": str(path), "format": fmt, "rows": len(data), "labels": data.label_counts()},
    )
    return data


def text_key(text: str) -> str:
    """The key under which two texts count as the same (whitespace runs collapsed)."""
    return " ".join(text.split())


def read_texts(path: str | Path, text_column: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read the rows to classify and pick the text column.

    Returns:
        ``(frame, text_column)``; every cell of other columns is kept as read.

    Raises:
        FileNotFoundError: No such file.
        DataError: Unreadable file, missing text column, or an empty text (naming file, row, field).
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"input file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".txt":  # one text per line, no header
        text = decode_text(path.read_bytes(), path, error=DataError)
        rows = text.replace("\r\n", "\n").split("\n")
        numbered = [(n, line) for n, line in enumerate(rows, start=1) if line.strip()]
        frame = pd.DataFrame({"text": [line for _, line in numbered]})
        lines: list[int | None] = [n for n, _ in numbered]
    else:  # an unknown suffix is read as CSV
        frame = read_frame(path, format=None if suffix in FORMATS else "csv", error=DataError)
        lines = frame.attrs["lines"]
    frame = frame.reset_index(drop=True)
    frame.attrs = {}
    if frame.empty:
        raise DataError(path, "no rows to classify (the file holds a header or nothing); nothing was written")
    column = text_column or next((c for c in TEXT_COLUMNS if c in frame.columns), None)
    if column is None or column not in frame.columns:
        wanted = text_column or " / ".join(TEXT_COLUMNS)
        raise DataError(path, f"no text column {wanted!r}; columns are {list(frame.columns)}", field=wanted)
    for i, value in enumerate(frame[column]):
        if not isinstance(value, str) or not value.strip():
            raise DataError(path, "empty text (every row needs one)", row=i + 1, line=lines[i], field=column)
    return frame, column


def deduplicate(data: LabelledData, mode: Dedup = "exact") -> LabelledData:
    """Drop repeated rows (see ``dedup`` in :func:`load_labelled`); the first occurrence is kept.

    Returns:
        A new :class:`LabelledData` with the removal counts added to the old ones.
    """
    if mode not in ("none", "exact", "text"):
        raise ValueError(f"dedup must be 'none', 'exact' or 'text', not {mode!r}")
    if mode == "none":
        return data
    keys = [text_key(t) for t in data.texts]
    conflicting: set[str] = set()
    if mode == "text":
        seen_label: dict[str, str] = {}
        for key, label in zip(keys, data.labels, strict=True):
            if seen_label.setdefault(key, label) != label:
                conflicting.add(key)
    keep: list[int] = []
    seen: set[Any] = set()
    conflicts = duplicates = 0
    for i, (key, label) in enumerate(zip(keys, data.labels, strict=True)):
        if key in conflicting:
            conflicts += 1
            continue
        ident = (key, label) if mode == "exact" else key
        if ident in seen:
            duplicates += 1
            continue
        seen.add(ident)
        keep.append(i)
    if duplicates or conflicts:
        logger.info(
            "Removed duplicate rows",
            extra={"source": data.source, "duplicates": duplicates, "conflicting_rows": conflicts},
        )
    return replace(
        data.subset(keep),
        duplicates_removed=data.duplicates_removed + duplicates,
        conflicts_removed=data.conflicts_removed + conflicts,
    )


# --- records: (row, line, text, raw_label) -----------------------------------------

_Record = tuple[int, int | None, str, Any]


def _read_phrasebank(path: Path, encoding: str | None) -> list[_Record]:
    raw = path.read_bytes()
    if encoding is None:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # the upstream files; Latin-1 decodes any byte
    else:
        text = decode_text(raw, path, encoding, error=DataError)
    records: list[_Record] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        row = len(records) + 1
        if not sep:
            problem = "no '@' separating sentence and label ('sentence@label')"
            raise DataError(path, problem, row=row, line=lineno)
        records.append((row, lineno, sentence, label))
    return records


# --- validation ----------------------------------------------------------------------------------


def _resolve_labels(
    path: Path,
    fmt: str,
    records: list[_Record],
    label_map: dict[str, str] | None,
    allowed: Sequence[str] | None,
    label_column: str,
) -> LabelledData:
    field_name = "label" if fmt == "phrasebank" else label_column
    text_field = "sentence" if fmt == "phrasebank" else None
    canonical = {name.lower(): name for name in allowed} if allowed is not None else None
    texts: list[str] = []
    labels: list[str] = []
    rows: list[int] = []
    for row, line, text, raw in records:
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, "empty text", row=row, line=line, field=text_field or "text")
        if raw is None or (isinstance(raw, float) and raw != raw) or not str(raw).strip():
            raise DataError(path, "missing label", row=row, line=line, field=field_name)
        label = str(raw).strip()
        if label_map is not None:
            key = normalise_int_label(label)
            if key not in label_map:
                raise DataError(
                    path, f"unknown label {label!r}; the label map knows {sorted(label_map)}",
                    row=row, line=line, field=field_name,
                )  # fmt: skip
            label = label_map[key]
        if canonical is not None:
            if label.lower() not in canonical:
                raise DataError(
                    path, f"unknown label {label!r}; expected one of {list(allowed or [])}",
                    row=row, line=line, field=field_name,
                )  # fmt: skip
            label = canonical[label.lower()]
        texts.append(text)
        labels.append(label)
        rows.append(row)
    if label_map is None and allowed is None and all(INT_LABEL.fullmatch(y) for y in labels):
        found = sorted(set(labels), key=lambda y: int(float(y)))[:10]
        raise DataError(
            path,
            f"labels are numeric ({', '.join(found)}); pass a label map such as "
            f"'0=negative,1=positive,2=neutral', a preset {sorted(LABEL_MAP_PRESETS)} or a classes file",
            field=field_name,
        )
    if label_map is not None:
        names = list(dict.fromkeys(label_map[k] for k in sorted(label_map, key=_map_order)))
    elif allowed is not None:
        names = list(allowed)
    else:
        names = sorted(set(labels))
    return LabelledData(texts, labels, names, str(path), fmt, rows)


def _confidences(
    path: Path, data: LabelledData, raw: Mapping[int, tuple[int | None, Any]], column: str
) -> list[float]:
    """Each row's label confidence, checked: a number from 1/k (k labels) to 1."""
    values: list[float] = []
    for row in data.rows:
        line, value = raw[row]
        number = label_confidence(value, len(data.label_names))
        if number is None:
            raise DataError(
                path,
                f"confidence {value!r} is not a number from 1/{len(data.label_names)} to 1 "
                f"(the share of annotators who chose the label)",
                row=row, line=line, field=column,
            )  # fmt: skip
        values.append(number)
    return values


def _map_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if INT_LABEL.fullmatch(key) else (1, key)

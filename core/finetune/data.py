"""Training data for fine-tuning: read CSV / JSONL / DataFrames / tuples with clear errors, and split.

Every reader names the source, the row (1-based, header not counted) and the column of the first bad
cell, so a mistake in a 10,000-row file is found at once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, check_path_kind
from core.io.tables import cell_text, label_confidence, read_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with one label column per classifier head (``None`` where a row is unlabelled for a head)."""

    texts: list[str]
    labels: dict[str, list[str | None]]
    source: str
    #: Per row, how sure its label is (``1/k`` .. 1, e.g. the share of annotators who chose it); ``None``
    #: when the data has no such column (every label certain).
    confidence: list[float] | None = None

    def label_set(self, head: str) -> list[str]:
        """Sorted distinct labels of ``head``."""
        return sorted({label for label in self.labels[head] if label is not None})


def read_columns(data: Any, columns: Sequence[str], what: str = "data") -> tuple[list[list[str]], str]:
    """Read ``columns`` from a file path, a pandas DataFrame, or a sequence of tuples.

    Args:
        data: ``.csv``/``.tsv``/``.jsonl``/``.json`` path, a DataFrame, or tuples/lists with one value
            per column, in ``columns`` order.
        columns: Column (or JSON key) names to read.
        what: What the data is, for error messages.

    Returns:
        ``(rows, source)``: each row the string values of ``columns`` ("" for missing cells), and a
        description of the source for messages.

    Raises:
        FileNotFoundError: if a path does not exist.
        ValueError: on an unknown file type, unparsable file, missing column or malformed tuple.
    """
    import pandas as pd

    if isinstance(data, (str, Path)):
        path = check_path_kind(data, "file")
        if not path.is_file():
            raise FileNotFoundError(f"{what} file '{path}' does not exist.")
        # Keys may differ per JSON object (a multi-head row may lack a head): check their union.
        records = list(read_rows(path))
        found = list(dict.fromkeys(k for row in records for k in row))
        missing = [c for c in columns if records and c not in found]
        if missing:
            raise InputError(path, f"missing column(s) {missing}; found {found}", field=missing[0])
        return [[row.text(c, strip=False) for c in columns] for row in records], str(path)
    source = "DataFrame" if isinstance(data, pd.DataFrame) else f"{what} list"
    if isinstance(data, pd.DataFrame):
        missing = [c for c in columns if c not in data.columns]
        if missing:
            raise ValueError(
                f"{source}: missing column(s) {missing}; found {[str(c) for c in data.columns]}."
            )
        values = data[list(columns)].itertuples(index=False)
        return [[cell_text(v) for v in row] for row in values], source
    if isinstance(data, (str, bytes)) or not isinstance(data, Sequence):
        raise ValueError(
            f"{what} must be a file path, a pandas DataFrame or a list of tuples, got {type(data).__name__}."
        )
    rows = []
    for i, item in enumerate(data, start=1):
        if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != len(columns):
            raise ValueError(
                f"{source}, item {i}: expected a tuple of {len(columns)} values {tuple(columns)}, "
                f"got {item!r}."
            )
        rows.append([cell_text(v) for v in item])
    return rows, source


def read_labelled_texts(
    data: Any,
    text_column: str = "text",
    label_columns: Sequence[str] = ("label",),
    confidence_column: str | None = None,
    allow_unlabelled: bool = False,
) -> LabelledTexts:
    """Read texts and labels for a classifier.

    With one label column every row needs a label. With several (one per head), a row may leave some
    empty (it then trains only the heads it has labels for) but not all.

    Args:
        data: See :func:`read_columns`.
        text_column: Column of the texts.
        label_columns: One column per head.
        confidence_column: Optional column of each row's label confidence, a number in (0, 1] such as
            the share of annotators who chose the label; training then aims at that probability for
            the label instead of 1 (see :class:`~core.finetune.classifier.ClassifierTrainConfig`).
        allow_unlabelled: Accept rows without any label (distillation's transfer rows, which a
            teacher's probabilities alone train; the caller checks that each has them).

    Raises:
        ValueError: naming source, row and column for an empty text or label, a confidence that is no
            number in (0, 1], and for a head with fewer than two distinct labels.
    """
    label_columns = list(label_columns)
    if not label_columns or len(set(label_columns)) != len(label_columns) or text_column in label_columns:
        raise ValueError(
            f"label columns {label_columns} must be distinct, non-empty and differ from '{text_column}'."
        )
    if confidence_column is not None and confidence_column in (text_column, *label_columns):
        raise ValueError(
            f"confidence column '{confidence_column}' must differ from the text and label columns."
        )
    extra = [confidence_column] if confidence_column is not None else []
    rows, source = read_columns(data, [text_column, *label_columns, *extra], what="training data")
    if not rows:
        raise ValueError(f"{source}: no rows to train on.")
    confidence = (
        [_confidence(row[-1], source, i, str(confidence_column)) for i, row in enumerate(rows, 1)]
        if extra
        else None
    )
    rows = [row[: 1 + len(label_columns)] for row in rows]
    texts: list[str] = []
    labels: dict[str, list[str | None]] = {c: [] for c in label_columns}
    for i, (text, *values) in enumerate(rows, start=1):
        if not text.strip():
            raise ValueError(f"{source}, row {i}: empty text in column '{text_column}'.")
        values = [v.strip() or None for v in values]
        if len(values) == 1 and values[0] is None and not allow_unlabelled:
            raise ValueError(f"{source}, row {i}: empty label in column '{label_columns[0]}'.")
        if all(v is None for v in values) and not allow_unlabelled:
            raise ValueError(f"{source}, row {i}: no label in any of the columns {label_columns}.")
        texts.append(text)
        for column, value in zip(label_columns, values, strict=True):
            labels[column].append(value)
    result = LabelledTexts(texts, labels, source, confidence)
    for column in label_columns:
        if len(result.label_set(column)) < 2:
            raise ValueError(
                f"{source}: column '{column}' has {len(result.label_set(column))} distinct label(s) "
                f"{result.label_set(column)}; a classifier needs at least two."
            )
    return result


def _confidence(value: str, source: str, row: int, column: str) -> float:
    number = label_confidence(value)
    if number is None:
        raise ValueError(
            f"{source}, row {row}: confidence {value!r} in column '{column}' is not a number in (0, 1]."
        )
    return number


def read_pairs(
    data: Any, prompt_column: str = "prompt", response_column: str = "response"
) -> list[tuple[str, str]]:
    """Read (prompt, response) pairs for supervised fine-tuning of a causal LM.

    Raises:
        ValueError: naming source and row for an empty prompt or response, or when there are no rows.
    """
    rows, source = read_columns(data, [prompt_column, response_column], what="training pairs")
    if not rows:
        raise ValueError(f"{source}: no (prompt, response) pairs to train on.")
    for i, (prompt, response) in enumerate(rows, start=1):
        for column, value in ((prompt_column, prompt), (response_column, response)):
            if not value.strip():
                raise ValueError(f"{source}, row {i}: empty {column} in column '{column}'.")
    return [(prompt, response) for prompt, response in rows]


def split_indices(
    n: int, val_fraction: float, seed: int, strata: Sequence[Any] | None = None
) -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into sorted train and validation indices.

    Args:
        n: Number of examples.
        val_fraction: Share for validation (0 gives no validation split).
        seed: Seed of the shuffle.
        strata: Optional group of each example (e.g. its label): each group is split in proportion,
            with at least one validation example from groups of two or more, and every group keeps
            at least one training example.

    Returns:
        ``(train, val)``.
    """
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    rng = np.random.default_rng(seed)
    groups: dict[Any, list[int]] = defaultdict(list)
    for i in range(n):
        groups[strata[i] if strata is not None else 0].append(i)
    val: list[int] = []
    for key in sorted(groups, key=str):
        members = [groups[key][j] for j in rng.permutation(len(groups[key]))]
        if len(members) < 2:
            continue
        k = min(len(members) - 1, max(1, round(len(members) * val_fraction)))
        val += members[:k]
    chosen = set(val)
    return [i for i in range(n) if i not in chosen], sorted(val)


def require_validation(val: Sequence[int], n: int, val_fraction: float, source: str) -> None:
    """Refuse a run that asked for a validation split (``val_fraction > 0``) but got none.

    Training without validation picks no best epoch and reports no metric, so a file too small to hold
    one out (three rows of three labels) is an input error, not a silent exit 0.

    Raises:
        ValueError: Naming the data and what to do.
    """
    if val_fraction > 0 and not val:
        raise ValueError(
            f"{source}: {n} example(s) leave nothing for the validation split (val_fraction={val_fraction}; "
            "a label needs at least 2 examples to be held out): add examples, or set val_fraction=0 "
            "to train without validation"
        )

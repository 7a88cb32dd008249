"""A fair sample of real questions for the team to label with the entries that answer them.

Questions agents rated up, or handed off, were chosen by the retriever being judged (the first are
questions it already got right, the second questions it got wrong), so neither is a fair judge of a
new encoder (``docs/benchmarks/support.md``, "Why the conversation store does not feed the judge").
A seeded uniform sample of every distinct question asked on a KB is: :func:`sample_questions` draws
it and :func:`write_question_sample` writes it as an evaluation CSV with an empty ``gold_ids``
column. The team fills in the entry ids (``;``-separated) and leaves a question it cannot place
empty; the file then judges ``aigc support index --adapt --judge-questions FILE`` (unlabelled rows
skipped) and, with the empty rows deleted, feeds ``aigc support eval``.

The ``retrieved`` column lists what the bot found, best first, to save looking ids up; labelling from
it alone would carry the bot's mistakes into the judge, so the KB page's search is the check.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from apps.customer_service.training_data import normalize_question
from core.atomic import write_bytes_atomic
from core.io.spreadsheet import spreadsheet_csv

logger = logging.getLogger(__name__)

SAMPLE_COLUMNS: tuple[str, ...] = ("query", "gold_ids", "retrieved", "route", "asked_at")
"""The CSV's columns: ``query`` and ``gold_ids`` are the evaluation format (:mod:`.eval_queries`)."""


def sample_questions(asked: Sequence[dict[str, Any]], size: int, seed: int = 0) -> list[dict[str, Any]]:
    """A seeded uniform sample of ``size`` distinct questions (all of them when fewer), oldest first.

    Args:
        asked: :meth:`~apps.customer_service.storage.SupportStore.asked_questions` rows.
        size: Questions wanted (>= 1).
        seed: Seed of the draw (the same store and seed give the same sample).

    Raises:
        ValueError: ``size`` < 1.
    """
    if size < 1:
        raise ValueError(f"the sample size must be >= 1, got {size}")
    distinct: dict[str, dict[str, Any]] = {}  # by normalised text; the latest asking wins
    for row in asked:
        if row["question"].strip():
            distinct[normalize_question(row["question"])] = row
    rows = list(distinct.values())
    chosen = sorted(random.Random(seed).sample(range(len(rows)), min(size, len(rows))))
    counts = {"asked": len(asked), "distinct": len(rows), "sampled": len(chosen)}
    logger.info("Sampled questions", extra=counts)
    return sorted((rows[i] for i in chosen), key=lambda r: r["asked_at"])


def question_sample_csv(rows: Sequence[dict[str, Any]]) -> str:
    """``rows`` as the labelling CSV text: :data:`SAMPLE_COLUMNS`, ``gold_ids`` empty, no cell that
    a spreadsheet would run as a formula (:mod:`core.io.spreadsheet`)."""
    frame = pd.DataFrame(
        [
            {
                "query": r["question"],
                "gold_ids": "",
                "retrieved": ";".join(r["retrieved"]),
                "route": r["route"] or "",
                "asked_at": _iso(r["asked_at"]),
            }
            for r in rows
        ],
        columns=list(SAMPLE_COLUMNS),
    )
    return spreadsheet_csv(frame)


def write_question_sample(rows: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Write :func:`question_sample_csv` of ``rows`` to ``out``, atomically.

    Raises:
        ValueError: ``out`` is not a ``.csv`` file.
    """
    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise ValueError(f"{out}: the question sample is a CSV file (.csv)")
    write_bytes_atomic(out, question_sample_csv(rows).encode("utf-8"))
    return out


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


__all__ = ["SAMPLE_COLUMNS", "question_sample_csv", "sample_questions", "write_question_sample"]

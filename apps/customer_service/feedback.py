"""Agents' corrections → FAQ rows ready to index.

Every thumbs-down answer with a corrected answer becomes one FAQ row: the customer's question, the
agent's answer, id ``feedback-{message id}`` (stable, so re-exporting and re-indexing updates rows
in place), category = the predicted intent (or ``feedback``). The file is an FAQ source like any
other::

    aigc support export-feedback --out corrections.csv
    aigc support index faq.csv policies/ corrections.csv --kb-dir kb

The export is written to a temporary file and renamed, so a failed export leaves the old file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import datetime
from pathlib import Path

from apps.customer_service.storage import Correction, SupportStore
from core.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

FAQ_COLUMNS = ("id", "question", "answer", "title", "url", "category")
FORMATS = (".csv", ".jsonl", ".json")


def correction_rows(corrections: list[Correction]) -> list[dict[str, str]]:
    """FAQ rows (``id, question, answer, title, url, category``); a later correction of the same
    question text replaces an earlier one."""
    rows: dict[str, dict[str, str]] = {}
    for c in corrections:
        key = " ".join(c.question.lower().split())
        rows[key] = {
            "id": f"feedback-{c.message_id}",
            "question": c.question.strip(),
            "answer": c.answer.strip(),
            "title": c.question.strip()[:120],
            "url": "",
            "category": c.intent or "feedback",
        }
    return list(rows.values())


def export_feedback(store: SupportStore, out: str | Path, since: datetime | None = None) -> int:
    """Write corrected answers as an FAQ file (CSV, JSON Lines or JSON by extension).

    Args:
        store: The conversation store.
        out: Output file (``.csv``, ``.jsonl`` or ``.json``).
        since: Only corrections made after this time.

    Returns:
        The number of rows written (0 writes a file with only the header / an empty list).

    Raises:
        ValueError: Unsupported extension.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{out}: export format must be one of {', '.join(FORMATS)}")
    rows = correction_rows(store.corrections(since))
    if suffix == ".csv":
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=FAQ_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    elif suffix == ".jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        text = json.dumps(rows, ensure_ascii=False, indent=2)
    write_bytes_atomic(out, text.encode("utf-8"))
    logger.info("Exported corrections", extra={"path": str(out), "rows": len(rows)})
    return len(rows)


__all__ = ["FAQ_COLUMNS", "correction_rows", "export_feedback"]

"""Evaluation queries: a CSV with a header holding ``query`` and ``gold_ids`` (the relevant KB ids,
separated by ``;``), read by the retrieval and answer evaluations, the answer gate's calibration
and the adapter's judge file (``index --adapt --judge-questions``). Nothing here needs the
knowledge base itself, so the KB's own modules can read such a file too.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from apps.customer_service.errors import SourceError
from core.errors import check_path_kind
from core.io.tables import read_rows


@dataclass(frozen=True)
class EvalQuery:
    """One evaluation query and its relevant KB ids."""

    query: str
    gold_ids: tuple[str, ...]
    row: int


def read_queries(
    path: str | Path, kb: Container[str] | None = None, skip_unlabelled: bool = False
) -> list[EvalQuery]:
    """Read an evaluation CSV (``query,gold_ids``).

    Args:
        path: The CSV file.
        kb: When given (a knowledge base, or any container of entry ids), every gold id must be in it.
        skip_unlabelled: Leave out rows with empty ``gold_ids`` (a labelling sample's questions nobody
            could place, :mod:`apps.customer_service.question_sample`) instead of refusing them.

    Returns:
        The queries in file order.

    Raises:
        FileNotFoundError: The file does not exist.
        SourceError: Bad encoding, malformed CSV, missing column, empty query or gold ids, or a
            gold id the knowledge base does not hold — naming the row and field.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"queries file {path} does not exist")
    queries = []
    for record in read_rows(path, columns=("query", "gold_ids"), format="csv", row_base=0, error=SourceError):
        query = record.text("query")
        gold = tuple(g.strip() for g in record.text("gold_ids").split(";") if g.strip())
        if not query:
            raise record.error("is empty", field="query")
        if not gold:
            if skip_unlabelled:
                continue
            raise record.error("is empty", field="gold_ids")
        unknown = [g for g in gold if kb is not None and g not in kb]
        if unknown:
            raise record.error(f"id(s) {unknown} are not in the knowledge base", field="gold_ids")
        queries.append(EvalQuery(query, gold, record.row))
    if not queries:
        raise SourceError(path, "holds no labelled queries" if skip_unlabelled else "holds no queries")
    return queries


__all__ = ["EvalQuery", "read_queries"]

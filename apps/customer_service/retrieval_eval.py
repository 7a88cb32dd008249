"""Retrieval evaluation: recall@k, hit rate@k and MRR@10 of BM25, dense and hybrid retrieval.

Queries come from a CSV with a header holding ``query`` and ``gold_ids``; ``gold_ids`` lists the
relevant KB ids separated by ``;``. Every gold id must exist in the knowledge base (a typo or the
wrong KB would otherwise silently score zero).

Metrics per query, averaged over queries (``R`` = gold ids, ``top_k`` = first ``k`` hits):

* ``recall@k`` = ``|R ∩ top_k| / |R|``;
* ``hit@k`` = 1 if any gold id is in ``top_k`` (equals recall@k when each query has one gold id);
* ``mrr@10`` = ``1 / rank`` of the first gold id within the top 10, else 0;
* ``ndcg@10`` with binary relevance.

The arithmetic is :mod:`core.metrics`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from apps.customer_service.config import MODES, Mode, RetrievalConfig
from apps.customer_service.errors import SourceError
from apps.customer_service.eval_queries import EvalQuery, read_queries
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from core.embeddings import Embedder
from core.errors import check_path_kind
from core.io.tables import read_rows
from core.metrics import hit_rate_at_k, mrr_at_k, ndcg_at_k, recall_at_k

logger = logging.getLogger(__name__)

K_VALUES: tuple[int, ...] = (1, 3, 5, 10)
MRR_K = 10


def read_questions(path: str | Path, column: str = "question") -> list[str]:
    """The questions of a CSV file (one per row in ``column``; other columns are ignored).

    Raises:
        FileNotFoundError: The file does not exist.
        SourceError: Bad encoding, malformed CSV, a missing column, an empty question or no
            questions at all — naming the row and field.
    """
    path = check_path_kind(path, "file")
    if not path.is_file():
        raise FileNotFoundError(f"questions file {path} does not exist")
    questions = []
    for record in read_rows(path, columns=(column,), format="csv", row_base=0, error=SourceError):
        question = record.text(column)
        if not question:
            raise record.error("is empty", field=column)
        questions.append(question)
    if not questions:
        raise SourceError(path, "holds no questions")
    return questions


def score_rankings(rankings: Sequence[Sequence[str]], queries: Sequence[EvalQuery]) -> dict[str, float]:
    """Query-averaged ``recall@k`` and ``hit@k`` (k in :data:`K_VALUES`), ``mrr@10`` and ``ndcg@10``."""
    gold = [set(q.gold_ids) for q in queries]
    metrics = {f"recall@{k}": recall_at_k(rankings, gold, k) for k in K_VALUES}
    metrics |= {f"hit@{k}": hit_rate_at_k(rankings, gold, k) for k in K_VALUES}
    metrics[f"mrr@{MRR_K}"] = mrr_at_k(rankings, gold, MRR_K)
    metrics[f"ndcg@{MRR_K}"] = ndcg_at_k(rankings, gold, MRR_K)
    return {name: round(value, 4) for name, value in metrics.items()}


def evaluate_retrieval(
    kb: KnowledgeBase | str | Path,
    queries_csv: str | Path,
    config: RetrievalConfig | None = None,
    modes: Sequence[Mode] = ("bm25", "dense", "hybrid"),
    embedder: Embedder | None = None,
    show_progress_bar: bool = False,
) -> dict[str, dict[str, float]]:
    """Score each retrieval mode on labelled queries.

    Args:
        kb: A knowledge base or its directory.
        queries_csv: CSV with ``query`` and ``;``-separated ``gold_ids``.
        config: Retrieval settings (fusion, field combination …); ``mode`` is set per entry of ``modes``.
        modes: Which retrievers to score.
        embedder: Query encoder (default: the KB's model).
        show_progress_bar: Show tqdm bars.

    Returns:
        ``{mode: {"recall@1", "recall@3", "recall@5", "recall@10", "hit@1" …, "mrr@10",
        "ndcg@10", "queries", "ms_per_query"}}``.

    Raises:
        FileNotFoundError: Missing KB or queries file.
        KBFormatError: Corrupt KB.
        SourceError: Bad queries file (see :func:`read_queries`).
        ValueError: Unknown mode.
    """
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown retrieval mode(s) {bad}; choose from {MODES}")
    kb = kb if isinstance(kb, KnowledgeBase) else KnowledgeBase.load(kb)
    queries = read_queries(queries_csv, kb)
    retriever = Retriever(kb, config, embedder)
    texts = [q.query for q in queries]
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        retriever.config = replace(retriever.config, mode=mode)
        start = time.perf_counter()
        hits = retriever.search_many(texts, k=max(K_VALUES), show_progress_bar=show_progress_bar)
        elapsed = time.perf_counter() - start
        metrics: dict[str, float] = score_rankings([[h.id for h in row] for row in hits], queries)
        metrics["queries"] = len(queries)
        metrics["ms_per_query"] = round(1000 * elapsed / len(queries), 2)
        results[mode] = metrics
        logger.info("Evaluated retrieval", extra={"mode": mode, **metrics})
    return results


__all__ = ["K_VALUES", "EvalQuery", "evaluate_retrieval", "read_queries", "score_rankings"]

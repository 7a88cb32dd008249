"""Answer quality of the bot on labelled queries: ROUGE-L, gold citation rate and hand-off rates.

For every in-scope query (``query,gold_ids`` CSV, as for retrieval evaluation) the bot answers
once, without history. The reference answer is the text of the first gold KB entry. Reported:

* ``rouge_l`` — ROUGE-L F1 of the answers that were not handed off, against the reference;
* ``gold_citation_rate`` — share of in-scope queries whose answer cites at least one gold id;
* ``handoff_rate_in_scope`` — share of in-scope queries handed off (lower is better);
* ``handoff_rate_out_of_scope`` — share of out-of-scope questions handed off (higher is better);
* ``routes`` — how many answers were quoted from the FAQ, generated or handed off.

The arithmetic is :mod:`core.metrics`; the answers come from the real :class:`SupportBot`.

:func:`grounded_answer_scores` scores the answer model as the bot uses it in ``generate`` mode, on
question-answer pairs (the refresh guard's held-out pairs): each question is answered from the
passages the bot retrieves for it, and only a generated answer the grounding verifier keeps counts.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apps.customer_service.bot import SupportBot
from apps.customer_service.confidence import read_out_of_scope
from apps.customer_service.retrieval_eval import EvalQuery, read_queries
from core.grounding import strip_citations
from core.metrics import rouge_l
from core.progress import progress_bar

if TYPE_CHECKING:
    from apps.customer_service.answer_tuning import QAPair

#: The scores :func:`grounded_answer_scores` returns (higher is better for both).
GROUNDED_METRICS: tuple[str, ...] = ("grounded_answer_share", "grounded_rouge_l")

logger = logging.getLogger(__name__)


def evaluate_bot_answers(
    bot: SupportBot,
    queries: str | Path | Sequence[EvalQuery],
    out_of_scope: str | Path | Sequence[str] | None = None,
    limit: int | None = None,
    show_progress_bar: bool = True,
) -> dict[str, Any]:
    """Answer every query with ``bot`` and score the answers.

    Args:
        bot: The bot to evaluate (its KB must hold every gold id).
        queries: A ``query,gold_ids`` CSV or parsed queries.
        out_of_scope: A CSV with a ``query`` column (or the questions) the KB cannot answer.
        limit: Evaluate only the first ``limit`` queries of each set.
        show_progress_bar: Show a tqdm bar over the questions.

    Returns:
        The metrics described in the module docstring, plus counts and latency p50 in ms.
    """
    if isinstance(queries, str | Path):
        queries = read_queries(queries, bot.kb)
    if isinstance(out_of_scope, str | Path):
        out_of_scope = read_out_of_scope(out_of_scope)
    in_scope = list(queries)[:limit]
    outside = list(out_of_scope or [])[:limit]

    hypotheses: list[str] = []
    references: list[str] = []
    cited_gold = handed_off = 0
    routes: Counter[str] = Counter()
    latencies: list[float] = []
    questions = [(q.query, q) for q in in_scope] + [(text, None) for text in outside]
    outside_handoffs = 0
    for text, query in progress_bar(questions, desc="answering", disable=not show_progress_bar):
        reply = bot.answer(text)
        latencies.append(reply.latency_ms)
        routes[reply.route] += 1
        if query is None:
            outside_handoffs += int(reply.handoff)
            continue
        if reply.handoff:
            handed_off += 1
            continue
        cited_gold += int(any(source.id in query.gold_ids for source in reply.sources))
        hypotheses.append(reply.text)
        references.append(bot.kb.get(query.gold_ids[0]).text)

    n_in = len(in_scope)
    return {
        "queries": n_in,
        "out_of_scope": len(outside),
        "rouge_l": round(rouge_l(hypotheses, references), 4) if hypotheses else None,
        "gold_citation_rate": round(cited_gold / n_in, 4) if n_in else None,
        "handoff_rate_in_scope": round(handed_off / n_in, 4) if n_in else None,
        "handoff_rate_out_of_scope": round(outside_handoffs / len(outside), 4) if outside else None,
        "routes": dict(routes),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
    }


def grounded_answer_scores(
    bot: SupportBot, pairs: Sequence[QAPair], show_progress_bar: bool = False
) -> dict[str, float]:
    """The bot's answer model scored where the bot uses it: in the passage prompt, behind the verifier.

    Each question is answered with :meth:`SupportBot.compose` (``generate=True``) from the passages the
    bot's retriever finds for it. An answer counts only when the generated text is what the bot would
    show (route ``generate``: enough of it supported by the cited passages, the output check passed);
    otherwise its hypothesis is empty.

    Args:
        bot: The bot, with the answer model (and adapter) to score as its generator.
        pairs: Questions with reference answers.
        show_progress_bar: Show a tqdm bar over the questions.

    Returns:
        ``grounded_answer_share`` (share of questions answered with a verified generated answer) and
        ``grounded_rouge_l`` (ROUGE-L F1 against the references, citations removed, an unshown answer
        counting as empty).

    Raises:
        ValueError: No pairs.
    """
    if not pairs:
        raise ValueError("no pairs to evaluate")
    hypotheses: list[str] = []
    for pair in progress_bar(list(pairs), desc="grounded answers", disable=not show_progress_bar):
        hits = bot.retriever.search(pair.question, k=bot.config.top_k)
        reply = bot.compose(pair.question, hits, generate=True)
        hypotheses.append(strip_citations(reply.text) if reply.route == "generate" else "")
    shown = sum(1 for h in hypotheses if h)
    return {
        "grounded_answer_share": round(shown / len(hypotheses), 4),
        "grounded_rouge_l": round(rouge_l(hypotheses, [p.answer for p in pairs]), 4),
    }

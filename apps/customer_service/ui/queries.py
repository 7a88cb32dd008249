"""The plain functions behind the support pages: knowledge-base administration, the knowledge-gap
report with its review (the Knowledge gaps page) and the hand-off queue.

Knowledge-base administration (the admin page): uploaded sources, re-indexing, statistics.

Uploaded files live beside the KB in ``{kb_dir}_sources/`` (not inside it: the KB directory is
replaced wholesale by every build). A re-index builds from those files (plus, optionally, the
shipped sample store), then recalibrates the answer gate when the sample validation questions fit
the KB.

The model-versions page reads the refreshed versions (:mod:`apps.customer_service.served_models`),
charts their held-out scores and switches the active one.

Hand-off queue (the queue page): who acts (:func:`agent_name`), one line about a case
(:func:`case_caption`) and the per-day charts and table (:func:`handoff_times_chart`,
:func:`handoff_backlog_chart`, :func:`handoff_days_table`).
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd

from apps.customer_service.bot import SupportBot
from apps.customer_service.confidence import Calibration, calibrate_kb
from apps.customer_service.config import load_gaps_config
from apps.customer_service.demo import OUT_OF_SCOPE, QUERIES, SAMPLE_SOURCES
from apps.customer_service.errors import SourceError
from apps.customer_service.gap_review import (
    Approval,
    approve,
    latest_report,
    reject,
    save_report,
    since_label,
    sync_approved,
    unsynced,
)
from apps.customer_service.gaps import gaps_from_file, gaps_from_store
from apps.customer_service.handoff_queue import Case, format_age
from apps.customer_service.knowledge_base import BuildReport, KnowledgeBase, sources_dir
from apps.customer_service.question_sample import question_sample_csv, sample_questions
from apps.customer_service.retrieval_eval import read_queries
from apps.customer_service.sources import load_sources, read_source
from apps.customer_service.storage import SupportStore
from core.atomic import write_bytes_atomic
from core.embeddings import Embedder
from core.grounding import strip_citations
from core.model_versions import ACTIVE_FILE, RegistryError

logger = logging.getLogger(__name__)

UPLOAD_SUFFIXES = (".csv", ".json", ".jsonl", ".md", ".markdown", ".txt")
Progress = Callable[[float, str], Any]


@dataclass(frozen=True)
class ReindexResult:
    """What a re-index did: entry count, build report, and how the gate was calibrated."""

    entries: int
    report: BuildReport
    calibration_note: str | None


def source_files(folder: Path) -> list[Path]:
    """Uploaded source files in ``folder``, by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in UPLOAD_SUFFIXES)


def save_uploads(folder: Path, files: Sequence[tuple[str, bytes]]) -> list[Path]:
    """Check each uploaded file parses as a KB source, then save it into ``folder``.

    Args:
        folder: Destination (created).
        files: ``(file name, content)`` pairs.

    Returns:
        The saved paths.

    Raises:
        SourceError: A file has an unsupported type or does not parse (nothing of it is saved).
    """
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, content in files:
        clean = Path(name).name
        if Path(clean).suffix.lower() not in UPLOAD_SUFFIXES or clean.startswith("."):
            raise SourceError(clean, f"unsupported file type; upload {', '.join(UPLOAD_SUFFIXES)}")
        with tempfile.TemporaryDirectory() as tmp:
            probe = Path(tmp) / clean
            probe.write_bytes(content)
            try:
                read_source(probe)
            except SourceError as err:
                raise SourceError(clean, err.problem, row=err.row, line=err.line, field=err.field) from err
        target = folder / clean
        write_bytes_atomic(target, content)
        saved.append(target)
    return saved


def index_sources(folder: Path, include_sample: bool = True) -> list[Path]:
    """The sources of a re-index: the sample store (optional) and every uploaded file."""
    return [*(SAMPLE_SOURCES if include_sample else ()), *source_files(folder)]


def reindex(kb_dir: Path, sources: Sequence[Path], progress: Progress | None = None) -> ReindexResult:
    """Build ``kb_dir`` from ``sources`` (incrementally, atomically) and recalibrate the gate.

    Args:
        kb_dir: The knowledge base.
        sources: Files and folders.
        progress: Called with ``(fraction done, stage)``.

    Raises:
        ValueError: No sources.
        SourceError: A bad source (the previous KB is kept).
    """
    report = progress or (lambda _fraction, _text: None)
    if not sources:
        raise ValueError("nothing to index: upload files or include the sample store")
    report(0.05, "Reading sources…")
    entries = load_sources(list(sources))
    report(0.2, f"Embedding and indexing {len(entries)} entries…")
    kb = KnowledgeBase.build(list(sources), kb_dir)
    report(0.85, "Calibrating the answer gate…")
    note = recalibrate(kb_dir, kb)
    report(1.0, "Done")
    return ReindexResult(len(kb), kb.last_build, note)


def recalibrate(kb_dir: Path, kb: KnowledgeBase) -> str | None:
    """Calibrate the gate on the sample validation questions when they fit ``kb``; else say what to run."""
    queries = read_queries(QUERIES)
    if all(gold in kb for q in queries for gold in q.gold_ids):
        calibrate_kb(kb_dir, QUERIES, OUT_OF_SCOPE)
        return None
    return (
        "The answer gate uses its default thresholds: the sample validation questions do not fit this KB "
        "(run `aigc support calibrate --queries YOUR.csv --out-of-scope OOS.csv`)."
    )


# ------------------------------------------------------------------------------ knowledge gaps
def find_gaps(
    kb_dir: Path,
    bot: SupportBot,
    store: SupportStore,
    since: date | None = None,
    questions: tuple[str, bytes] | None = None,
    generate: bool = True,
    created_by: str | None = None,
) -> int:
    """Make and store a gap report of the KB; returns its id.

    Args:
        kb_dir: The knowledge base.
        bot: The bot over it.
        store: The conversation store (questions, corrections; the report is saved there).
        since: Only stored questions asked from this day on (UTC).
        questions: An uploaded questions file ``(name, content)`` to use instead of the store.
        generate: Let the answer model write drafts (else quote passages).
        created_by: Who asked for it.

    Raises:
        SourceError: A bad questions file (naming the row and field).
        ValueError: Both ``since`` and ``questions`` given (nothing is run), as the CLI refuses
            ``--since`` with ``--questions``: the date would be silently ignored.
    """
    if since is not None and questions is not None:
        raise ValueError(
            "The date applies to stored questions, not to a questions file: clear the date to use the "
            "file, or remove the file to report on stored questions since that date."
        )
    config = replace(load_gaps_config(), draft="generate" if generate else "extractive")
    if questions is not None:
        name, content = questions
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / (Path(name).name or "questions.csv")
            path.write_bytes(content)
            try:
                report = gaps_from_file(bot, path, config, store)
            except SourceError as err:
                raise SourceError(
                    Path(name).name, err.problem, row=err.row, line=err.line, field=err.field
                ) from err
    else:
        moment = None if since is None else datetime.combine(since, time.min, tzinfo=UTC)
        report = gaps_from_store(bot, store, config, moment)
    return save_report(store, report, kb_dir, config, created_by)


def approve_gap(
    store: SupportStore,
    draft_id: int,
    kb_dir: Path,
    reviewer: str | None,
    question: str,
    answer: str,
    embedder: Embedder | None = None,
) -> tuple[Approval, str | None]:
    """Approve a draft into the KB (:func:`apps.customer_service.gap_review.approve`), then recalibrate
    the gate like a re-index; returns the approval and a note when the gate could not be recalibrated."""
    approval = approve(store, draft_id, kb_dir, reviewer, question, answer, embedder)
    note = None
    if approval.calibration == "dropped":
        note = recalibrate(kb_dir, KnowledgeBase.load(kb_dir))
    return approval, note


def kb_statistics(kb_dir: Path) -> dict[str, Any]:
    """Counts by kind and category, encoder, build time, and the answer gate in use."""
    kb = KnowledgeBase.load(kb_dir)
    stats = kb.stats()
    categories = Counter(e.category or f"({e.kind})" for e in kb.entries)
    stats["by_category"] = [{"category": c, "entries": n} for c, n in categories.most_common()]
    try:
        calibration = Calibration.load(kb_dir)
    except ValueError as err:
        logger.warning("Ignoring an unreadable calibration", extra={"error": str(err)})
        calibration = None
    gate = calibration or Calibration()
    stats["gate"] = {
        "calibrated": calibration is not None,
        "handoff_threshold": round(gate.handoff_threshold, 3),
        "verbatim_margin": round(gate.verbatim_margin, 3),
        **gate.report,
    }
    return stats


def adaptation_summary(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """One table row on the encoder adaptation of the KB's last ``--adapt`` build (None without one):
    the decision, the judge, held-out recall@1 frozen -> adapted, won/lost questions and the p-value."""
    if not report:
        return None
    significance = report.get("significance") or {}
    frozen, adapted = (report.get(k, {}).get("recall@1") for k in ("frozen", "adapted"))
    return {
        "adapter": "kept" if report.get("kept") else "discarded",
        "judge": f"{report.get('heldout_queries', 0)} {report.get('heldout', '')} questions",
        "recall@1 frozen": frozen,
        "recall@1 adapted": adapted,
        "won / lost": f"{significance['wins']} / {significance['losses']}" if significance else "-",
        "p": significance.get("p_value", "-"),
        "training pairs": report.get("pairs", 0),
    }


LOCAL_AGENT = "local"  # who acts on the queue while sign-in is off
TAKE_LABEL = "median minutes to take"
RESOLVE_LABEL = "median minutes to resolve"
TAKEN_LABEL = "taken"
WAITING_LABEL = "still waiting"


def question_sample(store: SupportStore, kb_dir: Path, size: int, seed: int = 0) -> tuple[str, int, int]:
    """The labelling CSV of a random sample of the questions asked on ``kb_dir``
    (:mod:`apps.customer_service.question_sample`): ``(csv_text, questions in it, questions asked)``."""
    asked = store.asked_questions(kb_dir)
    rows = sample_questions(asked, size, seed)
    return question_sample_csv(rows), len(rows), len(asked)


def agent_name(name: str | None) -> str:
    """The signed-in user's name, or :data:`LOCAL_AGENT` while sign-in is off."""
    return name or LOCAL_AGENT


def case_caption(case: Case, now: datetime | None = None) -> str:
    """``customer asked for a human · waiting 12 min · 3 sources``: one line about a case."""
    waited = format_age(case.age(now))
    state = (
        f"waiting {waited}"
        if case.status == "waiting"
        else f"{case.status} by {case.taken_by} after {waited}"
    )
    sources = len(case.sources)
    return f"{case.reason_label} · {state} · {sources} source{'s' if sources != 1 else ''}"


def handoff_times_chart(metrics: pd.DataFrame) -> pd.DataFrame:
    """The queue's per-day metrics as the chart's frame: ``day`` (``YYYY-MM-DD``) and the two medians."""
    frame = metrics[["day", "median_take_min", "median_resolve_min"]].rename(
        columns={"median_take_min": TAKE_LABEL, "median_resolve_min": RESOLVE_LABEL}
    )
    frame["day"] = frame["day"].astype(str)  # one bar group per day, even for a single day
    return frame


def handoff_backlog_chart(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per day: the hand-offs taken since and those still waiting (stacked, they make the day's total).

    The medians count only taken cases, so a day where most cases were never taken looks good on
    them; this chart shows that day as a tall ``still waiting`` bar.
    """
    frame = metrics[["day", "taken", "waiting"]].rename(
        columns={"taken": TAKEN_LABEL, "waiting": WAITING_LABEL}
    )
    frame["day"] = frame["day"].astype(str)
    return frame


def handoff_days_table(metrics: pd.DataFrame) -> list[dict[str, Any]]:
    """One display row per day, newest first: hand-offs, taken, still waiting, share taken (%),
    resolved and the two medians (``None`` when no case of the day was taken or resolved)."""
    rows = []
    for row in metrics.iloc[::-1].to_dict("records"):
        rows.append(
            {
                "day": str(row["day"]),
                "handed off": int(row["handed_off"]),
                TAKEN_LABEL: int(row["taken"]),
                WAITING_LABEL: int(row["waiting"]),
                "taken %": round(100 * float(row["taken_share"])),
                "resolved": int(row["resolved"]),
                TAKE_LABEL: None if pd.isna(row["median_take_min"]) else row["median_take_min"],
                RESOLVE_LABEL: None if pd.isna(row["median_resolve_min"]) else row["median_resolve_min"],
            }
        )
    return rows


# ----------------------------------------------------------------------------- model versions
#: The held-out scores the versions page charts, with their labels.
VERSION_METRICS = {
    "intent_accuracy": "Intent accuracy",
    "intent_macro_f1": "Intent macro-F1",
    "answer_rouge_l": "Answer ROUGE-L",
    "answer_bleu": "Answer BLEU (/100)",
    "grounded_answer_share": "Grounded answers shown",
    "grounded_rouge_l": "Grounded ROUGE-L",
}


def model_versions() -> list[dict[str, Any]]:
    """The refreshed model versions, oldest first (see :mod:`apps.customer_service.served_models`)."""
    from apps.customer_service.served_models import list_versions

    return list_versions()


def versions_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One display row per version: parts, decision, active, and each new score."""
    return [
        {
            "version": row["version"],
            "created (UTC)": (row["created_at"] or "")[:16].replace("T", " "),
            "intents": row["components"].get("intents", "-"),
            "adapter": row["components"].get("adapter", "-"),
            **{label: row["scores"]["new"].get(metric) for metric, label in VERSION_METRICS.items()},
            "passed guard": "yes" if row["promoted"] else f"no ({', '.join(row['worse'])})",
            "active": "active" if row["active"] else "",
        }
        for row in rows
    ]


def score_chart_rows(rows: Sequence[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Long-form rows for a grouped bar chart of ``metric``: the served model before each refresh
    (``old``) next to the version it trained (``new``); versions without the score are left out."""
    chart = []
    for row in rows:
        for side in ("old", "new"):
            value = row["scores"].get(side, {}).get(metric)
            if value is not None:
                chart.append({"version": row["version"], "model": side, "score": value})
    return chart


def switch_label(rows: Sequence[dict[str, Any]], version: str) -> str:
    """``"Roll back"`` for a version older than the active one, ``"Promote"`` otherwise."""
    from core.model_versions import version_number

    active = next((r["version"] for r in rows if r["active"]), None)
    older = active is not None and version_number(version) < version_number(active)
    return "Roll back" if older else "Promote"


def switch_model_version(version: str, actor: str | None) -> Any:
    """Activate ``version`` (:func:`~apps.customer_service.served_models.switch_version`); the switch."""
    from apps.customer_service.served_models import switch_version

    return switch_version(version, actor=actor)


def version_history() -> list[dict[str, Any]]:
    """Every switch of the active version, newest first: when, to which, from which, why, who."""
    from apps.customer_service.served_models import support_registry

    registry = support_registry()
    rows = []
    for index, h in enumerate(registry.history()):
        if not isinstance(h, dict) or not all(isinstance(h.get(k), str) for k in ("at", "version", "action")):
            raise RegistryError(  # active.json edited by hand: one line naming the file and the entry
                f"{registry.root / ACTIVE_FILE}: history entry {index + 1} must be an object with text "
                "'at', 'version' and 'action'; the pointer's history is damaged"
            )
        rows.append(
            {
                "when (UTC)": h["at"][:19].replace("T", " "),
                "version": h["version"],
                "previous": h.get("previous") or "-",
                "action": h["action"],
                "by": h.get("actor") or "-",
            }
        )
    return rows[::-1]


__all__ = [
    "LOCAL_AGENT",
    "RESOLVE_LABEL",
    "TAKE_LABEL",
    "UPLOAD_SUFFIXES",
    "VERSION_METRICS",
    "TAKEN_LABEL",
    "WAITING_LABEL",
    "agent_name",
    "case_caption",
    "handoff_backlog_chart",
    "handoff_days_table",
    "handoff_times_chart",
    "ReindexResult",
    "approve_gap",
    "find_gaps",
    "index_sources",
    "kb_statistics",
    "latest_report",
    "recalibrate",
    "model_versions",
    "reindex",
    "reject",
    "since_label",
    "strip_citations",
    "sync_approved",
    "unsynced",
    "save_uploads",
    "source_files",
    "score_chart_rows",
    "sources_dir",
    "switch_label",
    "switch_model_version",
    "version_history",
    "versions_table",
]

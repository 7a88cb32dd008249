"""Review of knowledge-gap drafts: save a report, approve (possibly edited) or reject its drafts.

A report from :mod:`apps.customer_service.gaps` is stored with :func:`save_report` (one
``support_gap_reports`` row, one ``support_gap_drafts`` row per cluster, in one transaction). A
kb_admin then approves, edits or rejects each draft (the Knowledge gaps page).

An approved draft becomes the FAQ entry ``gap-{draft id}`` (question: the one approved, by default
the cluster's most typical question; answer: the approved text without ``[id]`` citations;
category ``gaps``). Every approved draft of a KB is written to ``gap_answers.csv`` in the KB's
sources folder (``{kb_dir}_sources/``, beside the admin page's uploads), and the KB is rebuilt from
the sources in its manifest plus that file: the incremental index embeds only the new entry, and
the swap is atomic. The database is the record: approval is committed first, then the file and
the KB follow from it; if the rebuild fails, the approval is undone; if the process dies in
between, :func:`sync_approved` (also run by the next approval) brings the KB up to date, and
:func:`unsynced` lists what is missing. Entry ids are stable, so nothing is ever added twice.

Nothing reaches the KB that the prompt-injection screen flags: the approved question and answer
are screened together first (and the KB screens every entry again at build time).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from apps.customer_service.confidence import build_and_calibrate
from apps.customer_service.config import GapsConfig
from apps.customer_service.entries import Entry
from apps.customer_service.feedback import FAQ_COLUMNS
from apps.customer_service.gaps import GapReport
from apps.customer_service.injection_screen import screen_entry
from apps.customer_service.knowledge_base import KnowledgeBase, load_config, read_manifest, sources_dir
from apps.customer_service.sources import Source
from apps.customer_service.storage import SupportStore
from core.atomic import write_bytes_atomic
from core.config import to_dict
from core.control_chars import strip_control
from core.embeddings import Embedder
from core.grounding import strip_citations

logger = logging.getLogger(__name__)

GAP_ANSWERS_FILE = "gap_answers.csv"
GAP_CATEGORY = "gaps"


@dataclass(frozen=True)
class Approval:
    """What an approval did: the entry id, and the rebuilt KB's entry count and gate state."""

    draft_id: int
    entry_id: str
    entries: int
    calibration: str


def kb_key(kb_dir: str | Path) -> str:
    """How a KB is named in the gap tables: its absolute path."""
    return str(Path(kb_dir).expanduser().resolve())


def entry_id(draft_id: int) -> str:
    """The KB entry id of an approved draft."""
    return f"gap-{draft_id}"


def save_report(
    store: SupportStore,
    report: GapReport,
    kb_dir: str | Path,
    config: GapsConfig,
    created_by: str | None = None,
) -> int:
    """Store ``report`` (drafts pending review); returns the report id."""
    drafts = [
        {
            "label": cluster.label[:200],
            "size": cluster.size,
            "questions": cluster.questions,
            "nearest": cluster.nearest,
            "draft_answer": cluster.draft.answer,
            "draft_sources": cluster.draft.sources,
            "method": cluster.draft.method,
            "note": cluster.draft.note,
            "flagged": cluster.draft.flagged,
            "flag_reason": cluster.draft.flag_reason,
        }
        for cluster in report.clusters
    ]
    row = {
        "kb": kb_key(kb_dir),
        "source": report.source,
        "since": report.since,
        "questions": report.asked,
        "gaps": report.gaps,
        "unclustered": report.unclustered,
        "settings": to_dict(config),
        "created_by": created_by,
    }
    report_id = store.save_gap_report(row, drafts)
    logger.info("Saved gap report", extra={"report": report_id, "clusters": len(drafts)})
    return report_id


def approve(
    store: SupportStore,
    draft_id: int,
    kb_dir: str | Path,
    reviewer: str | None,
    question: str | None = None,
    answer: str | None = None,
    embedder: Embedder | None = None,
) -> Approval:
    """Approve a pending draft (with an edited ``question`` / ``answer``) and add it to the KB.

    Raises:
        KeyError: No such draft.
        ValueError: The draft is of another KB or not pending, the answer is empty, or the
            question and answer read as instructions to a model (edit them).
        FileNotFoundError, SourceError, KBFormatError: The KB cannot be rebuilt from its sources
            (the approval is undone).
    """
    draft = store.gap_draft(draft_id)
    if draft["kb"] != kb_key(kb_dir):
        raise ValueError(f"gap draft {draft_id} belongs to the knowledge base {draft['kb']}, not {kb_dir}")
    if draft["status"] != "pending":
        raise ValueError(f"gap draft {draft_id} is already {draft['status']}")
    # Control characters first: text made only of them is empty, not an FAQ entry.
    question = " ".join(strip_control(question if question is not None else draft["questions"][0]).split())
    answer = strip_citations(strip_control(answer if answer is not None else draft["draft_answer"] or ""))
    if not question:
        raise ValueError(f"gap draft {draft_id}: the question is empty; write the question the entry answers")
    if not answer:
        raise ValueError(f"gap draft {draft_id}: the answer is empty; write the answer before approving")
    new_id = entry_id(draft_id)
    verdict = screen_entry(Entry(id=new_id, kind="faq", question=question, text=answer, title=question))
    if verdict.flagged:
        raise ValueError(
            f"gap draft {draft_id}: the {verdict.field} reads as instructions to a model "
            f"({verdict.reason}: {verdict.excerpt!r}); edit it before approving"
        )
    store.review_gap_draft(
        draft_id, "approved", reviewer, question=question, final_answer=answer, entry_id=new_id
    )
    try:
        kb = sync_approved(store, kb_dir, embedder)
    except Exception:
        store.review_gap_draft(
            draft_id, "pending", None, expect="approved", question=None, final_answer=None, entry_id=None
        )
        write_gap_answers(store, kb_dir)  # the admin page's re-index reads that file too
        raise
    logger.info("Gap draft approved", extra={"draft": draft_id, "entry": new_id, "kb": str(kb_dir)})
    return Approval(draft_id, new_id, len(kb), kb.last_build.calibration)


def reject(store: SupportStore, draft_id: int, kb_dir: str | Path, reviewer: str | None) -> None:
    """Reject a pending draft (it stays in the report, marked rejected).

    Raises:
        KeyError: No such draft.
        ValueError: The draft is of another KB or not pending.
    """
    draft = store.gap_draft(draft_id)
    if draft["kb"] != kb_key(kb_dir):
        raise ValueError(f"gap draft {draft_id} belongs to the knowledge base {draft['kb']}, not {kb_dir}")
    store.review_gap_draft(draft_id, "rejected", reviewer)
    logger.info("Gap draft rejected", extra={"draft": draft_id})


def approved_rows(store: SupportStore, kb_dir: str | Path) -> list[dict[str, str]]:
    """FAQ rows (``id, question, answer, title, url, category``) of the KB's approved drafts, by id."""
    drafts = sorted(store.gap_drafts(kb=kb_key(kb_dir), status="approved"), key=lambda d: d["id"])
    return [
        {
            "id": d["entry_id"],
            "question": d["question"],
            "answer": d["final_answer"],
            "title": d["question"][:120],
            "url": "",
            "category": GAP_CATEGORY,
        }
        for d in drafts
    ]


def gap_answers_path(kb_dir: str | Path) -> Path:
    """The FAQ file of approved gap answers: ``{kb_dir}_sources/gap_answers.csv``."""
    return sources_dir(kb_dir) / GAP_ANSWERS_FILE


def write_gap_answers(store: SupportStore, kb_dir: str | Path) -> Path | None:
    """Write the KB's approved gap answers to :func:`gap_answers_path` (atomically); with none, remove
    the file (an FAQ file without rows is not a valid source). Returns the file, or ``None``."""
    target = gap_answers_path(kb_dir)
    rows = approved_rows(store, kb_dir)
    if not rows:
        target.unlink(missing_ok=True)
        return None
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=FAQ_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, buffer.getvalue().encode("utf-8"))
    return target


def sync_approved(store: SupportStore, kb_dir: str | Path, embedder: Embedder | None = None) -> KnowledgeBase:
    """Write the KB's approved gap answers (:func:`write_gap_answers`) and rebuild the KB from its
    manifest's sources plus that file: incrementally (only new entries are embedded), atomically,
    and recalibrated when its build settings name calibration queries.

    Raises:
        FileNotFoundError: The KB, or one of the sources it was built from, is gone.
        SourceError, KBFormatError: As :meth:`KnowledgeBase.build`.
    """
    kb_dir = Path(kb_dir)
    manifest = read_manifest(kb_dir)
    gap_file = write_gap_answers(store, kb_dir)
    sources = _kb_sources(manifest, gap_answers_path(kb_dir), gap_file is not None)
    kb = build_and_calibrate(sources, kb_dir, load_config(manifest), embedder)
    logger.info("KB updated with approved gap answers", extra={"kb": str(kb_dir), "file": str(gap_file)})
    return kb


def _kb_sources(manifest: dict[str, Any], gap_file: Path, include_gap_file: bool) -> list[Source]:
    """The sources recorded in the manifest, with ``gap_file`` added (or left out when it is gone).

    Raises:
        FileNotFoundError: A recorded source no longer exists (the KB cannot be rebuilt as it was).
    """
    sources: list[Source] = []
    for recorded in manifest.get("sources", []):
        source = Source(Path(recorded["path"]), recorded.get("kind", "auto"))
        if _same(source.path, gap_file):
            continue
        if not source.path.exists():
            raise FileNotFoundError(
                f"the knowledge base was built from {source.path}, which no longer exists; "
                "re-index it on the Knowledge base page or with `aigc support index` first"
            )
        sources.append(source)
    if include_gap_file:
        sources.append(Source(gap_file, "faq"))
    return sources


def _same(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def unsynced(store: SupportStore, kb: KnowledgeBase) -> list[str]:
    """Entry ids of approved drafts that the loaded KB does not hold yet (run :func:`sync_approved`)."""
    return [row["id"] for row in approved_rows(store, kb.path or "") if row["id"] not in kb]


def latest_report(
    store: SupportStore, kb_dir: str | Path
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The newest stored report of the KB and its drafts (largest cluster first), or ``None``."""
    reports = store.gap_reports(kb=kb_key(kb_dir), limit=1)
    if not reports:
        return None
    return reports[0], store.gap_drafts(report_id=reports[0]["id"])


def since_label(since: datetime | None) -> str:
    """``since`` for people (``all stored questions`` when ``None``)."""
    return "all stored questions" if since is None else f"questions since {since:%Y-%m-%d %H:%M} UTC"


__all__ = [
    "GAP_ANSWERS_FILE",
    "GAP_CATEGORY",
    "Approval",
    "approve",
    "approved_rows",
    "entry_id",
    "gap_answers_path",
    "kb_key",
    "latest_report",
    "reject",
    "save_report",
    "since_label",
    "sync_approved",
    "unsynced",
    "write_gap_answers",
]

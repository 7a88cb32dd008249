"""`aigc support gaps`: what customers ask that the knowledge base does not answer.

Parses the options, calls :func:`apps.customer_service.gaps.gaps_from_store` or
:func:`~apps.customer_service.gaps.gaps_from_file`, prints the report; bad input exits with code 2
and one line (:func:`core.console.exit_on_error`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from apps.customer_service.cli.options import JsonOption, KBDirOption
from core.auth.audit import AuditAction
from core.auth.cli import record_cli_event
from core.console import console, exit_on_error, fail
from core.console import out as out_console

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)

_DRAFT_WORDS = {
    "correction": "agent's correction",
    "generated": "draft, generated",
    "extractive": "draft, quoted",
    "none": "no draft",
}


def parse_since(value: str | None) -> datetime | None:
    """``--since`` as an aware UTC datetime: ``YYYY-MM-DD`` or an ISO date-time (naive means UTC).

    Raises:
        ValueError: Not a date.
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone offset past year 1 or 9999 in UTC
        raise ValueError(f"--since: {value!r} is not a date; give YYYY-MM-DD or an ISO date-time") from None


@app.command("gaps")
def gaps_cmd(
    kb_dir: KBDirOption = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only stored questions asked since this date (YYYY-MM-DD, UTC)."),
    ] = None,
    questions_file: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            help="CSV with a 'question' column: the bot answers each; those it cannot answer are the gaps "
            "(instead of the stored hand-offs, low-confidence and rated-down answers).",
        ),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="YAML with 'bot:' and 'gaps:' sections (default configs/customer_service.yaml)."
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Gap setting, e.g. clustering.distance_threshold=0.4, draft=extractive, low_confidence=0.6.",
        ),
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="Store the report for review on the Knowledge gaps page.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Cluster the questions the bot could not answer, with labels, nearest KB entries and draft answers.

    With --json, prints {"clusters": [{"label", "size", "questions", "nearest", "draft_answer",
    "draft_sources"}], "unclustered": [...]}, largest cluster first.
    """
    from apps.customer_service.bot import EmptyQuestionError, SupportBot
    from apps.customer_service.config import load_bot_config, load_gaps_config
    from apps.customer_service.errors import KBFormatError, SourceError
    from apps.customer_service.gaps import gaps_from_questions, gaps_from_store
    from apps.customer_service.knowledge_base import default_kb_dir
    from apps.customer_service.retrieval_eval import read_questions
    from apps.customer_service.storage import SupportStore
    from core.config import ConfigError
    from core.storage import StorageError

    if since is not None and questions_file is not None:
        raise fail("--since applies to stored questions; leave it out with --questions FILE")
    target = kb_dir or default_kb_dir()
    input_errors = (
        ConfigError,
        EmptyQuestionError,
        FileNotFoundError,
        KBFormatError,
        SourceError,
        ValueError,
    )
    with exit_on_error(*input_errors):
        moment = parse_since(since)
        config = load_gaps_config(config_file, overrides or [])
        bot = SupportBot.from_dir(target, load_bot_config(config_file))
        # The file is read before the store opens (and migrates): a bad file prints only its error.
        asked = read_questions(questions_file) if questions_file is not None else None
    with exit_on_error(StorageError):
        store = SupportStore()
    with exit_on_error(*input_errors):
        if asked is not None:
            report = gaps_from_questions(bot, asked, config, store)
        else:
            report = gaps_from_store(bot, store, config, moment)
    if save:
        from apps.customer_service.gap_review import save_report

        with exit_on_error(StorageError):
            report_id = save_report(store, report, target, config, created_by=None)
        record_cli_event(
            AuditAction.KB_GAP_REPORT, str(target), {"report": report_id, "clusters": len(report.clusters)}
        )
        console.print(f"Saved as gap report {report_id}: review it on the Knowledge gaps page.", markup=False)
    methods = report.methods()
    console.print(
        f"{report.asked} questions read, {report.gaps} not answered: {len(report.clusters)} clusters, "
        f"{len(report.unclustered)} unclustered; drafts: {methods['correction']} from corrections, "
        f"{methods['generated']} generated, {methods['extractive']} quoted"
        + (" (generation off)" if config.draft == "extractive" else "")
        + f", {methods['none']} without draft ({report.seconds:.1f} s)",
        markup=False,
    )
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    _print_table(report, config.examples)


def _print_table(report, examples: int) -> None:  # noqa: ANN001 - an apps.customer_service.gaps.GapReport
    if not report.clusters and not report.unclustered:
        out_console.print("No knowledge gaps: the bot answered every question.")
        return
    table = Table(title="Knowledge gaps (largest first)")
    for column in ("#", "size", "label", "example questions", "nearest", "draft"):
        table.add_column(column, justify="right" if column in ("#", "size") else "left")
    for i, cluster in enumerate(report.clusters, start=1):
        draft = cluster.draft
        text = draft.answer or draft.note or ""
        flag = " [flagged by the injection screen]" if draft.flagged else ""
        cells = (
            str(i),
            str(cluster.size),
            cluster.label,
            "\n".join(cluster.questions[:examples]),
            ", ".join(cluster.nearest),
            f"({_DRAFT_WORDS[draft.method]}{flag}) {text[:300]}",
        )
        table.add_row(*(Text(cell) for cell in cells))  # KB and user text: never rich markup
    out_console.print(table)
    if report.unclustered:
        out_console.print(f"Unclustered ({len(report.unclustered)}):", markup=False)
        for question in report.unclustered:
            out_console.print(f"  {question}", markup=False)


__all__ = ["app", "parse_since"]

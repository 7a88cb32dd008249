"""`aigc support` commands of the hand-off queue: ``queue``, ``take``, ``reply``, ``release``, ``resolve``,
``queue-stats`` and ``deliveries`` (the outbox of hand-off notifications).

A terminal acts as ``cli:<login>`` (the audit log's actor); ``--force`` lets it release or resolve a
case another agent has taken, as an admin may on the page. ``resolve --intent LABEL`` records which
intent the customer's question was, for the refresh to train the intent model on. Refusals (taking a
taken case, resolving a waiting one, an empty intent...) end with one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from apps.customer_service.cli.options import JsonOption
from core.cli_bounds import MAX_DAYS, MAX_ID, MAX_ROWS
from core.console import console, exit_on_error
from core.console import out as out_console
from core.errors import check_path_kind

app = typer.Typer(no_args_is_help=True)

CaseArgument = Annotated[
    int, typer.Argument(min=1, max=MAX_ID, help="The hand-off's id (first column of `aigc support queue`).")
]
ForceOption = Annotated[
    bool, typer.Option("--force", help="Act on a case another agent has taken (as an admin would).")
]


def _queue():
    from apps.customer_service.handoff_queue import HandoffQueue
    from apps.customer_service.storage import SupportStore

    return HandoffQueue(SupportStore())


def _errors() -> tuple[type[BaseException], ...]:
    from apps.customer_service.handoff import HandoffError
    from core.storage import StorageError

    return (HandoffError, KeyError, ValueError, StorageError)


def _actor() -> str:
    from core.auth.cli import cli_actor

    return cli_actor()


@app.command("queue")
def queue_cmd(
    status: Annotated[
        str,
        typer.Option("--status", help="waiting (default), taken, resolved, open (waiting or taken) or all."),
    ] = "waiting",
    mine: Annotated[bool, typer.Option("--mine", help="Only the cases this terminal has taken.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ROWS, help="Most cases listed.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The hand-off queue: conversations waiting for an agent, oldest first, with reason, sources and age.

    With --json, one JSON object per case (id, conversation, question, reason, status, times, the
    bot's suggestion and the retrieved sources).
    """
    from apps.customer_service.handoff_queue import format_age

    with exit_on_error(*_errors()):
        cases = _queue().cases(status, taken_by=_actor() if mine else None, limit=limit)
    if as_json:
        for case in cases:
            typer.echo(json.dumps(case.to_json(), ensure_ascii=False))
        return
    if not cases:
        console.print(f"No {status} hand-offs.")
        return
    table = Table(title=f"Hand-offs ({status})")
    for column in ("id", "age", "reason", "status", "question", "sources"):
        table.add_column(column, overflow="fold")
    for case in cases:
        # Text cells: a question or a source id is the customer's text, never rich markup
        table.add_row(
            str(case.id),
            format_age(case.age()),
            Text(case.reason_label),
            Text(case.status + (f" ({case.taken_by})" if case.taken_by else "")),
            Text(case.question[:120]),
            Text(", ".join(s["id"] for s in case.sources[:3])),
        )
    out_console.print(table)


@app.command("take")
def take_cmd(case_id: CaseArgument, as_json: JsonOption = False) -> None:
    """Take a waiting hand-off (it is then yours alone; of two agents taking it at once, one wins)."""
    with exit_on_error(*_errors()):
        case = _queue().take(case_id, _actor())
    _done(case, f"Took hand-off {case.id}: {case.question[:200]}", as_json)
    if not as_json and case.suggestion:
        console.print(f"Bot's suggestion: {case.suggestion}", markup=False)


def _read_reply(path: Path) -> str:
    """The answer in ``path`` (UTF-8, or UTF-16 with its BOM); bad bytes name the file and line."""
    from core.io.tables import decode_text

    return decode_text(check_path_kind(path, "file").read_bytes(), path)


@app.command("reply")
def reply_cmd(
    case_id: CaseArgument,
    text: Annotated[str | None, typer.Argument(help="The answer for the customer.")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--file", help="Read the answer from this UTF-8 text file instead.")
    ] = None,
    force: ForceOption = False,
) -> None:
    """Answer the customer of a hand-off you have taken (stored in the conversation as an agent turn)."""
    with exit_on_error(*_errors(), OSError, UnicodeDecodeError):
        if (text is None) == (from_file is None):
            raise ValueError("give the answer as TEXT or with --file, not both")
        body = text if text is not None else _read_reply(Path(from_file))  # type: ignore[arg-type]
        message_id = _queue().reply(case_id, _actor(), body, override=force)
    console.print(f"Replied to hand-off {case_id} (message {message_id}).", markup=False)


@app.command("release")
def release_cmd(case_id: CaseArgument, force: ForceOption = False, as_json: JsonOption = False) -> None:
    """Put a hand-off you have taken back in the queue."""
    with exit_on_error(*_errors()):
        case = _queue().release(case_id, _actor(), override=force)
    _done(case, f"Hand-off {case.id} is waiting again.", as_json)


@app.command("resolve")
def resolve_cmd(
    case_id: CaseArgument,
    intent: Annotated[
        str | None,
        typer.Option(
            "--intent",
            metavar="LABEL",
            help="Which intent the customer's question was (a label of the intents file): "
            "`aigc support refresh` trains the intent model on it.",
        ),
    ] = None,
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Close a hand-off you have taken, optionally saying which intent its question was."""
    with exit_on_error(*_errors()):
        case = _queue().resolve(case_id, _actor(), override=force, intent=intent)
    labelled = f" (intent {case.intent})" if case.intent else ""
    _done(case, f"Resolved hand-off {case.id}{labelled}.", as_json)


def _done(case, message: str, as_json: bool) -> None:  # noqa: ANN001 - a handoff_queue.Case
    if as_json:
        typer.echo(json.dumps(case.to_json(), ensure_ascii=False))
    else:
        console.print(message, markup=False)


#: ``queue-stats`` table: metric column -> header, in print order.
STATS_COLUMNS = {
    "day": "day",
    "handed_off": "handed off",
    "taken": "taken",
    "waiting": "still waiting",
    "taken_share": "taken %",
    "resolved": "resolved",
    "median_take_min": "median take (min)",
    "median_resolve_min": "median resolve (min)",
}


@app.command("queue-stats")
def queue_stats_cmd(
    days: Annotated[int, typer.Option(min=1, max=MAX_DAYS, help="The last N days.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """Per day of hand-off: cases, taken, still waiting, share taken, resolved, median minutes to take
    and to resolve (the medians count only the cases taken or resolved, so read them with the cases
    still waiting).

    With --json, prints {"counts": {status: cases}, "days": [{"day", "handed_off", "taken",
    "resolved", "median_take_min", "median_resolve_min", "waiting", "taken_share"}]}.
    """
    with exit_on_error(*_errors()):
        queue = _queue()
        frame = queue.metrics(days)
        counts = queue.counts()
    rows = [
        {k: (None if v != v else str(v) if k == "day" else v) for k, v in row.items()}  # NaN -> None
        for row in frame.to_dict("records")
    ]
    if as_json:
        typer.echo(json.dumps({"counts": counts, "days": rows}))
        return
    console.print(", ".join(f"{n} {status}" for status, n in counts.items()))
    table = Table(title=f"Hand-offs per day (last {days} days, UTC)")
    for column in STATS_COLUMNS.values():
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(_stats_cell(key, row[key]) for key in STATS_COLUMNS))
    out_console.print(table)
    console.print("Medians count only the cases taken (or resolved); see 'still waiting'.", markup=False)


def _stats_cell(key: str, value: float | str | None) -> str:
    """One ``queue-stats`` table cell: ``-`` for no value, the share taken as a whole percentage."""
    if value is None:
        return "-"
    if key == "taken_share":
        return f"{float(value):.0%}"
    return str(value)


@app.command("deliveries")
def deliveries_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="pending, delivered or dead (repeatable); default pending and dead."),
    ] = None,
    retry_ids: Annotated[
        list[int] | None,
        typer.Option("--retry", min=1, max=MAX_ID, help="Send this dead or waiting notification again."),
    ] = None,
    retry_dead: Annotated[
        bool, typer.Option("--retry-dead", help="Send every dead notification again.")
    ] = False,
    send: Annotated[bool, typer.Option("--send", help="Send what is due now (one pass).")] = False,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config", help="YAML with a 'queue:' section (default configs/customer_service.yaml)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ROWS, help="Most rows listed.")] = 50,
) -> None:
    """The outbox of hand-off notifications: waiting retries and dead letters; requeue or send them.

    The chat page and `aigc serve` send new notifications themselves; --send does one pass here
    (e.g. from cron while neither runs). Targets are shown masked.
    """
    from apps.customer_service.config import load_queue_config
    from apps.customer_service.handoff_notify import delivery_counts, list_deliveries, retry, send_due
    from apps.customer_service.storage import SupportStore
    from core.config import ConfigError

    with exit_on_error(*_errors(), ConfigError):
        config = load_queue_config(config_file)
        engine = SupportStore().engine
        if retry_ids or retry_dead:
            console.print(f"requeued {retry(engine, retry_ids or [], all_dead=retry_dead)} notifications")
        if send:
            report = send_due(engine, config)
            console.print(
                f"sent {len(report.sent)}, retrying {len(report.retrying)}, dead {len(report.dead)}"
            )
        rows = list_deliveries(engine, status or ["pending", "dead"], limit=limit)
        counts = delivery_counts(engine)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    for d in rows:
        when = "" if d.status != "pending" else f", next {d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        console.print(
            f"#{d.id} hand-off {d.handoff_id} -> {d.sink} ({d.target}): {d.status}, "
            f"{d.attempts} attempts{when}" + (f"; last error: {d.last_error}" if d.last_error else ""),
            markup=False,
            highlight=False,
        )


__all__ = ["app"]

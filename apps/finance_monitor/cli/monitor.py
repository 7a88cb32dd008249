"""``aigc finance monitor / deliveries``: the monitor loop and its alert outbox.

``monitor`` builds a :class:`~apps.finance_monitor.monitor.Monitor` from the ``monitor:`` settings and
runs one cycle (``--once``) or follows the watched folder until SIGINT / SIGTERM; with ``--source`` it
consumes a Redis stream or NATS subject instead (drained with ``--once``). ``deliveries`` lists and
requeues the outbox. Bad settings exit with status 2, database or broker failures with status 3.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from apps.finance_monitor.cli.options import ConfigOption, SetOption, command_errors, config_path
from core.cli_bounds import MAX_ID, MAX_ROWS
from core.console import console, fail, print_error

if TYPE_CHECKING:
    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.monitor import CycleResult, Monitor
    from core.bus import BusSource, ConsumeStats

logger = logging.getLogger(__name__)

app = typer.Typer()

#: Environment variable read by ``--source`` (keeps a bus password off the command line).
SOURCE_ENV = "AIGC_FINANCE_SOURCE"


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT / SIGTERM (the running cycle finishes), restoring the handlers after."""

    def handler(signum: int, _frame: Any) -> None:
        logger.info("Stopping after the current cycle", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@app.command("monitor")
def monitor_cmd(
    once: Annotated[
        bool, typer.Option("--once", help="One cycle (a bus: until drained), then exit.")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Watch the folder (or the bus) until Ctrl-C / SIGTERM.")
    ] = False,
    watch_dir: Annotated[Path | None, typer.Option("--watch-dir", help="Folder of news files.")] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Also ingest this file (--once).")
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            envvar=SOURCE_ENV,
            show_envvar=True,
            help="Consume a message bus instead of the folder: redis://HOST[:PORT]/STREAM (consumer group) "
            "or nats://HOST[:PORT]/SUBJECT (JetStream durable consumer). Keep a URL with a password in "
            "the environment variable rather than on the command line.",
        ),
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Ingest -> score -> aggregate -> alert: once, or following the watched folder or a bus.

    Bus messages are JSON objects with the keys of a JSON Lines news file; each is acknowledged
    only after its item is stored and scored, and a bad one is dead-lettered (STREAM:dead on Redis,
    deadletter.SUBJECT on NATS).
    """
    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.monitor import build_monitor
    from apps.finance_monitor.monitor import watch_dir as resolve_watch_dir
    from core.bus import open_source, parse_bus_url
    from core.config import load_config
    from core.paths import data_dir
    from core.schema import migrate
    from core.storage import create_engine

    if once == follow:
        raise fail("give exactly one of --once and --follow")
    if source and (files or watch_dir):
        raise fail("--source replaces the folder: give it without --watch-dir and --file")

    with command_errors():
        address = parse_bus_url(source) if source else None  # a bad URL fails before anything loads
        cfg = load_config(MonitorConfig, config_path(config), overrides or [], section="monitor")
        engine = create_engine()
        folder = watch_dir or resolve_watch_dir(cfg, data_dir())
        # Models, rules and the webhook are checked before the database is touched: bad settings
        # leave nothing behind (not even a new schema).
        monitor = build_monitor(engine, cfg, data_dir())
        migrate(engine)
    if address is not None and source is not None:
        with command_errors():
            bus = open_source(source, cfg.bus)
        console.print(
            f"consuming {address.masked} as {cfg.bus.group} with model {monitor.scorer.version}", markup=False
        )
        with bus:
            _consume(monitor, bus, cfg, once)
        return
    console.print(f"monitoring {folder} with model {monitor.scorer.version}", markup=False)
    if once:
        with command_errors():
            result = monitor.cycle(folder, files or [])
        _report(result)
        _deliver_and_exit(monitor, result.errors)
        return
    stop = threading.Event()
    with _stop_on_signals(stop), command_errors():
        cycles = monitor.follow(folder, stop, cfg.poll_interval_s, cfg.max_db_failures, _report_changes)
    console.print(f"stopped cleanly after {cycles} cycles")


def _consume(monitor: Monitor, bus: BusSource, cfg: MonitorConfig, once: bool) -> None:
    """``--source``: drain the bus (``--once``) or follow it until a signal."""
    from apps.finance_monitor.feed import consume_feed

    if once:
        with command_errors():
            result, stats = consume_feed(monitor, bus, cfg.bus, drain=True)
        _report(result, stats)
        # Bad messages are dead-lettered and acknowledged: reported, but not a failed run.
        for error in result.errors:
            print_error(error, label="dead-lettered")
        _deliver_and_exit(monitor, [])
        return
    stop = threading.Event()
    with _stop_on_signals(stop), command_errors():
        result, stats = consume_feed(monitor, bus, cfg.bus, stop, on_cycle=_report_changes)
    console.print(f"stopped cleanly after {stats.batches} batches, {stats.messages} messages")


def _report(result: CycleResult, stats: ConsumeStats | None = None) -> None:
    line = f"{result.new_items} new items, {result.scored} scored, {len(result.alerts)} new alerts"
    if stats is not None:
        counts = f"{stats.redelivered} redelivered, {stats.dead_lettered} dead-lettered"
        line = f"{stats.messages} messages ({counts}), {line}"
    console.print(line)


def _report_changes(result: CycleResult) -> None:
    if result.new_items or result.scored or result.alerts:
        _report(result)


def _deliver_and_exit(monitor: Monitor, errors: list[str]) -> None:
    """Send the due deliveries, print the outbox counts and the errors; exit 2 when there are errors."""
    from apps.finance_monitor.outbox import delivery_counts

    with command_errors():
        sent = monitor.deliver()
        counts = delivery_counts(monitor.engine)
    console.print(
        f"deliveries: {len(sent.sent)} sent, {counts['pending']} pending, {counts['dead']} dead"
        + (" (see `aigc finance deliveries`)" if counts["pending"] or counts["dead"] else "")
    )
    for error in errors:
        print_error(error)
    if errors:
        raise typer.Exit(code=2)


@app.command("publish")
def publish_cmd(
    files: Annotated[list[Path], typer.Argument(help="News files (CSV, JSON Lines, RSS, Atom).")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            envvar=SOURCE_ENV,
            show_envvar=True,
            help="redis://HOST[:PORT]/STREAM or nats://HOST[:PORT]/SUBJECT.",
        ),
    ],
    default_source: Annotated[
        str | None, typer.Option("--default-source", help="Source of records that name none.")
    ] = None,
) -> None:
    """Publish news files to a bus, one message per item, for `aigc finance monitor --source`.

    Every file is read and checked first: a bad record stops the command before anything is sent.
    """
    from apps.finance_monitor.feed import publish_files
    from core.bus import parse_bus_url

    with command_errors():
        masked = parse_bus_url(to).masked
        sent = publish_files(to, files, default_source=default_source)
    console.print(f"published {sent} messages to {masked}", markup=False)


@app.command("deliveries")
def deliveries_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="pending, delivered or dead (repeatable); default pending and dead."),
    ] = None,
    retry_ids: Annotated[
        list[int] | None,
        typer.Option("--retry", min=1, max=MAX_ID, help="Send this dead or waiting delivery again."),
    ] = None,
    retry_dead: Annotated[bool, typer.Option("--retry-dead", help="Send every dead delivery again.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ROWS, help="Most rows listed.")] = 50,
) -> None:
    """The alert outbox: deliveries waiting for a retry and dead letters; requeue them.

    Requeued deliveries are sent by the next `aigc finance monitor` pass (or at once by a running
    `--follow`). Targets are shown masked.
    """
    from apps.finance_monitor.outbox import delivery_counts, list_deliveries, retry
    from core.schema import migrate
    from core.storage import create_engine

    with command_errors():
        engine = create_engine()
        migrate(engine)
        if retry_ids or retry_dead:
            count = retry(engine, retry_ids or [], all_dead=retry_dead)
            console.print(f"requeued {count} deliveries")
        rows = list_deliveries(engine, status or ["pending", "dead"], limit=limit)
        counts = delivery_counts(engine)
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))
    for d in rows:
        when = "" if d.status != "pending" else f", next {d.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC"
        console.print(
            f"#{d.id} alert {d.alert_id} -> {d.sink} ({d.target}): {d.status}, {d.attempts} attempts{when}"
            + (f"; last error: {d.last_error}" if d.last_error else ""),
            markup=False,
            highlight=False,
        )

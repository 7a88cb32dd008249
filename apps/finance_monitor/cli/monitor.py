"""``aigc finance monitor / deliveries``: the monitor loop and its alert outbox.

``monitor`` builds a :class:`~apps.finance_monitor.monitor.Monitor` from the ``monitor:`` settings and
runs one cycle (``--once``) or follows the watched folder until SIGINT / SIGTERM; ``deliveries`` lists
and requeues the outbox. Bad settings exit with status 2, database failures with status 3.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from apps.finance_monitor.cli.options import ConfigOption, SetOption, command_errors, config_path
from core.console import console, fail, print_error

logger = logging.getLogger(__name__)

app = typer.Typer()


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
    once: Annotated[bool, typer.Option("--once", help="One cycle, then exit.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Watch the folder until Ctrl-C / SIGTERM.")
    ] = False,
    watch_dir: Annotated[Path | None, typer.Option("--watch-dir", help="Folder of news files.")] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--file", help="Also ingest this file (--once).")
    ] = None,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Ingest -> score -> aggregate -> alert: once, or following the watched folder."""
    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.monitor import build_monitor
    from apps.finance_monitor.monitor import watch_dir as resolve_watch_dir
    from apps.finance_monitor.outbox import delivery_counts
    from core.config import load_config
    from core.paths import data_dir
    from core.schema import migrate
    from core.storage import create_engine

    if once == follow:
        raise fail("give exactly one of --once and --follow")

    with command_errors():
        cfg = load_config(MonitorConfig, config_path(config), overrides or [], section="monitor")
        engine = create_engine()
        folder = watch_dir or resolve_watch_dir(cfg, data_dir())
        # Models, rules and the webhook are checked before the database is touched: bad settings
        # leave nothing behind (not even a new schema).
        monitor = build_monitor(engine, cfg, data_dir())
        migrate(engine)
    console.print(f"monitoring {folder} with model {monitor.scorer.version}")
    if once:
        with command_errors():
            result = monitor.cycle(folder, files or [])
        console.print(
            f"{result.new_items} new items, {result.scored} scored, {len(result.alerts)} new alerts"
        )
        with command_errors():
            sent = monitor.deliver()
            counts = delivery_counts(monitor.engine)
        console.print(
            f"deliveries: {len(sent.sent)} sent, {counts['pending']} pending, {counts['dead']} dead"
            + (" (see `aigc finance deliveries`)" if counts["pending"] or counts["dead"] else "")
        )
        for error in result.errors:
            print_error(error)
        if result.errors:
            raise typer.Exit(code=2)
        return
    stop = threading.Event()

    def report(result: Any) -> None:
        if result.new_items or result.scored or result.alerts:
            console.print(
                f"{result.new_items} new items, {result.scored} scored, {len(result.alerts)} new alerts"
            )

    with _stop_on_signals(stop), command_errors():
        cycles = monitor.follow(folder, stop, cfg.poll_interval_s, cfg.max_db_failures, report)
    console.print(f"stopped cleanly after {cycles} cycles")


@app.command("deliveries")
def deliveries_cmd(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="pending, delivered or dead (repeatable); default pending and dead."),
    ] = None,
    retry_ids: Annotated[
        list[int] | None, typer.Option("--retry", help="Send this dead or waiting delivery again.")
    ] = None,
    retry_dead: Annotated[bool, typer.Option("--retry-dead", help="Send every dead delivery again.")] = False,
    limit: Annotated[int, typer.Option(help="Most rows listed.")] = 50,
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

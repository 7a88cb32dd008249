"""``aigc finance entities [relink]``: companies in the news, and re-linking after a watch-list change.

``aigc finance entities`` lists each entity (ticker) with its stories and net sentiment over the
last ``--days`` before the newest item (``--json``: one JSON document on stdout);
``aigc finance entities relink`` links the stored items again with the configured watch list
(``monitor.watchlist``, or ``--watchlist``). Bad input exits with status 2, database failures with 3.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from apps.finance_monitor.cli.options import ConfigOption, SetOption, command_errors, config_path
from core.cli_bounds import MAX_ROWS, finite_days
from core.console import console, out

app = typer.Typer(
    help="Companies (tickers) the news mentions: volume and sentiment per entity; re-link after a "
    "watch-list change.",
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
def entities_cmd(
    ctx: typer.Context,
    days: Annotated[
        float, typer.Option("--days", help="Period before the newest item; 0: every stored item.")
    ] = 7.0,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_ROWS, help="Most entities listed.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the table as JSON on stdout.")] = False,
) -> None:
    """Entities with their stories, sentiment mix and net sentiment (most stories first)."""
    if ctx.invoked_subcommand is not None:
        return
    from apps.finance_monitor.ui import queries
    from core.schema import migrate
    from core.storage import create_engine

    finite_days(days)
    with command_errors():
        engine = create_engine()
        migrate(engine)
        status = queries.monitor_status(engine)
        start = end = None
        if days and status.newest_item is not None:
            end = status.newest_item + timedelta(microseconds=1)
            start = end - timedelta(days=days)
        table = queries.entity_table(queries.load_scored(engine, start, end), queries.company_names(engine))
    table = table.head(limit)
    if as_json:
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in table.assign(last_seen=table["last_seen"].map(lambda t: t.isoformat())).to_dict(
                "records"
            )
        ]
        typer.echo(json.dumps({"start": _iso(start), "end": _iso(end), "entities": rows}))
        return
    if table.empty:
        console.print("no scored items linked to an entity in this period")
        return
    for row in table.itertuples(index=False):
        out.print(
            f"{row.entity:<8} {row.name[:32]:<32} {row.stories:>5} stories  "
            f"neg {row.negative:>4}  pos {row.positive:>4}  net {row.net_sentiment:+.2f}",
            markup=False,
            highlight=False,
        )


def _iso(when: object) -> str | None:
    return None if when is None else when.isoformat()  # type: ignore[attr-defined]


@app.command("relink")
def relink_cmd(
    watchlist: Annotated[
        Path | None, typer.Option("--watchlist", help="Watch list CSV (default: monitor.watchlist).")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Re-link every item, also those linked by this watch list.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_ROWS, help="Items per transaction.")] = 500,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """Link the stored items to the watch list's companies again (after the watch list changed).

    Items already linked with this watch list are skipped (a second run does nothing). An
    interrupted run keeps the batches done. Alerts already raised are not re-evaluated.
    """
    from dataclasses import replace

    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.entities import relink
    from apps.finance_monitor.monitor import build_linker
    from core.config import load_config
    from core.schema import migrate
    from core.storage import create_engine

    with command_errors():
        cfg = load_config(MonitorConfig, config_path(config), overrides or [], section="monitor")
        if watchlist is not None:
            cfg = replace(cfg, watchlist=str(watchlist))
        linker = build_linker(cfg)  # a bad watch list fails before the database is touched
        engine = create_engine()
        migrate(engine)
        report = relink(engine, linker, every=every, batch_size=batch_size, show_progress_bar=True)
    console.print(
        f"linked {report.items} items ({report.changed} changed, {report.links} links) "
        f"with {report.linker_version}",
        markup=False,
    )

"""``aigc finance digest --alert ID [--json]``: what is behind an alert, with a cited summary.

Prints the stored digest of the alert (computed with the alert by the monitor); a missing or stale one
(an alert raised before digests, or extended since) is computed now with the ``monitor: digest:``
settings and stored. An unknown alert id is one error line and exit status 2.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from apps.finance_monitor.cli.options import ConfigOption, SetOption, command_errors, config_path
from core.cli_bounds import MAX_ID
from core.console import fail, out

app = typer.Typer()


@app.command("digest")
def digest_cmd(
    alert: Annotated[
        int, typer.Option("--alert", min=1, max=MAX_ID, help="The alert's id (see the Alerts page).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="The whole digest as one JSON document.")] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Compute it again even if it is current.")
    ] = False,
    config: ConfigOption = None,
    overrides: SetOption = None,
) -> None:
    """An alert's digest: clusters, top entities, sentiment against the baseline, cited summary."""
    from apps.finance_monitor.config import MonitorConfig
    from apps.finance_monitor.digests import Digester, baseline_lengths, digest_text, get_digest
    from apps.finance_monitor.rules import SAMPLE_RULES, load_rules
    from core.config import load_config
    from core.schema import migrate
    from core.storage import create_engine

    with command_errors():
        cfg = load_config(MonitorConfig, config_path(config), overrides or [], section="monitor")
        buckets = baseline_lengths(load_rules(cfg.rules or SAMPLE_RULES))
        engine = create_engine()
        migrate(engine)
        digest = get_digest(engine, alert, lambda: Digester(cfg.digest), buckets, refresh=refresh)
    if digest is None:  # get_digest returns None only without a digester
        raise fail(f"alert {alert} has no digest")
    if as_json:
        typer.echo(json.dumps(digest.to_dict(), ensure_ascii=False))
    else:
        out.print(digest_text(digest), markup=False, highlight=False)

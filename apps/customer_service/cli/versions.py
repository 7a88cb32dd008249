"""`aigc support refresh` and `aigc support versions`: the guarded retraining loop and its model versions.

Joined into ``aigc support`` by :mod:`apps.customer_service.cli`. ``refresh`` calls
:func:`apps.customer_service.refresh.refresh` (or, with ``--to``,
:func:`~apps.customer_service.served_models.switch_version`); ``versions`` lists
:func:`~apps.customer_service.served_models.list_versions`. Bad input exits with code 2 and one line;
refreshes, promotions and rollbacks are audited as ``cli:<login>``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from apps.customer_service.cli.options import JsonOption, KBDirOption
from apps.customer_service.errors import KBFormatError, SourceError
from core.auth.audit import AuditAction
from core.auth.cli import cli_actor, record_cli_event
from core.config import ConfigError
from core.console import console, exit_on_error, fail
from core.console import out as out_console

logger = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True)
#: Bad input: one error line and exit code 2 (the refresh's own errors are ValueErrors).
INPUT_ERRORS = (FileNotFoundError, SourceError, KBFormatError, ConfigError, ValueError)
METRICS = (
    "intent_accuracy",
    "intent_macro_f1",
    "answer_rouge_l",
    "answer_bleu",
    "grounded_answer_share",
    "grounded_rouge_l",
)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


@app.command("refresh")
def refresh_cmd(
    to: Annotated[
        str | None,
        typer.Option("--to", help="Activate this version instead of refreshing (roll back): v0003 or 3."),
    ] = None,
    kb_dir: KBDirOption = None,
    skip_intents: Annotated[
        bool, typer.Option("--skip-intents", help="Keep the active intent model (do not retrain it).")
    ] = False,
    skip_adapter: Annotated[
        bool, typer.Option("--skip-adapter", help="Keep the active answer adapter (do not retrain it).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Collect the data and show the plan; train and write nothing.")
    ] = False,
    config_file: Annotated[
        Path | None, typer.Option("--config", help="YAML with a refresh: section (default: configs/).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Refresh setting, e.g. tolerance=0.01, intents_data=intents.csv, intent_training.epochs=3.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Retrain the intent model and answer adapter on everything approved; promote only if not worse.

    The first refresh freezes a held-out set; old and new models are scored on it (intent accuracy and
    macro-F1, answer ROUGE-L and BLEU) and the new version becomes active only if no score drops by
    more than the tolerance. Both scores are kept; `aigc support versions` lists them.
    """
    from apps.customer_service.config import load_bot_config, load_refresh_config
    from apps.customer_service.refresh import refresh
    from apps.customer_service.served_models import switch_version

    if to is not None:
        if skip_intents or skip_adapter or dry_run or overrides or config_file:
            raise fail("--to activates an existing version; it takes no training options")
        with exit_on_error(*INPUT_ERRORS):
            switch = switch_version(to, actor=cli_actor())
        action = AuditAction.MODEL_ROLLBACK if switch.action == "rollback" else AuditAction.MODEL_PROMOTE
        record_cli_event(action, switch.version, {"previous": switch.previous, "manual": True})
        if as_json:
            typer.echo(json.dumps(switch.to_dict(), indent=2))
            return
        console.print(f"[green]Active version {switch.version}[/] ({switch.action}; was {switch.previous})")
        return

    with exit_on_error(*INPUT_ERRORS):
        config = load_refresh_config(config_file, overrides or [])
        bot_config = load_bot_config(config_file)
        result = refresh(
            config=config,
            bot_config=bot_config,
            kb_dir=kb_dir,
            skip_intents=skip_intents,
            skip_adapter=skip_adapter,
            dry_run=dry_run,
            actor=cli_actor(),
        )
    if not dry_run:
        details = {
            "promoted": result.promoted,
            "previous": result.previous,
            "scores": result.scores,
            "worse": result.decision.get("worse", {}),
        }
        record_cli_event(AuditAction.MODEL_REFRESH, result.version, details)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    _print_refresh(result)


def _print_refresh(result: Any) -> None:
    data = result.data
    sources = ", ".join(f"{k} {v}" for k, v in data["sources"].items())
    console.print(
        f"Data: {data['intent_rows']} intent utterances, {data['pairs']} answer pairs ({sources}); "
        f"{data['excluded_heldout']} held-out duplicates excluded. Held-out set: "
        f"{result.heldout['intents']} utterances, {result.heldout['pairs']} pairs."
    )
    for note in result.notes:
        console.print(f"[yellow]Note:[/] {escape(note)}")
    if result.dry_run:
        plan = ", ".join(f"{k}: {v['status']}" for k, v in result.components.items())
        console.print(
            f"Dry run: {plan}; would freeze {result.heldout.get('would_freeze')}. Nothing written.",
            markup=False,
        )
        return
    table = Table(title=f"Held-out scores: served ({result.previous or 'defaults'}) vs {result.version}")
    for column in ("metric", "old", "new", ""):
        table.add_column(column, justify="right")
    worse = result.decision.get("worse", {})
    for metric in METRICS:
        old, new = result.scores["old"].get(metric), result.scores["new"].get(metric)
        if old is None and new is None:
            continue
        mark = "worse" if metric in worse else ("" if metric in result.decision["compared"] else "new")
        table.add_row(metric, _fmt(old), _fmt(new), mark)
    out_console.print(table)
    if result.promoted:
        console.print(f"[green]Promoted {result.version}[/]: now active (was {result.previous or 'none'}).")
    else:
        console.print(
            f"[red]Kept {result.active or 'the defaults'}[/]: {result.version} is worse on "
            f"{', '.join(worse)}; it stays listed (`aigc support refresh --to {result.version}` forces it)."
        )


@app.command("versions")
def versions_cmd(as_json: JsonOption = False) -> None:
    """The refreshed model versions: held-out scores (served before vs the version), decision, active."""
    from apps.customer_service.served_models import list_versions

    with exit_on_error(*INPUT_ERRORS):
        rows = list_versions()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        console.print("No model versions yet: run `aigc support refresh`.")
        return
    table = Table(title="Support model versions (scores on the frozen held-out set: old -> new)")
    # Only the scores some version has (grounded ones need a KB at refresh time).
    metrics = [
        m
        for m in METRICS
        if any(r["scores"][side].get(m) is not None for r in rows for side in ("old", "new"))
    ]
    for column in ("version", "created", "intents", "adapter", *metrics, "promoted", "active"):
        table.add_column(column, justify="right")
    for row in rows:
        scores = row["scores"]
        cells = [f"{_fmt(scores['old'].get(m))} -> {_fmt(scores['new'].get(m))}" for m in metrics]
        table.add_row(
            Text(str(row["version"])),
            Text(str(row["created_at"] or "")[:16]),
            Text(str(row["components"].get("intents", "-"))),
            Text(str(row["components"].get("adapter", "-"))),
            *cells,
            "yes" if row["promoted"] else "no",
            "*" if row["active"] else "",
        )
    out_console.print(table)

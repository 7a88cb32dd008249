"""`aigc finance` commands: train, eval, classify, monitor, publish, deliveries, entities, digest, ui.

The commands live in sub-apps joined here with ``add_typer``: :mod:`~apps.finance_monitor.cli.models`
(train, eval, classify), :mod:`~apps.finance_monitor.cli.monitor` (monitor, publish, deliveries),
:mod:`~apps.finance_monitor.cli.entities` (entities, entities relink) and
:mod:`~apps.finance_monitor.cli.digest` (digest). Each parses
its options and calls a plain function; errors in the input print one line naming the file, row and
field, and exit with status 2 (:func:`~apps.finance_monitor.cli.options.command_errors`).
"""

from __future__ import annotations

import typer

from apps.finance_monitor.cli import digest, entities, models, monitor
from core.bench import register_bench
from core.ui.launch import app_ui_command

# `aigc bench monitor --items N --source redis|nats|folder`: publish -> stored, scored, evaluated.
register_bench("monitor", "bench.finance_monitor_bus:run")

app = typer.Typer(
    help=(
        "Financial news sentiment and topic monitor: fine-tuned classifiers score incoming "
        "headlines, trends per topic, and alerts when negative news surges."
    ),
    no_args_is_help=True,
)


app.add_typer(app_ui_command("finance"))
app.add_typer(models.app)
app.add_typer(monitor.app)
app.add_typer(entities.app, name="entities")
app.add_typer(digest.app)

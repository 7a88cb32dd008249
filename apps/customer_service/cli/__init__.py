"""`aigc support`: the customer-service commands, one typer sub-app per concern joined with ``add_typer``.

* :mod:`~apps.customer_service.cli.bot` — build, evaluate and serve the knowledge base and the bot
  (``ui``, ``index``, ``eval``, ``ask``, ``answering``, ``export-feedback``, ``sample-questions``,
  ``calibrate``);
* :mod:`~apps.customer_service.cli.gaps` — the knowledge-gap report (``gaps``);
* :mod:`~apps.customer_service.cli.models` — train and score the intent classifier and the answer
  model (``train-intents``, ``eval-intents``, ``finetune``, ``eval-answers``);
* :mod:`~apps.customer_service.cli.versions` — the guarded retraining loop and its model versions
  (``refresh``, ``versions``);
* :mod:`~apps.customer_service.cli.queue` — the hand-off queue (``queue``, ``take``, ``reply``,
  ``release``, ``resolve``, ``queue-stats``, ``deliveries``).

Sub-apps are added without a name, so their commands sit directly under ``aigc support``. Bad input
is turned into one error line and exit code 2 by :func:`core.console.exit_on_error` in each command.
"""

from __future__ import annotations

import typer

from apps.customer_service.cli import bot, gaps, models, queue, versions
from core.bench import register_bench
from core.ui.launch import app_ui_command

register_bench("concurrency", "bench.support_concurrency:run")

app = typer.Typer(
    help=(
        "Customer service: A retrieval-augmented support bot that answers agents' questions from the "
        "knowledge base, cites its sources and hands off to a human when unsure."
    ),
    no_args_is_help=True,
)
app.add_typer(app_ui_command("support"))
app.add_typer(bot.app)
app.add_typer(gaps.app)
app.add_typer(models.app)
app.add_typer(versions.app)
app.add_typer(queue.app)

__all__ = ["app"]

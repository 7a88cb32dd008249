"""`aigc recommend` commands: the typer app mounted by ``core.cli`` (entry point ``recommend``).

The commands live in sub-apps joined here with ``add_typer``: :mod:`.training` (``train``,
``eval``) and :mod:`.scoring` (``score``, the batch job). Each command only parses its flags and calls
a plain function; bad input becomes one ``error: ...`` line and exit code 2 through
:func:`core.console.exit_on_error`.
"""

from __future__ import annotations

import typer

from apps.recommender.cli import scoring, training
from core.ui.launch import app_ui_command

app = typer.Typer(
    help=(
        "Recommender: a behaviour-tuned text encoder, FAISS candidates and a learned ranker "
        "score top-k items per user in batch jobs."
    ),
    no_args_is_help=True,
)


app.add_typer(app_ui_command("recommend"))
app.add_typer(scoring.app)
app.add_typer(training.app)

__all__ = ["app"]

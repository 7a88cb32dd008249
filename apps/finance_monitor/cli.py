"""`aigc finance` commands."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help=(
        "Financial news sentiment and topic monitor: fine-tuned classifiers score incoming "
        "headlines, trends per topic, and alerts when negative news surges."
    ),
    no_args_is_help=True,
)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["finance"], port, address))

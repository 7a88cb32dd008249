"""`aigc support` commands."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Customer service: A retrieval-augmented support bot that answers agents' questions from the knowledge base, cites its sources and hands off to a human when unsure.", no_args_is_help=True)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["support"], port, address))

"""`aigc recommend` commands."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Recommender: Text-embedding recommender: a behaviour-tuned encoder, FAISS candidates and a learned ranker score top-k items per user in batch jobs.", no_args_is_help=True)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
) -> None:
    """Start only this app's Streamlit pages."""
    from core.cli import launch_ui

    raise typer.Exit(launch_ui(["recommend"], port, address))


from apps.recommender import cli_batch  # noqa: E402

app.registered_commands += cli_batch.app.registered_commands

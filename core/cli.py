"""The ``aigc`` command line.

Commands parse their arguments and call one plain function (spaCy's ``train_cli`` → ``train``
pattern); tests call the same functions. App commands (``aigc support``, ``aigc finance``,
``aigc recommend``) are mounted from the ``aigc.cli`` entry points, so ``core`` never imports
``apps``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated

from rich.markup import escape
from rich.text import Text

# Passive OpenMP waiting for every command, set before anything below imports torch: libgomp reads it
# once, when torch loads it, so a later setdefault (as `aigc bench` had) changes nothing. Spinning
# threads collapse on a shared CPU: on a busy 2-core box the finance model scored 60 items/s at
# 6.7 ms CPU per item with spinning threads and 112 items/s at 3.4 ms with passive waiting
# (docs/benchmarks/finance_monitor_bus.md). An explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import typer
from rich.table import Table

from core import __version__
from core.console import console, out, print_error
from core.errors import UserError
from core.plugins import GROUP_CLI, demo_preparers, load_group
from core.ui.launch import app_ui_command, check_ui_exposure, is_loopback, launch_ui

if __name__ == "__main__":  # pragma: no cover - exercised by a subprocess test
    # ``python -m core.cli``: run the importable module. Mounting the app plugins from ``__main__``
    # would import them while they import ``core.cli`` (a second copy), a circular import.
    from core.cli import main as _main

    _main()
    raise SystemExit(0)

logger = logging.getLogger(__name__)

app = typer.Typer(
    name="aigc",
    help="aigc-suite: fine-tuned small language models for support, finance news and recommendations.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = typer.Typer(
    help="Database schema (SQLite by default, PostgreSQL via AIGC_DB_URL).", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr, each line with its ``extra`` fields; ``verbose`` shows debug messages.

    On a terminal the lines go through rich; anywhere else (a pipe, a log file, CI) they are plain
    ``time LEVEL logger: message  key=value`` lines that no terminal width can wrap.
    """
    from core.log_fields import PLAIN_FORMAT, FieldsFormatter, StderrHandler

    if console.is_terminal:  # a person watching: rich's columns, wrapped to the window
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        handler.setFormatter(FieldsFormatter("%(message)s"))  # "Epoch done  epoch=2 macro_f1=0.87"
    else:  # a pipe, a file, CI or a service manager: one plain line per record, never wrapped
        handler = StderrHandler()
        handler.setFormatter(FieldsFormatter(PLAIN_FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    for noisy in ("httpx", "urllib3", "filelock", "huggingface_hub", "alembic", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False) -> None:
    setup_logging(verbose)


@app.command()
def version() -> None:
    """Print the suite's version."""
    out.print(f"aigc-suite {__version__}")


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the packaged models, their state and where they resolve on this machine (no network).

    Exits 1 when a default model is missing; an optional one (`mpnet-base`, the `accurate` extra) is
    listed with its state but never fails the command.
    """
    from core.models import list_models

    rows = list_models()
    if as_json:
        out.print_json(json.dumps(rows))
    else:
        table = Table(title="Default models")
        for col in ("name", "kind", "package", "status", "path"):
            table.add_column(col, overflow="fold")
        for row in rows:
            status = row["status"] + (" (optional)" if row["optional"] else "")
            style = "green" if row["status"] == "installed" else "yellow" if row["optional"] else "red"
            table.add_row(
                row["name"], row["kind"], row["package"], f"[{style}]{status}[/]", Text(str(row["path"]))
            )
        out.print(table)
    if any(row["status"] != "installed" and not row["optional"] for row in rows):
        raise typer.Exit(1)


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
    app_name: Annotated[
        list[str] | None, typer.Option("--app", help="Only these apps (support, finance, recommend).")
    ] = None,
    headless: Annotated[bool, typer.Option(help="Do not open a browser.")] = True,
    no_auth: Annotated[
        bool,
        typer.Option(
            "--no-auth", help="Serve on a non-loopback address although no user exists (no sign-in)."
        ),
    ] = False,
) -> None:
    """Start the Streamlit suite with every installed app's pages (sign-in on once a user exists)."""
    raise typer.Exit(launch_ui(app_name, port, address, headless, no_auth=no_auth))


@app.command("prepare-demo")
def prepare_demo(
    only: Annotated[list[str] | None, typer.Option("--app", help="Only these apps.")] = None,
) -> None:
    """Build each app's demo state (indexes, models, database rows) from its shipped sample data."""
    from core.paths import data_dir

    target = data_dir()
    for name, prepare in demo_preparers().items():
        if only and name not in only:
            continue
        console.print(f"[bold]{name}[/]: preparing demo data in {escape(str(target))}")
        prepare(target)
    console.print("[green]demo data ready[/]")


@db_app.command("upgrade")
def db_upgrade(
    url: Annotated[str | None, typer.Option(help="Database URL (default AIGC_DB_URL).")] = None,
) -> None:
    """Create or migrate every app's tables to the latest schema."""
    from core.schema import current_revisions, migrate

    migrate(url)
    out.print(f"schema at {', '.join(sorted(current_revisions(url))) or '(empty)'}")


@db_app.command("current")
def db_current(
    url: Annotated[str | None, typer.Option(help="Database URL (default AIGC_DB_URL).")] = None,
) -> None:
    """Show the schema revisions the database is at."""
    from core.schema import current_revisions

    out.print(", ".join(sorted(current_revisions(url))) or "(no schema yet: run `aigc db upgrade`)")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    engine: Annotated[
        str, typer.Option(help="local (uvicorn) or ray (Ray Serve; RAY_ADDRESS joins a cluster).")
    ] = "local",
    app_name: Annotated[
        list[str] | None, typer.Option("--app", help="Only these apps (support, finance, recommend).")
    ] = None,
    replicas: Annotated[int, typer.Option(help="Ray Serve replicas of the API (--engine ray).")] = 1,
    num_cpus: Annotated[float, typer.Option(help="CPUs reserved per Ray replica (--engine ray).")] = 1.0,
) -> None:
    """Serve the HTTP API: OpenAPI at /openapi.json, endpoints under /v1, keys from `aigc users api-key`."""
    from core.api.serve import serve

    serve(host, port, engine, app_name, replicas, num_cpus)  # type: ignore[arg-type]


def _register_bench() -> None:
    from core.bench.cli import bench

    app.command("bench")(bench)


_register_bench()


def _register_auth() -> None:
    from core.auth.cli import audit, users_app

    app.add_typer(users_app, name="users")
    app.command("audit")(audit)


_register_auth()


def _mount_apps() -> None:
    for name, sub in load_group(GROUP_CLI).items():
        if isinstance(sub, typer.Typer):
            app.add_typer(sub, name=name)


_mount_apps()


def _user_errors() -> tuple[type[BaseException], ...]:
    # Evaluated whenever an exception leaves the app, ``--help``'s SystemExit too: import nothing
    # heavy here. core.models.ModelNotFoundError is a FileNotFoundError and ConfigError a ValueError.
    errors: list[type[BaseException]] = [UserError, FileNotFoundError, ValueError]
    try:
        from core.storage import StorageError

        errors.append(StorageError)
    except ImportError:  # pragma: no cover - storage always ships
        pass
    return tuple(errors)


def main() -> None:
    """Console-script entry point: run the app; known errors print one clear line and exit 2."""
    try:
        app()
    except _user_errors() as err:
        print_error(err)
        sys.exit(2)


__all__ = ["UserError", "app", "app_ui_command", "check_ui_exposure", "is_loopback", "launch_ui", "main"]

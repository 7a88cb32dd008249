"""`aigc recommend score`: the batch-scoring job (:mod:`apps.recommender.batch.job`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from core.console import console, exit_on_error, fail

app = typer.Typer()

logger = logging.getLogger(__name__)


@app.command()
def score(
    out: Annotated[
        Path | None, typer.Option(help="Output file, .parquet or .csv (written atomically at the end).")
    ] = None,
    users: Annotated[
        str,
        typer.Option(help="'all' (every user of the model) or a file: .csv/.parquet with user_id, or .txt."),
    ] = "all",
    k: Annotated[int, typer.Option(min=1, help="Items per user.")] = 100,
    engine: Annotated[
        str, typer.Option(help="local (this process) or ray (RAY_ADDRESS or a local instance).")
    ] = "local",
    model: Annotated[
        str | None,
        typer.Option(
            help="Model directory (default: the demo model from `aigc demo`), or synthetic:items=N,..."
        ),
    ] = None,
    db: Annotated[
        bool, typer.Option("--db", help="Also write rows to recommend_* tables (AIGC_DB_URL).")
    ] = False,
    run_id: Annotated[
        str | None, typer.Option(help="Run key of DB rows (default: derived from the job).")
    ] = None,
    chunk_size: Annotated[
        int, typer.Option(min=1, help="Users per chunk (unit of work and of resume).")
    ] = 256,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Ray actors (default: one per cluster CPU), or chunks the local engine scores at once "
            "on threads (default: one per CPU core, at most 4).",
        ),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="BLAS/OpenMP threads per scorer; equal settings give bit-identical local and Ray output. "
            "0: the libraries' default.",
        ),
    ] = 1,
    restart: Annotated[
        bool, typer.Option(help="Discard chunks of an earlier, unfinished run of this job.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Score users in chunks and write top-k unseen items per user with score and reason.

    Resumable: killed and started again with the same arguments, the job continues from the
    chunks already in <out>.work/ and ends with exactly the output of an uninterrupted run.
    """
    if engine not in ("local", "ray"):
        raise fail(f"--engine must be local or ray, got {engine!r}")
    if out is None and not db:
        raise fail("nothing to write: pass --out PATH and/or --db")
    # Imported here, not at module level: every `aigc` command loads this module.
    from apps.recommender.batch.job import BatchError, read_users, run_batch
    from apps.recommender.batch.scorers import resolve_model
    from apps.recommender.config import BatchConfig
    from apps.recommender.errors import DataError
    from apps.recommender.model import ModelError
    from core.storage import StorageError

    errors = (BatchError, DataError, ModelError, StorageError, FileNotFoundError, ValueError, ImportError)
    with exit_on_error(*errors):
        user_list = None if users == "all" else read_users(users)  # bad input fails before the model
        factory = resolve_model(model)
        result = run_batch(
            factory,
            out,
            user_list,
            BatchConfig(
                k=k,
                chunk_size=chunk_size,
                engine=engine,  # type: ignore[arg-type]
                ray_workers=workers,
                local_workers=workers or 0,
                threads=threads or None,
            ),
            db=_db_url() if db else None,
            run_id=run_id,
            restart=restart,
            show_progress_bar=progress,
        )
    where = [str(result.out)] if result.out else []
    where += [f"database run {result.run_id}"] if db else []
    console.print(
        f"[green]done:[/green] {result.n_rows} rows for {result.n_users} users in {result.seconds:.1f}s "
        f"({result.chunks_resumed} of {result.n_chunks} chunks resumed) -> {', '.join(where)}"
    )


def _db_url() -> str:
    from core.storage import get_db_url

    return get_db_url()

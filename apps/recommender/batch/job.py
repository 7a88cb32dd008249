"""Resumable batch scoring: users in chunks -> top-k items per user with score and reason.

The job splits the user list into fixed chunks (chunk ``i`` is always the same users), scores each
chunk with a :class:`~apps.recommender.batch.engines.ChunkScorer` and writes it as
``chunk-000012.parquet`` into a work directory next to the output (``<out>.work/``), each file
written to a temporary name and renamed (:func:`core.atomic.atomic_path`), so a chunk file is
either complete or absent. ``manifest.json`` there records the job (users hash, k,
chunk size, model fingerprint, output). Killed and started again with the same arguments, the job
finds the manifest, skips the chunks already on disk and scores the rest; a work directory of a
different job is refused rather than mixed in. When every chunk is there, the output (Parquet or
CSV, by extension) is assembled in chunk order into a temporary file and renamed into place, DB
rows are replaced chunk by chunk (:mod:`apps.recommender.storage`), and the work directory is
removed. A run killed while assembling (fault point ``score.during_assembly``) leaves its chunk
files and a temporary output file; the next run removes the temporary file and assembles again. The
result is byte-for-byte the output of an uninterrupted run, whatever the engine:
chunks are the unit of work of both engines (:mod:`apps.recommender.batch.engines`).

Output columns: ``user_id`` (str), ``rank`` (int32, 1-based), ``item_id`` (str), ``score``
(float64, higher first) and ``reason`` (str). Items the user interacted with are never returned.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from apps.recommender.batch.engines import ScorerFactory, score_chunks_local
from apps.recommender.config import BatchConfig
from apps.recommender.errors import DataError
from core.atomic import atomic_path, write_bytes_atomic
from core.batching import forward_workers
from core.failpoints import failpoint

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
OUTPUT_COLUMNS = ("user_id", "rank", "item_id", "score", "reason")
OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
Engines = Literal["local", "ray"]


class BatchError(RuntimeError):
    """The job cannot run as asked (bad output path, a work directory of another job...)."""


@dataclass(frozen=True)
class BatchResult:
    """What a finished job did."""

    out: Path | None
    run_id: str
    n_users: int
    n_rows: int
    n_chunks: int
    chunks_scored: int
    chunks_resumed: int
    seconds: float


def output_format(out: str | Path) -> str:
    """``"parquet"`` or ``"csv"`` from the extension.

    Raises:
        BatchError: Any other extension.
    """
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise BatchError(f"{out}: unsupported output type; use .parquet or .csv")
    return fmt


def read_users(path: str | Path) -> list[str]:
    """User ids from a file: a ``user_id`` column (CSV/TSV/Parquet) or one id per line (``.txt``).

    Repeated ids are kept once (first occurrence), with a warning.

    Raises:
        FileNotFoundError: No such ``.txt`` file.
        DataError: No such table file, no ``user_id`` column, an empty id, or no ids at all.
    """
    from apps.recommender.cells import as_str
    from core.io.tables import read_frame

    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        lines = path.read_text(encoding="utf-8-sig").splitlines()
        while lines and not lines[-1].strip():
            lines.pop()
        values, first_row = pd.Series(lines, dtype=str).str.strip(), 1
    else:
        frame = read_frame(path, error=DataError)
        if "user_id" not in frame.columns:
            raise DataError(path, f"no 'user_id' column (columns: {list(frame.columns)})", field="user_id")
        values, first_row = as_str(frame["user_id"]), 1
    if values.empty:
        raise DataError(path, "no user ids")
    empty = (values == "").to_numpy().nonzero()[0]
    if len(empty):
        raise DataError(path, "empty user id", row=int(empty[0]) + first_row, field="user_id")
    users = list(dict.fromkeys(values.tolist()))
    if len(users) < len(values):
        logger.warning(
            "Repeated user ids scored once", extra={"path": str(path), "dropped": len(values) - len(users)}
        )
    return users


def work_dir_for(out: Path | None, run_id: str) -> Path:
    """``<out>.work`` next to the output; for a DB-only job, under the data directory."""
    if out is not None:
        return out.with_name(out.name + ".work")
    from core.paths import data_dir

    return data_dir() / "recommend" / "jobs" / run_id


def chunk_path(work: Path, index: int) -> Path:
    """File of chunk ``index``."""
    return work / f"chunk-{index:06d}.parquet"


def chunked(users: Sequence[str], size: int) -> list[list[str]]:
    """Fixed chunks of ``size`` users (the last may be shorter)."""
    return [list(users[i : i + size]) for i in range(0, len(users), size)]


def to_table(frame: pd.DataFrame, users: Sequence[str], k: int) -> pa.Table:
    """Validate a chunk's output and convert it to :data:`OUTPUT_SCHEMA`, ordered by user then rank.

    Raises:
        BatchError: Missing columns, unknown users, more than ``k`` rows for a user, or NaN scores.
    """
    missing = [c for c in OUTPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise BatchError(f"scorer output lacks column(s) {missing}")
    frame = frame[list(OUTPUT_COLUMNS)].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    position = {u: i for i, u in enumerate(users)}
    pos = frame["user_id"].map(position)
    if pos.isna().any():
        raise BatchError(
            f"scorer returned user(s) outside the chunk: {frame['user_id'][pos.isna()].iloc[0]!r}"
        )
    if len(frame) and frame.groupby("user_id").size().max() > k:
        raise BatchError(f"scorer returned more than k={k} rows for a user")
    if frame["score"].isna().any():
        raise BatchError("scorer returned NaN scores")
    frame = frame.assign(_pos=pos.to_numpy()).sort_values(["_pos", "rank"], kind="stable")
    frame = frame.drop(columns="_pos").reset_index(drop=True)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["reason"] = frame["reason"].fillna("").astype(str)
    return pa.Table.from_pandas(frame, schema=OUTPUT_SCHEMA, preserve_index=False).replace_schema_metadata(
        None
    )


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file to a temporary name in its folder, then rename it into place."""
    with atomic_path(path, suffix=".tmp") as tmp:
        pq.write_table(table, tmp)


def _users_hash(users: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(users)).encode("utf-8")).hexdigest()


def _job_spec(
    factory: ScorerFactory, users: Sequence[str], out: Path | None, config: BatchConfig
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": factory.fingerprint(),
        "users_sha256": _users_hash(users),
        "n_users": len(users),
        "k": config.k,
        "chunk_size": config.chunk_size,
        "threads": config.threads,
        "out": str(out.resolve()) if out is not None else None,
        "format": output_format(out) if out is not None else None,
    }


def _open_work_dir(work: Path, spec: dict[str, Any], restart: bool) -> None:
    manifest = work / MANIFEST
    if work.exists() and restart:
        shutil.rmtree(work)
    if manifest.is_file():
        try:
            found = json.loads(manifest.read_text(encoding="utf-8")).get("job")
        except (json.JSONDecodeError, AttributeError) as err:
            raise BatchError(
                f"{manifest}: corrupt manifest ({err}); delete {work} or pass --restart"
            ) from err
        if found != spec:
            diff = sorted(k for k in spec if not isinstance(found, dict) or found.get(k) != spec[k])
            raise BatchError(
                f"{work} holds chunks of another job (differs in {', '.join(diff)}); "
                "delete it or pass --restart to start over"
            )
        logger.info("Resuming batch job", extra={"work_dir": str(work)})
        return
    if work.exists() and any(not p.name.endswith(".tmp") for p in work.iterdir()):
        raise BatchError(f"{work} exists without {MANIFEST}; delete it or pass --restart")
    work.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"job": spec}, indent=2, sort_keys=True)
    # A leftover ".manifest.json.*.tmp" is removed with the stale chunk files.
    write_bytes_atomic(manifest, text.encode("utf-8"), suffix=".tmp")


def _done(path: Path) -> bool:
    """A chunk file that exists and whose footer reads (renames make partial files unlikely)."""
    if not path.is_file():
        return False
    try:
        pq.read_metadata(path)
        return True
    except (OSError, pa.ArrowException):
        logger.warning("Unreadable chunk file is scored again", extra={"path": str(path)})
        path.unlink()
        return False


def _remove_stale_outputs(out: Path) -> None:
    """Temporary output files of a run killed while assembling (``.<name>.*.tmp`` beside ``out``)."""
    for stale in out.parent.glob(f".{glob.escape(out.name)}.*.tmp"):
        logger.info("Removing a temporary output of a killed run", extra={"path": str(stale)})
        stale.unlink(missing_ok=True)


def _assemble(work: Path, n_chunks: int, out: Path) -> int:
    """Concatenate chunk files in order into ``out`` (temporary file + rename); returns rows."""
    _remove_stale_outputs(out)
    rows = 0
    with atomic_path(out, suffix=".tmp") as tmp:
        if output_format(out) == "parquet":
            with pq.ParquetWriter(tmp, OUTPUT_SCHEMA) as writer:
                for i in range(n_chunks):
                    table = pq.read_table(chunk_path(work, i), schema=OUTPUT_SCHEMA)
                    writer.write_table(table)
                    rows += table.num_rows
                    failpoint("score.during_assembly")  # a kill here leaves a half-written temp file
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(",".join(OUTPUT_COLUMNS) + "\n")
                for i in range(n_chunks):
                    frame = pq.read_table(chunk_path(work, i), schema=OUTPUT_SCHEMA).to_pandas()
                    frame.to_csv(fh, header=False, index=False, lineterminator="\n")
                    rows += len(frame)
                    failpoint("score.during_assembly")
    return rows


def _write_db(engine: Engine, run_id: str, work: Path, n_chunks: int, spec: dict[str, Any]) -> int:
    from apps.recommender import storage
    from core.schema import migrate
    from core.storage import session_scope

    migrate(engine)
    storage.start_run(engine, run_id, spec["model"], spec["k"], spec["n_users"], spec["out"])
    rows = 0
    for i in range(n_chunks):
        frame = pq.read_table(chunk_path(work, i), schema=OUTPUT_SCHEMA).to_pandas()
        with session_scope(engine) as session:
            rows += storage.replace_rows(session, run_id, frame)
    storage.finish_run(engine, run_id)
    return rows


def run_batch(
    factory: ScorerFactory,
    out: str | Path | None,
    users: Iterable[str] | None = None,
    config: BatchConfig | None = None,
    db: Engine | str | None = None,
    run_id: str | None = None,
    restart: bool = False,
    show_progress_bar: bool = True,
) -> BatchResult:
    """Score users in chunks and write top-k per user to a file and/or the database, resumably.

    Args:
        factory: Loads the model (in this process, or in each Ray worker).
        out: ``.parquet`` or ``.csv`` output path, or ``None`` for DB-only.
        users: User ids to score; ``None`` scores every user the model knows.
        config: k, chunk size, engine.
        db: Engine or URL to write ``recommend_*`` rows to (``None``: no DB rows).
        run_id: Run key of the DB rows (default derived from the job: same job, same id).
        restart: Discard the work directory of an earlier run instead of resuming it.
        show_progress_bar: tqdm bar over chunks.

    Returns:
        Counts and timing.

    Raises:
        BatchError: No output given, bad extension, or a work directory of another job.
    """
    import time

    started = time.perf_counter()
    config = config or BatchConfig()
    if out is None and db is None:
        raise BatchError("nothing to write: give an output path and/or a database")
    out = Path(out) if out is not None else None
    if out is not None:
        output_format(out)
    # The model is loaded here only to list its users or to score locally (not for a finished job).
    local = factory() if users is None else None
    user_list = list(users) if users is not None else local.user_ids()  # type: ignore[union-attr]
    if not user_list:
        raise BatchError("no users to score")
    spec = _job_spec(factory, user_list, out, config)
    run_id = run_id or "batch-" + hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    work = work_dir_for(out, run_id)
    _open_work_dir(work, spec, restart)
    for stale in work.glob(".*.tmp"):
        stale.unlink()  # a temporary chunk file of a killed run
    chunks = chunked(user_list, config.chunk_size)
    pending = [(i, c) for i, c in enumerate(chunks) if not _done(chunk_path(work, i))]
    logger.info(
        "Batch job",
        extra={
            "users": len(user_list),
            "chunks": len(chunks),
            "pending": len(pending),
            "engine": config.engine,
        },
    )

    def sink(index: int, frame: pd.DataFrame) -> None:
        write_atomic(to_table(frame, chunks[index], config.k), chunk_path(work, index))

    if pending and config.engine == "ray":
        from apps.recommender.batch.engines import score_chunks_ray  # imports Ray only when used

        score_chunks_ray(
            factory, pending, config.k, sink, config.ray_workers, show_progress_bar, config.threads
        )
    elif pending:
        score_chunks_local(
            factory,
            pending,
            config.k,
            sink,
            show_progress_bar,
            local,
            config.threads,
            forward_workers(config.local_workers),
        )
    rows = _assemble(work, len(chunks), out) if out is not None else 0
    if db is not None:
        from core.storage import engine_for

        with engine_for(db) as engine:
            rows = _write_db(engine, run_id, work, len(chunks), spec)
    if not config.keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
    result = BatchResult(
        out=out,
        run_id=run_id,
        n_users=len(user_list),
        n_rows=rows,
        n_chunks=len(chunks),
        chunks_scored=len(pending),
        chunks_resumed=len(chunks) - len(pending),
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info("Batch job done", extra=asdict(result) | {"out": str(out)})
    return result

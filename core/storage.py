"""Relational storage: one engine from ``AIGC_DB_URL``, UTC timestamps, idempotent upserts.

The suite keeps its state in one database: SQLite in the data directory by default (WAL mode,
foreign keys on), PostgreSQL for teams (``AIGC_DB_URL=postgresql+psycopg2://user:pw@host/db``).
Each app owns one SQLAlchemy metadata whose tables carry its prefix (``support_*``,
``finance_*``, ``recommend_*``) and one Alembic branch of migrations, run by :mod:`core.schema`::

    from core.schema import migrate, register_migrations

    class SupportBase(DeclarativeBase):
        metadata = new_metadata()
        type_annotation_map = TYPE_ANNOTATION_MAP

    register_migrations("support", Path(__file__).parent / "migrations" / "versions", SupportBase.metadata)

    engine = create_engine()
    migrate(engine)
    with session_scope(engine) as session:
        upsert(session, Ticket, rows, key_columns=["ticket_id"])

Timestamps are stored in UTC and always come back as timezone-aware UTC datetimes
(:class:`UTCDateTime`; ``Mapped[datetime]`` maps to it through :data:`TYPE_ANNOTATION_MAP`).
Core's own table, ``core_artifacts``, lives in ``core.artifact_registry``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.engine.interfaces import ExceptionContext
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from core.paths import data_dir

logger = logging.getLogger(__name__)

DB_URL_ENV = "AIGC_DB_URL"
SQLITE_BUSY_TIMEOUT_MS = 30_000
PG_CONNECT_TIMEOUT_S = 10

# Named constraints make Alembic migrations reproducible and let batch mode (SQLite) drop them.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class StorageError(RuntimeError):
    """The database cannot be used as configured; the message says which one and what to do."""


# --- URLs and engines -----------------------------------------------------------------------------


def get_db_url() -> str:
    """The database URL: ``AIGC_DB_URL`` or a SQLite file ``data_dir() / "aigc.db"``.

    Returns:
        A SQLAlchemy URL string (``postgres://`` is normalised to ``postgresql://``).
    """
    url = os.environ.get(DB_URL_ENV, "").strip()
    if not url:
        return f"sqlite:///{data_dir() / 'aigc.db'}"
    if url.startswith("postgres://"):  # Heroku-style scheme, which SQLAlchemy no longer accepts
        url = "postgresql://" + url.removeprefix("postgres://")
    return url


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***``, safe for logs and error messages.

    Malformed URLs are masked too: ``user:secret@host/db`` (no scheme) or a non-numeric port.
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        text = str(url)
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "", text
        credentials, at, host = rest.rpartition("@")
        if not at:
            return text
        user, colon, _ = credentials.partition(":")
        return f"{scheme}{sep}{user}{':***' if colon else ''}@{host}"


def db_error_text(err: BaseException) -> str:
    """The first line of a database error without SQLAlchemy's SQL echo and background link."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    text = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"\s*\[SQL: .*$", "", text)


def create_engine(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """An engine for ``url`` (default :func:`get_db_url`) with the suite's connection settings.

    SQLite: the parent directory is created; every connection turns on foreign keys, WAL
    journaling and a busy timeout. PostgreSQL: connections are pre-pinged and time out after
    ``PG_CONNECT_TIMEOUT_S`` seconds. Failing to connect raises :class:`StorageError` naming
    the URL with its password masked.

    Args:
        url: A SQLAlchemy URL; ``None`` uses ``AIGC_DB_URL`` or the default SQLite file.
        **kwargs: Passed to :func:`sqlalchemy.create_engine`.

    Returns:
        The engine (connections are opened lazily).

    Raises:
        StorageError: The URL is malformed or its driver is not installed.
    """
    raw = url if url is not None else get_db_url()
    try:
        parsed = make_url(raw)
        parsed.port  # noqa: B018 - a non-numeric port fails here, not at the first connection
    except (ArgumentError, ValueError) as err:
        reason = "its port is not a number" if "invalid literal for int()" in str(err) else str(err)
        raise StorageError(
            f"Invalid database URL {mask_url(raw)!r} ({reason}); set {DB_URL_ENV} to e.g. "
            "'sqlite:////path/aigc.db' or 'postgresql+psycopg2://user:password@host:5432/db'"
        ) from err
    backend = parsed.get_backend_name()
    if parsed.drivername == "postgresql" and not importlib.util.find_spec("psycopg"):
        # SQLAlchemy 2.1 defaults to psycopg 3; the suite depends on psycopg2-binary.
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if backend == "sqlite":
        _make_sqlite_parent(parsed)
    elif backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        if "connect_timeout" not in parsed.query:
            kwargs["connect_args"] = {
                "connect_timeout": PG_CONNECT_TIMEOUT_S,
                **kwargs.get("connect_args", {}),
            }
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as err:
        raise StorageError(
            f"Cannot create an engine for {mask_url(parsed)} ({err}); is its driver installed "
            "(psycopg2-binary for PostgreSQL)?"
        ) from err
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_connect_hook(in_memory=_sqlite_in_memory(parsed)))
    event.listen(engine, "handle_error", _connect_error_to_storage_error)
    return engine


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _make_sqlite_parent(url: URL) -> None:
    if _sqlite_in_memory(url) or (url.database or "").startswith("file:"):
        return
    parent = Path(url.database or "").expanduser().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StorageError(f"Cannot create the folder {parent} for SQLite database {url}: {err}") from err


def _sqlite_connect_hook(in_memory: bool) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if not in_memory:
            # WAL lets the UI read while a job writes; NORMAL sync is safe with WAL.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


def _connect_error_to_storage_error(ctx: ExceptionContext) -> BaseException | None:
    # No Connection object means the error happened while connecting (not in a statement).
    if ctx.connection is not None or ctx.is_pre_ping or ctx.engine is None:
        return None
    reason = str(ctx.original_exception).strip().splitlines()[0] if str(ctx.original_exception) else "unknown"
    return StorageError(
        f"Cannot connect to database {mask_url(ctx.engine.url)}: {reason}. Check that the server is "
        f"running and reachable and the credentials are right, or point {DB_URL_ENV} at another "
        "database (unset it to use the local SQLite file)."
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; objects stay readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block ends and rolls back if it raises.

    Args:
        engine: The engine to bind to.

    Yields:
        The session; objects loaded in it stay readable after the block.
    """
    with session_factory(engine)() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def engine_for(engine_or_url: Engine | str | URL | None = None) -> Iterator[Engine]:
    """``engine_or_url`` as an engine; one created here from a URL is disposed afterwards.

    Args:
        engine_or_url: An engine (used as is), a URL, or ``None`` for :func:`get_db_url`.

    Yields:
        The engine.
    """
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = create_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


# --- Types and declarative bases ------------------------------------------------------------------


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC that always reads back as an aware UTC ``datetime``.

    Aware values in any timezone are converted to UTC; SQLite stores them naive (it has no
    timezone type), PostgreSQL as ``timestamp with time zone``. Naive values are rejected with
    ``ValueError`` rather than guessed at: attach a timezone (``utcnow()``,
    ``dt.replace(tzinfo=UTC)``).
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC (naive UTC on SQLite); reject naive or non-datetime values."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"UTCDateTime needs a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} is ambiguous; attach a timezone "
                "(core.storage.utcnow() or dt.replace(tzinfo=datetime.UTC))"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return an aware UTC datetime."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


TYPE_ANNOTATION_MAP: dict[Any, Any] = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


def new_metadata() -> sa.MetaData:
    """A fresh ``MetaData`` with the suite's constraint naming convention (one per app)."""
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


class CoreBase(DeclarativeBase):
    """Declarative base for core's own tables (``core_*``, Alembic branch ``core``)."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


# --- Idempotent writes ----------------------------------------------------------------------------


def upsert(
    session: Session,
    model: type[Any] | sa.Table,
    rows: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
    update_columns: Sequence[str] | None = None,
) -> None:
    """Insert ``rows``, or update the existing rows with the same natural key.

    Uses ``INSERT ... ON CONFLICT`` on SQLite and PostgreSQL, so writing the same rows twice
    leaves one row per key. Rows repeating a key within one call collapse to the last one.

    Args:
        session: The session to execute in (the caller commits).
        model: A mapped class (row keys are attribute names) or a ``Table`` (column names).
        rows: Rows as mappings; every row needs the same keys, including all ``key_columns``.
        key_columns: The natural key; must match a primary key or unique constraint exactly.
        update_columns: Columns overwritten on conflict; default every non-key column given.
            Columns with ``onupdate=`` are refreshed too. An empty list keeps existing rows
            unchanged (``DO NOTHING``).

    Raises:
        ValueError: Unknown columns, rows missing key or differing columns, or no unique
            constraint on ``key_columns``.
        StorageError: The database is neither SQLite nor PostgreSQL.
    """
    if not rows:
        return
    mapper = None if isinstance(model, sa.Table) else sa.inspect(model)
    table: sa.Table = model if mapper is None else mapper.local_table  # type: ignore[assignment]
    columns = table.c if mapper is None else mapper.columns
    key_cols = _validate_upsert(table, columns, rows, key_columns)

    # Last row wins for a repeated key: PostgreSQL refuses to update one row twice in a statement.
    unique = {tuple(row[k] for k in key_columns): dict(row) for row in rows}
    names = list(rows[0])
    updates = [n for n in names if n not in key_columns] if update_columns is None else list(update_columns)
    unknown = [n for n in updates if n not in columns]
    if unknown:
        raise ValueError(f"update_columns {unknown} are not columns of table {table.name}")

    dialect = session.get_bind(mapper=mapper).dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise StorageError(f"upsert supports SQLite and PostgreSQL, not {dialect}")
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    stmt = insert(model)
    if updates:
        set_: dict[sa.Column[Any], Any] = {columns[n]: stmt.excluded[columns[n].name] for n in updates}
        set_.update(_onupdate_values(table, skip=set(set_)))
        stmt = stmt.on_conflict_do_update(index_elements=key_cols, set_=set_)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=key_cols)
    session.execute(stmt, list(unique.values()))
    logger.debug("Upserted rows", extra={"table": table.name, "rows": len(unique)})


def _onupdate_values(table: sa.Table, skip: set[sa.Column[Any]]) -> dict[sa.Column[Any], Any]:
    """``onupdate=`` defaults, which ON CONFLICT DO UPDATE would otherwise not apply (e.g. ``updated_at``)."""
    values: dict[sa.Column[Any], Any] = {}
    for col in table.columns:
        default = col.onupdate
        if col in skip or not isinstance(default, sa.ColumnDefault):
            continue
        values[col] = default.arg(None) if default.is_callable else default.arg  # type: ignore[operator]
    return values


def _validate_upsert(
    table: sa.Table, columns: Any, rows: Sequence[Mapping[str, Any]], key_columns: Sequence[str]
) -> list[sa.Column[Any]]:
    if not key_columns:
        raise ValueError(f"upsert into {table.name} needs key_columns (the natural key)")
    missing = [k for k in key_columns if k not in columns]
    if missing:
        raise ValueError(f"key_columns {missing} are not columns of table {table.name}")
    names = set(rows[0])
    for i, row in enumerate(rows):
        if set(row) != names:
            raise ValueError(f"row {i} for {table.name} has keys {sorted(row)}, row 0 has {sorted(names)}")
        absent = [k for k in key_columns if k not in row]
        if absent:
            raise ValueError(f"row {i} for {table.name} lacks key column(s) {absent}")
    unknown = sorted(n for n in names if n not in columns)
    if unknown:
        raise ValueError(f"rows for {table.name} have unknown column(s) {unknown}")
    key_cols = [columns[k] for k in key_columns]
    wanted = {c.name for c in key_cols}
    unique_sets = [
        {c.name for c in con.columns} for con in table.constraints if isinstance(con, sa.UniqueConstraint)
    ]
    unique_sets += [{c.name for c in table.primary_key.columns}]
    unique_sets += [{c.name for c in ix.columns} for ix in table.indexes if ix.unique]
    if wanted not in unique_sets:
        raise ValueError(
            f"key_columns {list(key_columns)} of {table.name} are not a primary key or unique constraint; "
            "add UniqueConstraint(...) so ON CONFLICT can find existing rows"
        )
    return key_cols


__all__ = [
    "TYPE_ANNOTATION_MAP",
    "CoreBase",
    "StorageError",
    "UTCDateTime",
    "create_engine",
    "db_error_text",
    "engine_for",
    "get_db_url",
    "mask_url",
    "new_metadata",
    "session_factory",
    "session_scope",
    "upsert",
    "utcnow",
]

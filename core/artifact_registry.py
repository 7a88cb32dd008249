"""Core's artifact registry: which trained models and other outputs exist, and where.

Apps record what they write (``record_artifact("classifier", out_dir, model_id="minilm-l6",
metadata=metrics)``) and the UI lists it. The table, ``core_artifacts``, is created by core's
first migration (``aigc db upgrade`` / :func:`core.schema.migrate`); the path is the natural
key, so recording the same output again updates its row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from core.storage import CoreBase, StorageError, engine_for, mask_url, session_scope, upsert, utcnow

logger = logging.getLogger(__name__)


class Artifact(CoreBase):
    """A trained model or other output on disk, recorded by the app that wrote it."""

    __tablename__ = "core_artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64), index=True)
    path: Mapped[str] = mapped_column(sa.String(1024), unique=True)
    model_id: Mapped[str | None] = mapped_column(sa.String(256), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # ``metadata`` is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)


def record_artifact(
    kind: str,
    path: str | Path,
    *,
    model_id: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    engine: Engine | str | None = None,
) -> Artifact:
    """Record (or re-record) an artifact; the path is the natural key, so this is idempotent.

    Args:
        kind: What it is, e.g. ``"classifier"``, ``"lora-adapter"``, ``"kb"``.
        path: Where it lives; local paths are stored absolute.
        model_id: The base model it was built from, if any.
        metadata: JSON-serialisable details (metrics, seed, config).
        engine: Engine or URL; default :func:`core.storage.get_db_url`. The database must be
            migrated (``aigc db upgrade``).

    Returns:
        The stored row (created_at is the time of this call, in UTC).

    Raises:
        ValueError: Empty or overlong ``kind``, or metadata that is not JSON-serialisable.
        StorageError: The database has no ``core_artifacts`` table yet, or cannot be reached.
    """
    if not kind.strip() or len(kind) > 64:
        raise ValueError(f"artifact kind must be a non-empty string of at most 64 characters, got {kind!r}")
    meta = dict(metadata or {})
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise ValueError(f"artifact metadata must be JSON-serialisable: {err}") from err
    text = str(path)
    stored = text if "://" in text else str(Path(text).expanduser().resolve())
    row = {"kind": kind, "path": stored, "model_id": model_id, "created_at": utcnow(), "meta": meta}
    with engine_for(engine) as eng, _needs_core_tables(eng), session_scope(eng) as session:
        upsert(session, Artifact, [row], key_columns=["path"])
        artifact = session.scalars(sa.select(Artifact).where(Artifact.path == stored)).one()
    logger.info("Recorded artifact", extra={"kind": kind, "path": stored, "model_id": model_id})
    return artifact


def list_artifacts(
    kind: str | None = None,
    *,
    model_id: str | None = None,
    limit: int | None = None,
    engine: Engine | str | None = None,
) -> list[Artifact]:
    """Recorded artifacts, newest first.

    Args:
        kind: Only this kind.
        model_id: Only artifacts built from this model.
        limit: At most this many.
        engine: Engine or URL; default :func:`core.storage.get_db_url`.

    Returns:
        The matching rows.

    Raises:
        ValueError: ``limit`` below 1.
        StorageError: The database has no ``core_artifacts`` table yet, or cannot be reached.
    """
    stmt = sa.select(Artifact).order_by(Artifact.created_at.desc(), Artifact.id.desc())
    if kind is not None:
        stmt = stmt.where(Artifact.kind == kind)
    if model_id is not None:
        stmt = stmt.where(Artifact.model_id == model_id)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be a positive number of artifacts, got {limit}")
        stmt = stmt.limit(limit)
    with engine_for(engine) as eng, _needs_core_tables(eng), session_scope(eng) as session:
        return list(session.scalars(stmt))


@contextmanager
def _needs_core_tables(engine: Engine) -> Iterator[None]:
    try:
        yield
    except DBAPIError as err:
        if sa.inspect(engine).has_table(Artifact.__tablename__):
            raise
        raise StorageError(
            f"Database {mask_url(engine.url)} has no {Artifact.__tablename__} table yet: run "
            "`aigc db upgrade` (or core.schema.migrate()) first"
        ) from err


__all__ = ["Artifact", "list_artifacts", "record_artifact"]

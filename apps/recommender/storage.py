"""Recommender tables (``recommend_*``, Alembic branch ``recommend``): batch-scoring runs and their rows.

* ``recommend_runs``: one row per batch job (natural key ``run_id``): model, k, user count,
  output path, status (``running`` / ``done``), start and finish times.
* ``recommend_recommendations``: top-k rows of a run, keyed by ``(run_id, user_id, rank)``.

Rows of a chunk of users are replaced in one transaction (delete that chunk's users, insert), so
writing a chunk again after a kill or a rerun leaves exactly the rows of one uninterrupted run.
The schema is created by ``core.storage.migrate()`` (``aigc db upgrade``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from core.schema import register_migrations as _register_migrations
from core.storage import TYPE_ANNOTATION_MAP, new_metadata, session_scope, upsert, utcnow

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
_CHUNK = 500  # ids per IN (...) clause; stays under SQLite's bound-parameter limit


class RecommendBase(DeclarativeBase):
    """Declarative base of the recommender's tables."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Run(RecommendBase):
    """One batch-scoring job."""

    __tablename__ = "recommend_runs"

    run_id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(1024))
    k: Mapped[int]
    n_users: Mapped[int]
    output: Mapped[str | None] = mapped_column(sa.String(2048))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)  # running | done
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]


class Recommendation(RecommendBase):
    """One recommended item for one user in one run."""

    __tablename__ = "recommend_recommendations"

    run_id: Mapped[str] = mapped_column(
        sa.String(128), sa.ForeignKey("recommend_runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(sa.String(256), primary_key=True, index=True)
    rank: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(sa.String(256))
    score: Mapped[float]
    reason: Mapped[str] = mapped_column(sa.Text)


def register_migrations() -> None:
    """Register the ``recommend`` Alembic branch with core (done on import of this module)."""
    _register_migrations("recommend", MIGRATIONS_DIR, RecommendBase.metadata)


register_migrations()


def start_run(engine: Engine, run_id: str, model: str, k: int, n_users: int, output: str | None) -> None:
    """Create or reset the run row to ``running`` (idempotent by ``run_id``)."""
    row = {
        "run_id": run_id,
        "model": model,
        "k": k,
        "n_users": n_users,
        "output": output,
        "status": "running",
        "started_at": utcnow(),
        "finished_at": None,
    }
    with session_scope(engine) as session:
        existing = session.get(Run, run_id)
        if existing is not None and existing.status == "running":
            row["started_at"] = existing.started_at  # a resumed job keeps its start time
        upsert(session, Run, [row], key_columns=["run_id"])


def finish_run(engine: Engine, run_id: str) -> None:
    """Mark the run ``done``."""
    with session_scope(engine) as session:
        session.execute(
            sa.update(Run).where(Run.run_id == run_id).values(status="done", finished_at=utcnow())
        )


def replace_rows(session: Session, run_id: str, frame: pd.DataFrame) -> int:
    """Replace the rows of the users in ``frame`` for ``run_id`` (the caller commits).

    Args:
        session: Open session.
        run_id: The run.
        frame: Batch output: ``user_id``, ``rank``, ``item_id``, ``score``, ``reason``.

    Returns:
        Rows inserted.
    """
    users = list(dict.fromkeys(frame["user_id"].astype(str)))
    for start in range(0, len(users), _CHUNK):
        session.execute(
            sa.delete(Recommendation).where(
                Recommendation.run_id == run_id, Recommendation.user_id.in_(users[start : start + _CHUNK])
            )
        )
    rows = [
        {
            "run_id": run_id,
            "user_id": str(u),
            "rank": int(r),
            "item_id": str(i),
            "score": float(s),
            "reason": str(reason),
        }
        for u, r, i, s, reason in frame[["user_id", "rank", "item_id", "score", "reason"]].itertuples(
            index=False
        )
    ]
    for start in range(0, len(rows), _CHUNK):
        session.execute(sa.insert(Recommendation), rows[start : start + _CHUNK])
    return len(rows)


def runs(engine: Engine) -> pd.DataFrame:
    """All runs, newest first."""
    with engine.connect() as conn:
        return pd.read_sql(sa.select(Run).order_by(Run.started_at.desc()), conn)


def recommendations(engine: Engine, run_id: str, user_ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Rows of a run (optionally some users), ordered by user and rank."""
    stmt = sa.select(
        Recommendation.user_id,
        Recommendation.rank,
        Recommendation.item_id,
        Recommendation.score,
        Recommendation.reason,
    ).where(Recommendation.run_id == run_id)
    if user_ids is not None:
        stmt = stmt.where(Recommendation.user_id.in_([str(u) for u in user_ids]))
    with engine.connect() as conn:
        frame = pd.read_sql(stmt.order_by(Recommendation.user_id, Recommendation.rank), conn)
    return frame


def latest_run(engine: Engine, model: str) -> tuple[str, int] | None:
    """``(run_id, k)`` of the newest finished run scored with ``model`` (a model fingerprint), or None."""
    stmt = (
        sa.select(Run.run_id, Run.k)
        .where(Run.model == model, Run.status == "done")
        .order_by(Run.finished_at.desc(), Run.run_id)
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else (str(row.run_id), int(row.k))


def user_rows(engine: Engine, run_id: str, user_id: str, k: int) -> list[tuple[int, str, float, str]]:
    """A user's first ``k`` rows of a run as ``(rank, item_id, score, reason)``, best first (serving path)."""
    stmt = (
        sa.select(Recommendation.rank, Recommendation.item_id, Recommendation.score, Recommendation.reason)
        .where(Recommendation.run_id == run_id, Recommendation.user_id == str(user_id))
        .order_by(Recommendation.rank)
        .limit(k)
    )
    with engine.connect() as conn:
        return [(int(r.rank), str(r.item_id), float(r.score), str(r.reason)) for r in conn.execute(stmt)]

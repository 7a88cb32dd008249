"""Finance monitor tables (``finance_*``, Alembic branch ``finance``) and the queries on them.

* ``finance_items``: one row per news item (natural key: item id); ``group_id`` names the
  near-duplicate group (the id of the first copy), so syndicated copies count once.
* ``finance_scores``: sentiment and topic per item *and model version*; scoring again with a
  new model adds rows, so history is kept; the same version overwrites its own row.
* ``finance_alerts`` / ``finance_alert_items``: raised alerts and the items behind them.
* ``finance_files``: files seen by ingestion (path, size, mtime, content hash, outcome), so a
  file, or a copy of it under another name, is processed once.
* ``finance_deliveries``: the alert outbox, one row per (alert, sink), written in the alert's
  transaction and worked off by :mod:`apps.finance_monitor.outbox` (pending -> delivered | dead).
* ``finance_watermarks``: how far the alert rules have evaluated the scores of each model
  version (the highest ``finance_scores.id`` evaluated), advanced in the alerts' transaction.
* ``finance_entity_links``: the companies (tickers) each item mentions, one row per (item, entity),
  with how it was found; ``finance_linked_items`` records which linker version (rules and watch
  list) linked each item, so an item linked to no entity is told apart from one never linked, and
  a changed watch list knows what to re-link. Both are written in the scores' transaction.
* ``finance_alert_digests``: one digest per alert (:mod:`apps.finance_monitor.digests`), written in
  the alert's transaction and again whenever its items change; ``items_key`` names the item set it
  was computed from, so a digest older than its alert's items is recomputed on demand.

The schema is created by ``core.storage.migrate()`` (``aigc db upgrade``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from apps.finance_monitor.sources import MAX_ORIGIN_LENGTH, MAX_SOURCE_LENGTH, MAX_URL_LENGTH, NewsItem
from core.outbox import OutboxColumns
from core.schema import register_migrations as _register_migrations
from core.storage import TYPE_ANNOTATION_MAP, new_metadata, upsert, utcnow

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations" / "versions"
#: Longest file path ``finance_files`` records (ingestion refuses a file at a longer one).
MAX_FILE_PATH_LENGTH = 1024
_CHUNK = 500  # ids per IN (...) clause; stays under SQLite's bound-parameter limit


class FinanceBase(DeclarativeBase):
    """Declarative base of the finance monitor's tables."""

    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Item(FinanceBase):
    """A news item as ingested."""

    __tablename__ = "finance_items"

    id: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(index=True)
    # The readers make items fit source, url and origin (apps.finance_monitor.sources).
    source: Mapped[str] = mapped_column(sa.String(MAX_SOURCE_LENGTH), index=True)
    title: Mapped[str] = mapped_column(sa.Text)
    body: Mapped[str | None] = mapped_column(sa.Text)
    url: Mapped[str | None] = mapped_column(sa.String(MAX_URL_LENGTH))
    tickers: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    group_id: Mapped[str] = mapped_column(sa.String(128), index=True)
    origin: Mapped[str | None] = mapped_column(sa.String(MAX_ORIGIN_LENGTH))
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)


class Score(FinanceBase):
    """Labels of one item by one model version."""

    __tablename__ = "finance_scores"
    __table_args__ = (sa.UniqueConstraint("item_id", "model_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[str] = mapped_column(
        sa.String(128), sa.ForeignKey("finance_items.id", ondelete="CASCADE"), index=True
    )
    model_version: Mapped[str] = mapped_column(sa.String(256), index=True)
    sentiment: Mapped[str] = mapped_column(sa.String(64))
    sentiment_confidence: Mapped[float]
    topic: Mapped[str | None] = mapped_column(sa.String(128), index=True)
    topic_confidence: Mapped[float | None]
    # {"sentiment": {label: p, ...}, "topic": {label: p, ...}}
    probabilities: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scored_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Alert(FinanceBase):
    """One incident: a rule's metric crossed its threshold for one topic/entity/source."""

    __tablename__ = "finance_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(sa.String(128), index=True)
    scope: Mapped[str] = mapped_column(sa.String(16))  # topic | entity | source | all
    key: Mapped[str] = mapped_column(sa.String(256), index=True)  # the topic/entity/source value
    metric: Mapped[str] = mapped_column(sa.String(32))
    value: Mapped[float]
    threshold: Mapped[float]
    reason: Mapped[str] = mapped_column(sa.String(16))  # baseline | absolute
    baseline_mean: Mapped[float | None]
    baseline_std: Mapped[float | None]
    # The rule's baseline_buckets when it was raised (finance_0005); NULL for older alerts.
    baseline_buckets: Mapped[int | None]
    volume: Mapped[int]
    window: Mapped[str] = mapped_column(sa.String(16))  # bucket size, e.g. "hour"
    window_start: Mapped[datetime] = mapped_column(index=True)
    window_end: Mapped[datetime]
    message: Mapped[str] = mapped_column(sa.Text)
    status: Mapped[str] = mapped_column(sa.String(16), default="open", index=True)  # open|acknowledged|muted
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(128))
    muted_until: Mapped[datetime | None]
    # Before the outbox (finance_0002): sink name -> "ok" | error text. Kept for old alerts; new ones use
    # finance_deliveries.
    deliveries: Mapped[dict[str, Any]] = mapped_column(default=dict)


class AlertItem(FinanceBase):
    """Link from an alert to an item in its window."""

    __tablename__ = "finance_alert_items"

    alert_id: Mapped[int] = mapped_column(
        sa.ForeignKey("finance_alerts.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[str] = mapped_column(
        sa.String(128), sa.ForeignKey("finance_items.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ProcessedFile(FinanceBase):
    """An input file seen by ingestion: one row per (path, content hash)."""

    __tablename__ = "finance_files"
    __table_args__ = (sa.UniqueConstraint("path", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    path: Mapped[str] = mapped_column(sa.String(MAX_FILE_PATH_LENGTH), index=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    mtime_ns: Mapped[int] = mapped_column(sa.BigInteger)
    status: Mapped[str] = mapped_column(sa.String(16))  # done | copy (same content as a done file) | failed
    items: Mapped[int] = mapped_column(default=0)
    new_items: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    processed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delivery(OutboxColumns, FinanceBase):
    """One alert to deliver to one sink (the outbox row); see :mod:`apps.finance_monitor.outbox`."""

    __tablename__ = "finance_deliveries"
    __table_args__ = (sa.UniqueConstraint("alert_id", "sink"),)

    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("finance_alerts.id", ondelete="CASCADE"), index=True)


class Watermark(FinanceBase):
    """How far a consumer of the scores (the alert rules) has got, per model version."""

    __tablename__ = "finance_watermarks"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(sa.String(256), primary_key=True)
    position: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # highest finance_scores.id done
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntityLink(FinanceBase):
    """An item mentions an entity (a watch-list ticker or a cashtag)."""

    __tablename__ = "finance_entity_links"

    item_id: Mapped[str] = mapped_column(
        sa.String(128), sa.ForeignKey("finance_items.id", ondelete="CASCADE"), primary_key=True
    )
    entity: Mapped[str] = mapped_column(sa.String(32), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(default=0)  # order of first mention in the item
    name: Mapped[str | None] = mapped_column(sa.String(256))  # the watch list's company name
    method: Mapped[str] = mapped_column(sa.String(16))  # cashtag | name | ner | ticker | source
    mention: Mapped[str] = mapped_column(sa.String(256))  # the words matched, e.g. "$AAPL" or "Apple"


class LinkedItem(FinanceBase):
    """Which linker version (rules + watch list) last linked an item, and when."""

    __tablename__ = "finance_linked_items"

    item_id: Mapped[str] = mapped_column(
        sa.String(128), sa.ForeignKey("finance_items.id", ondelete="CASCADE"), primary_key=True
    )
    linker_version: Mapped[str] = mapped_column(sa.String(64), index=True)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertDigest(FinanceBase):
    """The digest of an alert (see :mod:`apps.finance_monitor.digests`), as JSON."""

    __tablename__ = "finance_alert_digests"

    alert_id: Mapped[int] = mapped_column(
        sa.ForeignKey("finance_alerts.id", ondelete="CASCADE"), primary_key=True
    )
    # Hash of the alert's linked item ids when the digest was computed (stale when they differ).
    items_key: Mapped[str] = mapped_column(sa.String(64))
    mode: Mapped[str] = mapped_column(sa.String(16))  # extractive | generated
    digest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


def register_migrations() -> None:
    """Register the ``finance`` Alembic branch with core (done on import of this module)."""
    _register_migrations("finance", MIGRATIONS_DIR, FinanceBase.metadata)


register_migrations()


# --- items ---------------------------------------------------------------------------------------


def existing_item_ids(session: Session, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` already stored."""
    ids = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(session.scalars(sa.select(Item.id).where(Item.id.in_(chunk))))
    return found


def store_items(
    session: Session, items: Sequence[NewsItem], groups: Mapping[str, str] | None = None
) -> list[str]:
    """Insert items that are not stored yet; stored items are left as they are (idempotent).

    Args:
        session: Open session (the caller commits).
        items: Parsed items.
        groups: Near-duplicate group per item id; default each item is its own group.

    Returns:
        Ids of the items inserted by this call, in input order.
    """
    groups = groups or {}
    fresh = {item.id: item for item in items}
    existing = existing_item_ids(session, fresh)
    new = [item for item_id, item in fresh.items() if item_id not in existing]
    rows = [
        {
            "id": item.id,
            "timestamp": item.timestamp,
            "source": item.source,
            "title": item.title,
            "body": item.body,
            "url": item.url,
            "tickers": list(item.tickers),
            "group_id": groups.get(item.id, item.id),
            "origin": item.origin,
            "ingested_at": utcnow(),
        }
        for item in new
    ]
    # DO NOTHING on conflict: a concurrent writer may have inserted the same id since the check.
    for start in range(0, len(rows), _CHUNK):
        upsert(session, Item, rows[start : start + _CHUNK], key_columns=["id"], update_columns=[])
    if existing:
        _warn_on_id_collisions(session, [fresh[i] for i in existing])
    return [item.id for item in new]


def _warn_on_id_collisions(session: Session, items: Sequence[NewsItem]) -> None:
    """Log stored ids that arrive again with another title (two sources reusing an id)."""
    stored: dict[str, str] = {}
    ids = [item.id for item in items]
    for start in range(0, len(ids), _CHUNK):
        rows = session.execute(sa.select(Item.id, Item.title).where(Item.id.in_(ids[start : start + _CHUNK])))
        stored.update({row.id: row.title for row in rows})
    clashes = [item.id for item in items if stored.get(item.id, item.title) != item.title]
    if clashes:
        logger.warning(
            "Items reuse stored ids with other titles; the stored items are kept",
            extra={"count": len(clashes), "ids": clashes[:10]},
        )
    logger.debug("Skipped stored items", extra={"count": len(items)})


def items_between(session: Session, start: datetime, end: datetime) -> list[sa.Row]:
    """Id, title, timestamp and group of the items published in ``[start, end]``, oldest first.

    Plain rows, not :class:`Item` objects: ingestion reloads this window for every batch it stores
    (to rebuild the near-duplicate index), and building ORM objects was most of that cost.
    """
    stmt = (
        sa.select(Item.id, Item.title, Item.timestamp, Item.group_id)
        .where(Item.timestamp >= start, Item.timestamp <= end)
        .order_by(Item.timestamp, Item.id)
    )
    return list(session.execute(stmt))


def get_items(session: Session, ids: Iterable[str]) -> list[Item]:
    """The stored items with these ids, oldest first."""
    ids = list(dict.fromkeys(ids))
    found: list[Item] = []
    for start in range(0, len(ids), _CHUNK):
        found += session.scalars(sa.select(Item).where(Item.id.in_(ids[start : start + _CHUNK])))
    return sorted(found, key=lambda item: (item.timestamp, item.id))


# --- scores --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreRow:
    """Labels of one item by one model version (see :class:`Score`)."""

    item_id: str
    model_version: str
    sentiment: str
    sentiment_confidence: float
    topic: str | None = None
    topic_confidence: float | None = None
    probabilities: dict[str, Any] = field(default_factory=dict)
    scored_at: datetime | None = None


def store_scores(session: Session, scores: Sequence[ScoreRow]) -> int:
    """Write scores; the same (item, model version) is overwritten, other versions are kept.

    Returns:
        The number of rows written.
    """
    rows = [
        {
            "item_id": s.item_id,
            "model_version": s.model_version,
            "sentiment": s.sentiment,
            "sentiment_confidence": float(s.sentiment_confidence),
            "topic": s.topic,
            "topic_confidence": None if s.topic_confidence is None else float(s.topic_confidence),
            "probabilities": s.probabilities,
            "scored_at": s.scored_at or utcnow(),
        }
        for s in scores
    ]
    for start in range(0, len(rows), _CHUNK):
        upsert(session, Score, rows[start : start + _CHUNK], key_columns=["item_id", "model_version"])
    return len(rows)


def scored_ids(session: Session, model_version: str, ids: Iterable[str]) -> set[str]:
    """The subset of ``ids`` that ``model_version`` has scored (an index lookup per id, no table scan)."""
    ids = list(dict.fromkeys(ids))
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        found.update(
            session.scalars(
                sa.select(Score.item_id).where(Score.model_version == model_version, Score.item_id.in_(chunk))
            )
        )
    return found


def unscored_items(session: Session, model_version: str, limit: int | None = None) -> list[Item]:
    """Items with no score from ``model_version`` yet, oldest first."""
    scored = sa.select(Score.item_id).where(Score.model_version == model_version)
    stmt = sa.select(Item).where(Item.id.not_in(scored)).order_by(Item.timestamp, Item.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


SCORED_COLUMNS = [
    "item_id", "timestamp", "source", "title", "tickers", "group_id", "model_version",
    "sentiment", "sentiment_confidence", "topic", "topic_confidence", "scored_at", "entities",
]  # fmt: skip


def scored_frame(
    session: Session,
    start: datetime | None = None,
    end: datetime | None = None,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Scored items as a DataFrame for aggregation and the dashboard.

    Args:
        session: Open session.
        start: Only items published at or after this time.
        end: Only items published before this time.
        model_version: Scores of this model version; default each item's latest score.

    Returns:
        One row per scored item with :data:`SCORED_COLUMNS` (``timestamp`` as UTC datetimes,
        ``tickers`` and ``entities`` as lists), ordered by timestamp. ``entities`` are the item's
        linked entities, or its ``tickers`` when it was never linked (see :func:`linked_entities`).
    """
    if model_version is None:
        rank = (
            sa.func.row_number()
            .over(partition_by=Score.item_id, order_by=(Score.scored_at.desc(), Score.id.desc()))
            .label("rank")
        )
        latest = sa.select(Score.id, rank).subquery()
        chosen = sa.select(latest.c.id).where(latest.c.rank == 1)
        score_filter = Score.id.in_(chosen)
    else:
        score_filter = Score.model_version == model_version
    stmt = (
        sa.select(
            Item.id,
            Item.timestamp,
            Item.source,
            Item.title,
            Item.tickers,
            Item.group_id,
            Score.model_version,
            Score.sentiment,
            Score.sentiment_confidence,
            Score.topic,
            Score.topic_confidence,
            Score.scored_at,
        )  # fmt: skip
        .join(Score, Score.item_id == Item.id)
        .where(score_filter)
        .order_by(Item.timestamp, Item.id)
    )
    if start is not None:
        stmt = stmt.where(Item.timestamp >= start)
    if end is not None:
        stmt = stmt.where(Item.timestamp < end)
    rows = session.execute(stmt).all()
    linked = linked_entities(session, start=start, end=end)
    records = [(*r, linked.get(r[0], list(r[4] or []))) for r in rows]
    frame = pd.DataFrame(records, columns=SCORED_COLUMNS)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    return frame


# --- entity links --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkRow:
    """One entity of one item (see :class:`EntityLink`)."""

    entity: str
    method: str
    mention: str
    name: str | None = None


def store_links(session: Session, links: Mapping[str, Sequence[LinkRow]], linker_version: str) -> int:
    """Replace the entity links of the items in ``links`` and record ``linker_version`` for each.

    Writing the same links again changes nothing but ``linked_at`` (idempotent); the caller commits,
    so links go in with whatever else the transaction holds (the item's scores).

    Returns:
        The number of links written.
    """
    ids = list(links)
    for start in range(0, len(ids), _CHUNK):
        session.execute(sa.delete(EntityLink).where(EntityLink.item_id.in_(ids[start : start + _CHUNK])))
    rows = [
        {"item_id": item_id, "entity": link.entity, "position": i, "name": link.name,
         "method": link.method, "mention": link.mention[:256]}
        for item_id, item_links in links.items()
        for i, link in enumerate(dict((lk.entity, lk) for lk in item_links).values())
    ]  # fmt: skip
    for start in range(0, len(rows), _CHUNK):
        upsert(session, EntityLink, rows[start : start + _CHUNK], key_columns=["item_id", "entity"])
    now = utcnow()
    marks = [{"item_id": i, "linker_version": linker_version, "linked_at": now} for i in ids]
    for start in range(0, len(marks), _CHUNK):
        upsert(session, LinkedItem, marks[start : start + _CHUNK], key_columns=["item_id"])
    return len(rows)


def items_to_link(
    session: Session, linker_version: str, limit: int, after: str | None = None, every: bool = False
) -> list[Item]:
    """Items not linked by ``linker_version`` (or, with ``every``, all items), by id, after id ``after``."""
    stmt = sa.select(Item).order_by(Item.id).limit(limit)
    if after is not None:
        stmt = stmt.where(Item.id > after)
    if not every:
        current = sa.select(LinkedItem.item_id).where(LinkedItem.linker_version == linker_version)
        stmt = stmt.where(Item.id.not_in(current))
    return list(session.scalars(stmt))


def linked_entities(
    session: Session, start: datetime | None = None, end: datetime | None = None
) -> dict[str, list[str]]:
    """``item id -> entities`` (first mention first) of the linked items published in ``[start, end)``.

    Items never linked are absent (an item linked to nothing maps to ``[]``).
    """
    stmt = (
        sa.select(LinkedItem.item_id, EntityLink.entity)
        .join(Item, Item.id == LinkedItem.item_id)
        .outerjoin(EntityLink, EntityLink.item_id == LinkedItem.item_id)
        .order_by(LinkedItem.item_id, EntityLink.position)
    )
    if start is not None:
        stmt = stmt.where(Item.timestamp >= start)
    if end is not None:
        stmt = stmt.where(Item.timestamp < end)
    out: dict[str, list[str]] = {}
    for item_id, entity in session.execute(stmt):
        entities = out.setdefault(item_id, [])
        if entity is not None:
            entities.append(entity)
    return out


def entities_for_items(session: Session, item_ids: Iterable[str]) -> dict[str, list[str]]:
    """``item id -> entities`` for the given stored items: their links, or their ``tickers`` if never linked.

    The alert digest and the API use it to name the companies behind a set of items.
    """
    ids = list(dict.fromkeys(item_ids))
    out: dict[str, list[str]] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        stmt = (
            sa.select(Item.id, Item.tickers, LinkedItem.item_id, EntityLink.entity)
            .outerjoin(LinkedItem, LinkedItem.item_id == Item.id)
            .outerjoin(EntityLink, EntityLink.item_id == Item.id)
            .where(Item.id.in_(chunk))
            .order_by(Item.id, EntityLink.position)
        )
        for item_id, tickers, linked, entity in session.execute(stmt):
            entities = out.setdefault(item_id, [] if linked is not None else list(tickers or []))
            if entity is not None:
                entities.append(entity)
    return out


def entity_names(session: Session) -> dict[str, str]:
    """``entity -> company name`` as recorded by the latest links (entities without a name are absent)."""
    stmt = sa.select(EntityLink.entity, EntityLink.name).where(EntityLink.name.is_not(None)).distinct()
    return {entity: name for entity, name in session.execute(stmt)}


# --- watermarks ---------------------------------------------------------------------------------


def get_watermark(session: Session, name: str, model_version: str) -> int:
    """The position of watermark ``name`` for ``model_version`` (0 when never set)."""
    row = session.get(Watermark, (name, model_version))
    return 0 if row is None else int(row.position)


def set_watermark(session: Session, name: str, model_version: str, position: int) -> None:
    """Move watermark ``name`` of ``model_version`` to ``position`` (never backwards; the caller commits)."""
    current = get_watermark(session, name, model_version)
    row = {"name": name, "model_version": model_version, "position": max(current, position)}
    upsert(session, Watermark, [{**row, "updated_at": utcnow()}], key_columns=["name", "model_version"])


def scores_after(session: Session, model_version: str, position: int) -> tuple[int, datetime] | None:
    """``(highest score id, oldest item timestamp)`` of the scores of ``model_version`` past ``position``.

    ``None`` when there are none: everything scored has been evaluated.
    """
    top, oldest = session.execute(
        sa.select(sa.func.max(Score.id), sa.func.min(Item.timestamp))
        .join(Item, Item.id == Score.item_id)
        .where(Score.model_version == model_version, Score.id > position)
    ).one()
    return None if top is None else (int(top), oldest)


# --- processed files -----------------------------------------------------------------------------


def file_done(session: Session, sha256: str) -> ProcessedFile | None:
    """A successfully ingested file with this content hash (at any path), if there is one."""
    stmt = sa.select(ProcessedFile).where(ProcessedFile.sha256 == sha256, ProcessedFile.status == "done")
    return session.scalars(stmt.limit(1)).first()


def file_unchanged(session: Session, path: str, size: int, mtime_ns: int) -> bool:
    """Whether ``path`` was recorded with this size and mtime (so it need not even be hashed)."""
    stmt = sa.select(ProcessedFile.id).where(
        ProcessedFile.path == path, ProcessedFile.size == size, ProcessedFile.mtime_ns == mtime_ns
    )
    return session.scalars(stmt.limit(1)).first() is not None


def record_file(
    session: Session,
    *,
    sha256: str,
    path: str,
    size: int,
    mtime_ns: int,
    status: str,
    items: int = 0,
    new_items: int = 0,
    error: str | None = None,
) -> None:
    """Record (or update) what happened to the file at ``path`` with content ``sha256``."""
    row = {
        "sha256": sha256,
        "path": path,
        "size": size,
        "mtime_ns": mtime_ns,
        "status": status,
        "items": items,
        "new_items": new_items,
        "error": error,
        "processed_at": utcnow(),
    }
    upsert(session, ProcessedFile, [row], key_columns=["path", "sha256"])

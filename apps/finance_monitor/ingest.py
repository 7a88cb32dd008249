"""Ingestion: news files and a watched folder into ``finance_items``, once each, near-duplicates grouped.

A file's items and its ``finance_files`` record are written in one transaction, so an
interrupted run (Ctrl-C, the database going away) leaves either all of a file or none of it,
and running again neither loses nor duplicates items. Files are recognised by path, size and
modification time (cheap), then by SHA-256 of their content, so a file copied in under a new
name is not processed twice. A file that fails to parse is recorded as failed with the error
and retried only once it changes. A bad record (a missing title, a bad timestamp, a url too long to
store) does not hold back the good ones: it is left out and logged naming file, row and field, the
others are stored, and the file is recorded as done with those errors (it is read again once it
changes, and the records stored before are skipped by id). A file with no good record fails.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, timedelta, tzinfo
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from apps.finance_monitor.dedup import NearDuplicateIndex
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.sources import NewsItem, read_news
from apps.finance_monitor.storage import (
    MAX_FILE_PATH_LENGTH,
    existing_item_ids,
    file_done,
    file_unchanged,
    items_between,
    record_file,
    store_items,
)
from core.errors import check_path_kind
from core.storage import session_scope

logger = logging.getLogger(__name__)

NEWS_PATTERNS: tuple[str, ...] = ("*.csv", "*.jsonl", "*.ndjson", "*.xml", "*.rss", "*.atom")
REPORTED_BAD_RECORDS = 20  # errors of skipped records kept in a file's one-line error (all are logged)


@dataclass
class IngestResult:
    """What ingesting one file (or batch) did.

    Attributes:
        path: The file, or ``None`` for items passed directly.
        status: ``ingested``; ``unchanged`` (same path, size and mtime as before); ``copy``
            (same content as an ingested file); ``failed``.
        items: Items read.
        new_ids: Ids stored by this call (the others were stored before).
        near_duplicates: New items that joined an existing story group.
        error: The error message when ``status`` is ``failed``; when records were skipped, their
            errors on one line.
        skipped: One error (naming file, row and field) per bad record left out.
    """

    path: str | None
    status: str
    items: int = 0
    new_ids: list[str] = field(default_factory=list)
    near_duplicates: int = 0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)


class Ingestor:
    """Stores news items idempotently and groups syndicated copies.

    Args:
        engine: A migrated database engine.
        dedup_threshold: Jaccard similarity of headline word bigrams for near-duplicates.
        dedup_window: How far apart in time two copies of one story may be.
        default_source: Source for records without one.
        assume_tz: Zone for timestamps without one.
        min_age_s: In folder scans, skip files modified less than this many seconds ago (a
            writer may still be writing them).
        clock: Returns the current time in seconds (injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        dedup_threshold: float = 0.6,
        dedup_window: timedelta = timedelta(hours=48),
        default_source: str | None = None,
        assume_tz: tzinfo = UTC,
        min_age_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.default_source = default_source
        self.assume_tz = assume_tz
        self.min_age_s = min_age_s
        self.clock = clock
        self.index = NearDuplicateIndex(threshold=dedup_threshold, window=dedup_window)

    def ingest_items(self, items: Sequence[NewsItem], path: str | None = None) -> IngestResult:
        """Store ``items`` (those already stored are skipped) in one transaction.

        Returns:
            What was stored.
        """
        with session_scope(self.engine) as session:
            new_ids, near = self._store(session, items)
        return IngestResult(path, "ingested", len(items), new_ids, near)

    def store_in(self, session: Session, items: Sequence[NewsItem]) -> IngestResult:
        """Store ``items`` (those already stored are skipped) in the caller's transaction.

        Returns:
            What was stored (visible once the caller commits).
        """
        new_ids, near = self._store(session, items)
        return IngestResult(None, "ingested", len(items), new_ids, near)

    def ingest_file(self, path: str | Path, *, force: bool = False) -> IngestResult:
        """Read and store one file unless it (or a copy of it) was ingested before.

        Args:
            path: A CSV, JSON Lines, RSS or Atom file.
            force: Read it even if it was seen (items already stored are still skipped).

        Returns:
            What happened.

        Raises:
            FileNotFoundError: No such file.
            DataError: The file is malformed, or none of its records is good (it is recorded as
                failed first), or its path is too long to record (nothing is read).
        """
        path = Path(path).resolve()
        stat = path.stat()
        key = str(path)
        if len(key) > MAX_FILE_PATH_LENGTH:  # finance_files could not record it, so it would be read forever
            raise DataError(
                "…" + key[-200:],
                f"path of {len(key)} characters; at most {MAX_FILE_PATH_LENGTH} are recorded: move or "
                "rename the file (nothing of it was read)",
            )
        with session_scope(self.engine) as session:
            if not force and file_unchanged(session, key, stat.st_size, stat.st_mtime_ns):
                return IngestResult(key, "unchanged")
            raw = path.read_bytes()
            digest = hashlib.sha256(raw).hexdigest()
            meta = {"sha256": digest, "path": key, "size": len(raw), "mtime_ns": stat.st_mtime_ns}
            if not force and file_done(session, digest) is not None:
                record_file(session, status="copy", **meta)
                logger.info("Skipped copy of an ingested file", extra={"path": key})
                return IngestResult(key, "copy")
        items, skipped = self._read(path, meta)
        error = "; ".join(skipped[:REPORTED_BAD_RECORDS]) or None
        if len(skipped) > REPORTED_BAD_RECORDS:
            error = f"{error}; and {len(skipped) - REPORTED_BAD_RECORDS} more bad records in {key}"
        with session_scope(self.engine) as session:
            new_ids, near = self._store(session, items)
            record_file(session, status="done", items=len(items), new_items=len(new_ids), error=error, **meta)
        logger.info(
            "Ingested file",
            extra={
                "path": key,
                "items": len(items),
                "new": len(new_ids),
                "near_duplicates": near,
                "skipped": len(skipped),
            },
        )
        return IngestResult(key, "ingested", len(items), new_ids, near, error=error, skipped=skipped)

    def _read(self, path: Path, meta: dict[str, Any]) -> tuple[list[NewsItem], list[str]]:
        """The file's good items and the errors of its bad records (logged); no good record fails it.

        Raises:
            DataError: The file is malformed or has no good record (recorded as failed first).
        """
        bad: list[DataError] = []
        try:
            items = read_news(
                path, default_source=self.default_source, assume_tz=self.assume_tz, on_bad_record=bad.append
            )
            if bad and not items:
                raise bad[0]
        except DataError as err:
            with session_scope(self.engine) as session:
                record_file(session, status="failed", error=str(err), **meta)
            raise
        for err in bad:
            logger.error("Skipped bad record", extra={"path": str(path), "error": str(err)})
        return items, [str(err) for err in bad]

    def scan_folder(self, folder: str | Path, patterns: Sequence[str] = NEWS_PATTERNS) -> list[IngestResult]:
        """Ingest the files in ``folder`` not seen before, oldest first; failures are logged, not raised.

        Args:
            folder: The watched folder (not recursive).
            patterns: Glob patterns of news files.

        Returns:
            One result per file considered (``unchanged`` files included).

        Raises:
            FileNotFoundError: ``folder`` is not a directory.
        """
        folder = check_path_kind(folder, "folder")
        if not folder.is_dir():
            raise FileNotFoundError(f"watched folder not found: {folder}")
        files = {p for pattern in patterns for p in folder.glob(pattern) if p.is_file()}
        now = self.clock()
        results = []
        for path in sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name)):
            if now - path.stat().st_mtime < self.min_age_s:
                logger.debug("File too fresh; next scan", extra={"path": str(path)})
                continue
            try:
                results.append(self.ingest_file(path))
            except (DataError, OSError) as err:
                logger.error("Could not ingest file", extra={"path": str(path), "error": str(err)})
                results.append(IngestResult(str(path.resolve()), "failed", error=str(err)))
        return results

    def _store(self, session: Session, items: Sequence[NewsItem]) -> tuple[list[str], int]:
        if not items:
            return [], 0
        ordered = sorted(items, key=lambda i: (i.timestamp, i.id))
        self._load_neighbours(session, ordered)
        stored = existing_item_ids(session, [i.id for i in ordered])
        groups: dict[str, str] = {}
        near = 0
        for item in ordered:
            if item.id in stored or item.id in groups:
                continue
            # An id already indexed (an earlier attempt that rolled back) keeps its group.
            group = self.index.add(item.id, item.title, item.timestamp)
            groups[item.id] = group
            near += group != item.id
        new_ids = store_items(session, [i for i in items if i.id in groups], groups)
        return new_ids, near

    def _load_neighbours(self, session: Session, ordered: Sequence[NewsItem]) -> None:
        """Put stored items near the batch's time range into the index with their stored groups."""
        start = ordered[0].timestamp - self.index.window
        for row in items_between(session, start, ordered[-1].timestamp + self.index.window):
            self.index.add(row.id, row.title, row.timestamp, group=row.group_id)
        self.index.prune(start - self.index.window)

"""The monitor loop: ingest -> score -> aggregate -> alert, once or following a folder.

One *cycle* ingests new files (each file in one transaction, see
:mod:`apps.finance_monitor.ingest`), scores the items the current model version has not scored
(a transaction per batch, see :mod:`apps.finance_monitor.scoring`), then applies the alert
rules to the scored items around the newly scored ones (the rules aggregate per bucket; alerts
are de-duplicated by :class:`apps.finance_monitor.alerts.AlertEngine`). Every step is
idempotent, so a cycle can be repeated, or interrupted and run again, without duplicates and
without losing what was stored.

:meth:`Monitor.follow` repeats cycles until its ``stop`` event is set; the CLI sets it on
SIGINT / SIGTERM, so the cycle in progress finishes before the process exits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.ingest import Ingestor, IngestResult
from apps.finance_monitor.rules import AlertRule, load_rules
from apps.finance_monitor.scoring import Scorer, score_pending
from apps.finance_monitor.sinks import AlertSink, LogSink, WebhookSink
from apps.finance_monitor.storage import get_items, scored_frame
from core.storage import StorageError, session_scope, utcnow

logger = logging.getLogger(__name__)

SAMPLE_RULES = Path(__file__).resolve().parent / "sample_data" / "alert_rules.yaml"
JOINT_MODEL = "news"  # DATA_DIR/finance/models/news: one encoder with sentiment and topic heads


@dataclass(frozen=True)
class MonitorConfig:
    """Settings of ``aigc finance monitor`` (section ``monitor:`` of configs/finance_monitor.yaml)."""

    watch_dir: str = field(
        default="", metadata={"help": "Folder of news files; empty: DATA_DIR/finance/inbox."}
    )
    sentiment_model: str = field(
        default="",
        metadata={
            "help": "Sentiment (or two-head) model dir; empty: DATA_DIR/finance/models/news if present, "
            "else DATA_DIR/finance/models/sentiment."
        },
    )
    topic_model: str = field(
        default="", metadata={"help": "Topic model dir; empty: DATA_DIR/finance/models/topic if present."}
    )
    rules: str = field(default="", metadata={"help": "Alert rules YAML; empty: the shipped sample rules."})
    batch_size: int = field(default=64, metadata={"help": "Items per scoring batch."})
    poll_interval_s: float = field(default=2.0, metadata={"help": "Seconds between folder scans (--follow)."})
    min_file_age_s: float = field(default=1.0, metadata={"help": "Skip files modified more recently."})
    dedup_threshold: float = field(default=0.6, metadata={"help": "Headline similarity of near-duplicates."})
    webhook_url: str = field(default="", metadata={"help": "POST alerts here as JSON; empty: no webhook."})
    webhook_retries: int = field(default=3, metadata={"help": "Webhook retries after the first attempt."})
    max_db_failures: int = field(
        default=5, metadata={"help": "--follow gives up after this many cycles failing on the database."}
    )


@dataclass
class CycleResult:
    """What one cycle did."""

    files: list[IngestResult] = field(default_factory=list)
    new_items: int = 0
    scored: int = 0
    alerts: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Monitor:
    """Runs ingest -> score -> aggregate -> alert cycles.

    Args:
        engine: Migrated database.
        scorer: The models.
        rules: Alert rules.
        sinks: Alert sinks besides the database (log, webhook).
        ingestor: Reads files into the database (default: a new one on ``engine``).
        batch_size: Items per scoring batch.
        clock: Current time for the alert engine (injected by tests).
    """

    def __init__(
        self,
        engine: Engine,
        scorer: Scorer,
        rules: Sequence[AlertRule],
        sinks: Sequence[AlertSink] = (),
        ingestor: Ingestor | None = None,
        batch_size: int = 64,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.scorer = scorer
        self.ingestor = ingestor or Ingestor(engine)
        self.alerts = AlertEngine(engine, rules, sinks, clock=clock)
        self.batch_size = batch_size

    def cycle(self, folder: str | Path | None = None, files: Sequence[str | Path] = ()) -> CycleResult:
        """Ingest ``folder``'s new files and ``files``, score what is unscored, evaluate the rules.

        Bad files are recorded and reported in ``errors`` (the other files still go in).

        Raises:
            StorageError, SQLAlchemyError: The database failed (what was committed stays).
        """
        result = CycleResult()
        if folder is not None:
            result.files += self.ingestor.scan_folder(folder)
        for path in files:
            try:
                result.files.append(self.ingestor.ingest_file(path))
            except (DataError, OSError) as err:
                result.files.append(IngestResult(str(path), "failed", error=str(err)))
        result.errors = [f.error for f in result.files if f.error]
        result.new_items = sum(len(f.new_ids) for f in result.files)
        scored = score_pending(self.engine, self.scorer, batch_size=self.batch_size)
        result.scored = len(scored)
        if scored:
            result.alerts = [a.id for a in self._evaluate(scored)]
        logger.info(
            "Monitor cycle",
            extra={"new_items": result.new_items, "scored": result.scored, "alerts": len(result.alerts)},
        )
        return result

    def _evaluate(self, scored_ids: Sequence[str]) -> list:
        with session_scope(self.engine) as session:
            since = min(item.timestamp for item in get_items(session, scored_ids))
        start = since - self.alerts.history()
        with session_scope(self.engine) as session:
            frame = scored_frame(session, start=start, model_version=self.scorer.version)
        # Buckets ending after `since`: the bucket holding the oldest new item is re-evaluated too.
        return self.alerts.evaluate(frame, since=pd.Timestamp(since).to_pydatetime())

    def follow(
        self,
        folder: str | Path,
        stop: threading.Event,
        poll_interval_s: float = 2.0,
        max_db_failures: int = 5,
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> int:
        """Run cycles over ``folder`` until ``stop`` is set; the running cycle always completes.

        Args:
            folder: The watched folder.
            stop: Set it (e.g. from a signal handler) to end after the current cycle.
            poll_interval_s: Wait between cycles.
            max_db_failures: Give up after this many consecutive cycles failing on the database.
            on_cycle: Called after every successful cycle.

        Returns:
            The number of cycles run.
        """
        cycles = failures = 0
        while not stop.is_set():
            try:
                result = self.cycle(folder)
                failures = 0
                if on_cycle is not None:
                    on_cycle(result)
            except (StorageError, SQLAlchemyError) as err:
                failures += 1
                logger.error(
                    "Database error; retrying next cycle", extra={"error": str(err), "failures": failures}
                )
                if failures >= max_db_failures:
                    raise
            cycles += 1
            stop.wait(poll_interval_s)
        logger.info("Monitor stopped", extra={"cycles": cycles})
        return cycles


def build_sinks(config: MonitorConfig) -> list[AlertSink]:
    """The log sink, and a webhook sink when ``config.webhook_url`` is set."""
    sinks: list[AlertSink] = [LogSink()]
    if config.webhook_url:
        sinks.append(WebhookSink(config.webhook_url, retries=config.webhook_retries))
    return sinks


def build_monitor(engine: Engine, config: MonitorConfig, data_dir: Path) -> Monitor:
    """A :class:`Monitor` from ``config``, resolving empty paths under ``data_dir/finance``.

    Raises:
        FileNotFoundError: No sentiment model or rules file.
        ValueError: A corrupt model directory or a bad rules file.
    """
    models = data_dir / "finance" / "models"
    if config.sentiment_model:
        sentiment = Path(config.sentiment_model)
    elif (models / JOINT_MODEL / "config.json").is_file():
        sentiment = models / JOINT_MODEL
    else:
        sentiment = models / "sentiment"
    topic: Path | None = Path(config.topic_model) if config.topic_model else models / "topic"
    if not config.topic_model and (
        sentiment == models / JOINT_MODEL or not (topic / "config.json").is_file()
    ):
        topic = None
    if not (sentiment / "config.json").is_file() and not sentiment.is_dir():
        raise FileNotFoundError(
            f"sentiment model not found at {sentiment}: train one with "
            "`aigc finance train --task sentiment --data FILE --out DIR` or run `aigc prepare-demo`"
        )
    scorer = Scorer.from_dirs(sentiment, topic)
    rules = load_rules(config.rules or SAMPLE_RULES)
    ingestor = Ingestor(engine, dedup_threshold=config.dedup_threshold, min_age_s=config.min_file_age_s)
    return Monitor(engine, scorer, rules, build_sinks(config), ingestor, batch_size=config.batch_size)


def watch_dir(config: MonitorConfig, data_dir: Path) -> Path:
    """The watched folder (created if missing)."""
    folder = Path(config.watch_dir) if config.watch_dir else data_dir / "finance" / "inbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder

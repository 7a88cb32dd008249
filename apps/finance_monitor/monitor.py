"""The monitor loop: ingest -> score -> aggregate -> alert, once or following a folder.

One *cycle* ingests new files (each file in one transaction, see
:mod:`apps.finance_monitor.ingest`), scores the items the current model version has not scored
(a transaction per batch, see :mod:`apps.finance_monitor.scoring`), then applies the alert
rules to every score past the *alert watermark* (the highest ``finance_scores.id`` evaluated,
per model version), with the history the baselines need. The new alerts, their outbox
deliveries and the advanced watermark are committed in one transaction, so a process killed
after scoring evaluates those scores on restart, and one killed after the alerts never
evaluates them twice (alerts are also de-duplicated per incident by
:class:`apps.finance_monitor.alerts.AlertEngine`). Sending is not part of the cycle: the
outbox's :class:`~apps.finance_monitor.outbox.Sender` runs after it (``--once``) or beside it
in a thread (``--follow``), so a hanging webhook never stalls scoring.

Fault points (``AIGC_FAILPOINT``, see :mod:`core.failpoints`): ``monitor.after_score_commit``
(after each score batch), ``monitor.after_alert_commit`` (after the alerts' transaction),
``monitor.before_delivery`` (before each delivery attempt) and, when consuming a bus,
``bus.before_ack`` (after a batch is stored and scored, before its messages are acknowledged).

:meth:`Monitor.follow` repeats cycles until its ``stop`` event is set; the CLI sets it on
SIGINT / SIGTERM, so the cycle in progress finishes before the process exits.
:func:`apps.finance_monitor.feed.consume_feed` runs the same steps over a message bus.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.channels import build_channel_sinks
from apps.finance_monitor.classifiers import is_model_dir
from apps.finance_monitor.config import MonitorConfig
from apps.finance_monitor.digests import Digester
from apps.finance_monitor.entities import EntityLinker
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.ingest import Ingestor, IngestResult
from apps.finance_monitor.outbox import DeliveryPolicy, DeliveryWorker, Sender, SendReport
from apps.finance_monitor.rules import (
    SAMPLE_RULES,
    AlertRule,
    load_rules,
    load_webhook_allow,
    resolve_entity_rules,
    rule_channels,
)
from apps.finance_monitor.scoring import Label, Scorer, score_into, score_pending
from apps.finance_monitor.sinks import AlertSink, LogSink
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import (
    Alert,
    Item,
    Score,
    get_items,
    get_watermark,
    scored_frame,
    scored_ids,
    scores_after,
    set_watermark,
)
from apps.finance_monitor.watchlist import load_watchlist
from core.batching import forward_workers, single_thread_passes
from core.failpoints import failpoint
from core.storage import StorageError, session_scope, utcnow
from core.webhook_safety import AllowList
from core.webhooks import webhook_sink

logger = logging.getLogger(__name__)

JOINT_MODEL = "news"  # DATA_DIR/finance/models/news: one encoder with sentiment and topic heads
ALERT_WATERMARK = "alerts"  # finance_watermarks.name of the alert rules' progress
WEBHOOK_URL_ENV = "AIGC_FINANCE_WEBHOOK_URL"
WORKER_JOIN_S = 30.0  # how long a stopping --follow waits for the delivery in progress


@dataclass
class CycleResult:
    """What one cycle did."""

    files: list[IngestResult] = field(default_factory=list)
    new_items: int = 0
    scored: int = 0
    evaluated: int = 0
    alerts: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Monitor:
    """Runs ingest -> score -> aggregate -> alert cycles.

    Args:
        engine: Migrated database.
        scorer: The models.
        rules: Alert rules.
        sinks: Alert sinks besides the database for every alert (log, webhook).
        ingestor: Reads files into the database (default: a new one on ``engine``).
        batch_size: Items per scoring batch (one transaction).
        model_batch_size: Texts per forward pass of the model (default ``batch_size``).
        clock: Current time for the alert engine and the outbox (injected by tests).
        policy: Retries of the outbox.
        linker: Links scored items to entities (default: cashtags and given tickers, no watch list).
        channel_sinks: Sinks of the rules' channels by name (Slack, Teams, e-mail, webhooks:
            :func:`apps.finance_monitor.channels.build_channel_sinks`).
        digester: Computes each alert's digest in the alert's transaction (``None``: on demand only).
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
        policy: DeliveryPolicy = DeliveryPolicy(),
        linker: EntityLinker | None = None,
        channel_sinks: Mapping[str, AlertSink] | None = None,
        digester: Digester | None = None,
        model_batch_size: int | None = None,
    ) -> None:
        self.engine = engine
        self.scorer = scorer
        self.linker = linker or EntityLinker()
        self.ingestor = ingestor or Ingestor(engine)
        self.alerts = AlertEngine(
            engine, rules, sinks, clock=clock, channel_sinks=channel_sinks, digester=digester
        )
        self.sender = Sender(engine, [*sinks, *(channel_sinks or {}).values()], policy, clock=clock)
        self.batch_size = batch_size
        self.model_batch_size = model_batch_size or batch_size

    def cycle(self, folder: str | Path | None = None, files: Sequence[str | Path] = ()) -> CycleResult:
        """Ingest ``folder``'s new files and ``files``, score what is unscored, evaluate the rules.

        Deliveries are not sent here: call :meth:`deliver` (or run a :class:`DeliveryWorker`).
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
        scored = self._score_pending()
        result.scored = len(scored)
        result.evaluated, alerts = self.evaluate_pending()
        result.alerts = [a.id for a in alerts]
        logger.info(
            "Monitor cycle",
            extra={"new_items": result.new_items, "scored": result.scored, "alerts": len(result.alerts)},
        )
        return result

    def ingest_items(self, items: Sequence[NewsItem]) -> CycleResult:
        """One cycle over items given directly (the HTTP API's ``POST /v1/finance/items``).

        Stored ids are skipped (idempotent), then what is unscored is scored and the rules evaluated
        past the watermark, as in :meth:`cycle`; deliveries wait in the outbox for :meth:`deliver`.

        Raises:
            StorageError, SQLAlchemyError: The database failed (what was committed stays).
        """
        result = self.store_and_score(items)
        result.evaluated, alerts = self.evaluate_pending()
        result.alerts = [a.id for a in alerts]
        return result

    def store_and_score(self, items: Sequence[NewsItem]) -> CycleResult:
        """Store ``items`` (stored ids skipped) and score what is unscored; the rules are not run.

        Raises:
            StorageError, SQLAlchemyError: The database failed (what was committed stays).
        """
        stored = self.ingestor.ingest_items(items)
        result = CycleResult(files=[stored], new_items=len(stored.new_ids))
        result.scored = len(self._score_pending())
        return result

    def commit_batch(
        self, items: Sequence[NewsItem], labels: Mapping[str, Label] | None = None
    ) -> CycleResult:
        """Store ``items`` and score those of them still unscored, in one transaction; no rules.

        A bus batch (:func:`apps.finance_monitor.feed.consume_feed`): once this returns, every item
        of the batch is stored and scored, so its messages may be acknowledged. Items stored by an
        earlier attempt that died before scoring them are scored now (stored ids are skipped, their
        stored rows scored); other unscored items are left to :meth:`score_unscored`.

        Args:
            items: The batch.
            labels: ``{title: label}`` computed beforehand by this scorer (the bus consumer runs the
                model on the next batch while this one commits); titles not in it are labelled here.

        Raises:
            StorageError, SQLAlchemyError: The database failed (nothing of the batch was committed).
        """
        with session_scope(self.engine) as session:
            stored = self.ingestor.store_in(session, items)
            unique = sorted({i.id: i for i in items}.values(), key=lambda i: (i.timestamp, i.id))
            new = set(stored.new_ids)
            done = scored_ids(session, self.scorer.version, [i.id for i in unique if i.id not in new])
            # New items are scored as given; ones stored before, as stored (their title may differ).
            earlier = {i.id for i in unique if i.id not in new and i.id not in done}
            rows = {row.id: row for row in get_items(session, earlier)} if earlier else {}
            todo: list[Item | NewsItem] = [
                i if i.id in new else rows[i.id] for i in unique if i.id in new or i.id in rows
            ]
            scored = score_into(
                session,
                self.scorer,
                todo,
                batch_size=self.model_batch_size,
                linker=self.linker,
                labels=labels,
            )
        failpoint("monitor.after_score_commit")
        return CycleResult(files=[stored], new_items=len(stored.new_ids), scored=len(scored))

    def score_unscored(self) -> int:
        """Score every stored item the model has not scored (a transaction per batch); returns how many."""
        return len(self._score_pending())

    def _score_pending(self) -> list[str]:
        return score_pending(
            self.engine, self.scorer, batch_size=self.batch_size, linker=self.linker,
            model_batch_size=self.model_batch_size,
        )  # fmt: skip

    def evaluate_pending(self) -> tuple[int, list[Alert]]:
        """Apply the rules to every score past the alert watermark; commit alerts, deliveries, watermark.

        Returns:
            The number of scores evaluated and the alerts created.
        """
        version = self.scorer.version
        with session_scope(self.engine) as session:
            mark = get_watermark(session, ALERT_WATERMARK, version)
            pending = scores_after(session, version, mark)
            if pending is None:
                return 0, []
            top, oldest = pending
            stamp = pd.Timestamp(oldest)
            since = (
                stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            ).to_pydatetime()
            frame = scored_frame(session, start=since - self.alerts.history(), model_version=version)
            # Buckets ending after `since`: the bucket holding the oldest new item is re-evaluated too.
            created = self.alerts.evaluate(frame, since=since, session=session)
            evaluated = session.scalar(
                sa.select(sa.func.count(Score.id)).where(
                    Score.model_version == version, Score.id > mark, Score.id <= top
                )
            )
            set_watermark(session, ALERT_WATERMARK, version, top)
        failpoint("monitor.after_alert_commit")
        return int(evaluated or 0), created

    def deliver(self, stop: threading.Event | None = None) -> SendReport:
        """Send the due deliveries of the outbox (one pass; failures wait for their retry time)."""
        return self.sender.deliver_due(stop)

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
        worker = DeliveryWorker(self.sender, poll_s=max(poll_interval_s, 0.05), name="finance-alert-sender")
        worker.start()
        try:
            while not stop.is_set():
                try:
                    result = self.cycle(folder)
                    failures = 0
                    if result.alerts:
                        worker.wake()
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
        finally:
            worker.stop()
            # An attempt in progress ends within its timeout; a receiver that hangs longer keeps its
            # delivery pending (claimed for a lease), and it is retried after the restart.
            worker.join(timeout=WORKER_JOIN_S)
        logger.info("Monitor stopped", extra={"cycles": cycles})
        return cycles


def build_sinks(config: MonitorConfig, allow: AllowList = AllowList()) -> list[AlertSink]:
    """The log sink, and a webhook sink when a webhook URL is configured.

    The URL is ``config.webhook_url``, else ``$AIGC_FINANCE_WEBHOOK_URL``; with
    ``config.webhook_token_env`` the named variable's value is sent as a bearer token. The URL is
    checked against ``allow`` now (its host resolved; a name that does not resolve yet is only
    logged, as every attempt checks again).

    Raises:
        ValueError: A forbidden webhook URL (shown masked), a missing token variable or bad settings.
    """
    sinks: list[AlertSink] = [LogSink()]
    url = config.webhook_url or os.environ.get(WEBHOOK_URL_ENV, "")
    if url:
        token_env, timeout = config.webhook_token_env, config.webhook_timeout_s
        sinks.append(webhook_sink(url, token_env=token_env, allow=allow, timeout=timeout))
    return sinks


def delivery_policy(config: MonitorConfig) -> DeliveryPolicy:
    """The outbox's retry policy from ``config`` (:meth:`DeliveryPolicy.for_webhooks`)."""
    return DeliveryPolicy.for_webhooks(config)


def build_monitor(engine: Engine, config: MonitorConfig, data_dir: Path) -> Monitor:
    """A :class:`Monitor` from ``config``, resolving empty paths under ``data_dir/finance``.

    Raises:
        FileNotFoundError: No sentiment model or rules file.
        ValueError: A corrupt model directory, a bad rules file, or a channel whose environment
            variable is not set or holds no URL of its type.
    """
    models = data_dir / "finance" / "models"
    if config.sentiment_model:
        sentiment = Path(config.sentiment_model)
    elif is_model_dir(models / JOINT_MODEL):
        sentiment = models / JOINT_MODEL
    else:
        sentiment = models / "sentiment"
    topic: Path | None = Path(config.topic_model) if config.topic_model else models / "topic"
    if not config.topic_model and (sentiment == models / JOINT_MODEL or not is_model_dir(topic)):
        topic = None
    if not is_model_dir(sentiment) and not sentiment.is_dir():
        raise FileNotFoundError(
            f"sentiment model not found at {sentiment}: train one with "
            "`aigc finance train --task sentiment --data FILE --out DIR` or run `aigc prepare-demo`"
        )
    rules_file = config.rules or SAMPLE_RULES
    linker = build_linker(config)
    rules = resolve_entity_rules(load_rules(rules_file), linker.watchlist)
    allow = load_webhook_allow(rules_file)
    sinks = build_sinks(config, allow)
    channel_sinks = build_channel_sinks(
        rule_channels(rules),
        allow=allow,
        timeout=config.webhook_timeout_s,
        dashboard_url=config.dashboard_url,
        where=str(rules_file),
    )
    policy = delivery_policy(config)
    workers = forward_workers(config.model_workers)
    single_thread_passes(workers)  # this builds the process's monitor: its passes get a core each
    scorer = Scorer.from_dirs(sentiment, topic, precision=config.model_precision, workers=workers)
    ingestor = Ingestor(engine, dedup_threshold=config.dedup_threshold, min_age_s=config.min_file_age_s)
    digester = Digester(config.digest) if config.digest.enabled else None  # models load at the first alert
    return Monitor(
        engine, scorer, rules, sinks, ingestor, batch_size=config.batch_size, policy=policy,
        linker=linker, channel_sinks=channel_sinks, digester=digester,
        model_batch_size=config.model_batch_size,
    )  # fmt: skip


def build_linker(config: MonitorConfig) -> EntityLinker:
    """The entity linker of ``config``: its watch list (``config.watchlist``), or cashtags only without one.

    Raises:
        FileNotFoundError: The watch list file is missing.
        DataError: A bad watch-list row (file, row, field).
    """
    return EntityLinker(load_watchlist(config.watchlist) if config.watchlist else None)


def watch_dir(config: MonitorConfig, data_dir: Path) -> Path:
    """The watched folder (created if missing)."""
    folder = Path(config.watch_dir) if config.watch_dir else data_dir / "finance" / "inbox"
    folder.mkdir(parents=True, exist_ok=True)
    return folder

"""News over a message bus: the monitor consuming it (``--source``), and publishing files to it.

:func:`consume_feed` runs the monitor over a Redis stream or NATS subject (:mod:`core.bus`): each
fetched batch is parsed (a message is one JSON object with the keys of a JSON Lines news file),
stored and scored in one transaction (:meth:`~apps.finance_monitor.monitor.Monitor.commit_batch`),
and only then acknowledged, so a kill makes the broker deliver the batch again
and the stored ids make that second delivery change nothing. A message that is not a valid item
is logged with its id and dead-lettered on the broker (recorded and acknowledged), never retried.
With ``bus.pipeline`` (the default) the next batch is fetched, parsed and labelled by the model on a
worker thread while the current one commits (:func:`core.bus.consume` with ``prepare``); the labels
go into that batch's own transaction, and it is acknowledged only after it.

The alert rules run on what is scored past their durable watermark, as in a folder cycle, but
paced: after a batch when the consumer has caught up with the stream (a short batch, an empty
fetch, the end of a drain), and while a backlog is being worked off at most every
:data:`EVALUATE_EVERY_S` seconds and never for more than :data:`EVALUATE_SHARE` of the time (an
evaluation reads the rules' whole baseline history, so one per batch would cost more than the
batch itself).

``aigc finance publish --to redis://HOST/STREAM FILE...`` reads each file like the folder
ingestion does (CSV, JSON Lines, RSS, Atom; every record checked, a bad one stops the command
before anything is sent), then appends one message per item, keyed by its id
(:func:`~apps.finance_monitor.sources.encode_message`). Publishing the same file twice sends its
items twice; the monitor stores each id once, and NATS drops repeats within its duplicate window
(``Nats-Msg-Id``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from apps.finance_monitor.errors import DataError
from apps.finance_monitor.monitor import WORKER_JOIN_S, CycleResult, Monitor
from apps.finance_monitor.outbox import DeliveryWorker
from apps.finance_monitor.scoring import Label
from apps.finance_monitor.sources import NewsItem, encode_message, parse_message, read_news
from core.bus import BusMessage, BusSettings, BusSource, ConsumeStats, consume, open_publisher
from core.storage import StorageError

logger = logging.getLogger(__name__)

#: A fetched batch parsed and labelled: its items, ``{message id: error}``, ``{title: label}``.
Prepared = tuple[list[NewsItem], dict[str, str], dict[str, Label] | None]

CHUNK = 1000  # messages per publish call
EVALUATE_EVERY_S = 2.0  # while behind: alert rules at most this often...
EVALUATE_SHARE = 0.25  # ...and for at most this share of the time


def consume_feed(
    monitor: Monitor,
    source: BusSource,
    settings: BusSettings = BusSettings(),
    stop: threading.Event | None = None,
    *,
    drain: bool = False,
    on_cycle: Callable[[CycleResult], None] | None = None,
) -> tuple[CycleResult, ConsumeStats]:
    """Run ``monitor`` over a bus: each batch stored and scored, then acknowledged; rules paced.

    Deliveries go out from a background worker unless ``drain`` (then call ``monitor.deliver()``).

    Args:
        monitor: The monitor (its ingestor, scorer, rules and outbox).
        source: An open bus source (:func:`core.bus.open_source`).
        settings: Batch size, fetch wait, consecutive failures tolerated.
        stop: Set it to stop after the batch in progress.
        drain: Return once every message of the group is acknowledged (``--once``).
        on_cycle: Called after every batch with what it did.

    Returns:
        The batches' cycles summed up, and the consumer's counts.

    Raises:
        BusError: The broker failed ``settings.max_failures`` times in a row.
        StorageError, SQLAlchemyError: The database did (what was committed stays).
    """
    total = CycleResult()
    worker = None if drain else DeliveryWorker(monitor.sender, poll_s=max(settings.wait_s, 0.05))
    due = 0.0  # time.monotonic() of the next paced evaluation

    def evaluate(result: CycleResult) -> None:
        nonlocal due
        started = time.monotonic()
        result.evaluated, alerts = monitor.evaluate_pending()
        result.alerts = [a.id for a in alerts]
        spent = time.monotonic() - started
        due = started + max(EVALUATE_EVERY_S, spent / EVALUATE_SHARE)
        total.evaluated += result.evaluated
        total.alerts += result.alerts
        if alerts and worker is not None:
            worker.wake()

    def prepare(messages: Sequence[BusMessage]) -> Prepared:
        # On consume's worker thread, while the batch before commits: the model releases the GIL.
        items, rejected = parse_messages(source.url, messages, monitor)
        labels = monitor.scorer.label_titles([i.title for i in items], monitor.model_batch_size)
        return items, rejected, labels

    def handle(messages: Sequence[BusMessage], prepared: Prepared | None = None) -> dict[str, str]:
        items, rejected, labels = prepared or (*parse_messages(source.url, messages, monitor), None)
        result = monitor.commit_batch(items, labels)
        result.errors = list(rejected.values())
        if len(messages) < settings.batch or time.monotonic() >= due:
            evaluate(result)
        total.new_items += result.new_items
        total.scored += result.scored
        total.errors += result.errors
        if on_cycle is not None:
            on_cycle(result)
        return rejected

    if worker is not None:
        worker.start()
    try:
        # Items stored but never scored (a folder cycle or an older version that died in between):
        # batches score only their own items.
        total.scored += monitor.score_unscored()
        stats = consume(
            source,
            handle,
            settings,
            stop=stop,
            drain=drain,
            retry_on=(StorageError, SQLAlchemyError),
            on_idle=lambda: evaluate(CycleResult()),
            prepare=prepare if settings.pipeline else None,
        )
        evaluate(CycleResult())  # what the last batches scored
    finally:
        if worker is not None:
            worker.stop()
            worker.join(timeout=WORKER_JOIN_S)
    return total, stats


def parse_messages(
    url: str, messages: Sequence[BusMessage], monitor: Monitor
) -> tuple[list[NewsItem], dict[str, str]]:
    """The items of ``messages``, and ``{message id: error}`` for those that are not valid items.

    Args:
        url: The bus URL (masked), for the items' origin and the errors.
        messages: A fetched batch.
        monitor: Its ingestor's default source and time zone apply.
    """
    items: list[NewsItem] = []
    rejected: dict[str, str] = {}
    for message in messages:
        try:
            items.append(
                parse_message(
                    message.data,
                    f"{url}#{message.id}",
                    default_source=monitor.ingestor.default_source,
                    assume_tz=monitor.ingestor.assume_tz,
                )
            )
        except DataError as err:
            rejected[message.id] = str(err)
            logger.error("Bad message", extra={"url": url, "message_id": message.id, "error": str(err)})
    return items, rejected


def publish_items(url: str, items: Iterable[NewsItem], chunk: int = CHUNK) -> int:
    """Publish ``items`` in order to the bus at ``url``.

    Returns:
        The number of messages the broker stored.

    Raises:
        ValueError: Not a bus URL.
        BusError: The broker is unreachable or refused a message.
    """
    sent = 0
    batch: list[tuple[str, bytes]] = []
    with open_publisher(url) as publisher:
        for item in items:
            batch.append((item.id, encode_message(item)))
            if len(batch) >= chunk:
                sent += publisher.publish(batch)
                batch = []
        if batch:
            sent += publisher.publish(batch)
        logger.info("Published news", extra={"url": publisher.url, "messages": sent})
    return sent


def publish_files(url: str, paths: Sequence[str | Path], *, default_source: str | None = None) -> int:
    """Read every file first (all must be valid), then publish their items in file order.

    Returns:
        The number of messages the broker stored.

    Raises:
        FileNotFoundError: A file is missing.
        DataError: A bad record (naming file, row and field); nothing was published.
        ValueError: Not a bus URL.
        BusError: The broker is unreachable.
    """
    items = [item for path in paths for item in read_news(path, default_source=default_source)]
    return publish_items(url, items)

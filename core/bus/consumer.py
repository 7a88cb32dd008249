"""The at-least-once consume loop: fetch a batch, let the caller commit it, then acknowledge.

:func:`consume` repeats *fetch -> handle -> dead-letter the rejects -> ack*. ``handle`` stores
what the messages carry in one or more transactions and returns the messages it can never
process (bad payloads) with a reason; only after it returns are the messages acknowledged. A
process killed anywhere in between gets the batch again: ``handle`` must therefore be idempotent
(skip what is already stored, by a natural key), and then nothing is lost and nothing doubled.

A message delivered more than ``BusSettings.max_deliveries`` times is dead-lettered without being
handled: something in it kills or fails the consumer every time, and a crash loop would stop the
whole stream behind it.

With ``prepare``, the work on a batch that needs no commit order (parsing, a model) runs on a worker
thread as soon as the batch is fetched, so it overlaps the commit of the batch before: the next
batch is fetched *before* the current one is handled. Batches are still handled and acknowledged
one at a time, in fetch order, each only after its own ``handle`` returned; the batch fetched ahead
is unacknowledged until then, so a kill delivers it again like any other.

While a batch is handled, a second thread tells the broker every third of its timeout
(``min(ack_wait_s, claim_idle_s) / 3``) that the batch, and the one fetched ahead, are still being
worked on (:meth:`~core.bus.base.BusSource.extend`): a commit that takes longer than the timeout (a
digest written by a language model, a slow database) is not delivered again to another replica
while this one still holds it.

Fault point (:mod:`core.failpoints`): ``bus.before_ack``, after ``handle`` returned and before
the batch is acknowledged, the window in which a kill makes the broker deliver committed messages
again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from core.bus.base import BusError, BusMessage, BusSettings, BusSource
from core.failpoints import failpoint

logger = logging.getLogger(__name__)

#: ``handle(messages) -> {message id: reason}`` for the messages to dead-letter; with ``prepare``,
#: ``handle(messages, prepared)``.
Handler = Callable[..., Mapping[str, str]]
#: ``prepare(messages) -> anything``: run on a worker thread; its result goes to ``handle``.
Preparer = Callable[[Sequence[BusMessage]], Any]


@dataclass
class ConsumeStats:
    """What :func:`consume` did."""

    batches: int = 0
    messages: int = 0
    acked: int = 0
    dead_lettered: int = 0
    redelivered: int = 0  # messages delivered more than once (a restart, a takeover, a release)
    failures: int = 0  # batches that failed and were released


@dataclass
class _Batch:
    """A fetched batch: its poison messages, and its ``prepare`` running on the worker."""

    messages: list[BusMessage]
    rejected: dict[str, str]
    prepared: Future[Any] | None = field(default=None)

    @property
    def healthy(self) -> list[BusMessage]:
        return [m for m in self.messages if m.id not in self.rejected]


def consume(
    source: BusSource,
    handle: Handler,
    settings: BusSettings = BusSettings(),
    *,
    stop: threading.Event | None = None,
    drain: bool = False,
    retry_on: tuple[type[BaseException], ...] = (),
    on_batch: Callable[[Sequence[BusMessage]], None] | None = None,
    on_idle: Callable[[], None] | None = None,
    prepare: Preparer | None = None,
) -> ConsumeStats:
    """Consume ``source`` until ``stop`` is set (or, with ``drain``, until everything is acknowledged).

    Args:
        source: The stream.
        handle: Commits a batch and returns ``{message id: reason}`` for messages that can never
            be processed; they are dead-lettered, the others acknowledged.
        settings: Batch size, fetch wait, and ``max_failures``.
        stop: Set it (a signal handler) to stop after the batch in progress (and the one fetched
            ahead of it, with ``prepare``).
        drain: Return once a fetch comes back empty and the group has no message left unacknowledged
            (``--once``).
        retry_on: Errors of ``handle`` (and ``prepare``) that release the batch and retry it (a
            database that went away); :class:`BusError` is always retried. Others propagate (the
            batch stays unacknowledged and comes back after a restart).
        on_batch: Called after each acknowledged batch.
        on_idle: Called when a fetch finds nothing (the consumer has caught up); its errors are
            handled like ``handle``'s.
        prepare: Called on a worker thread with the healthy messages of each batch as soon as it
            is fetched, while the batch before is handled; ``handle`` is then called as
            ``handle(messages, prepared)``. For work that needs no commit order (it may see a
            batch again after a failure): parsing, a model. ``None``: one batch at a time.

    Returns:
        Counts of what was done.

    Raises:
        BusError: The broker failed ``max_failures`` times in a row.
        Exception: ``handle`` failed ``max_failures`` times in a row with an error of ``retry_on``,
            or once with any other error.
    """
    stop = stop or threading.Event()
    stats = ConsumeStats()
    failures = 0
    worker = ThreadPoolExecutor(1, thread_name_prefix="bus-prepare") if prepare is not None else None
    ahead: _Batch | None = None  # fetched and being prepared, not handled yet
    try:
        while True:
            current, ahead = ahead, None
            if current is None and stop.is_set():
                break
            try:
                messages: list[BusMessage] = []
                if not stop.is_set():
                    # With a batch in flight, take only what is there already: it is committed first.
                    messages = source.fetch(settings.batch, 0.0 if current is not None else settings.wait_s)
                if messages:
                    fetched = _Batch(messages, _poison(messages, settings.max_deliveries))
                    if worker is not None and prepare is not None and fetched.healthy:
                        fetched.prepared = worker.submit(prepare, fetched.healthy)
                    if worker is not None and current is None:
                        ahead = fetched  # fetch the next one while this one is prepared
                        continue
                    current, ahead = (current, fetched) if current is not None else (fetched, None)
                if current is None:
                    if on_idle is not None:
                        on_idle()
                    # Drained once the group has nothing unacknowledged left: messages a killed consumer
                    # held come back after the broker's timeout (claim_idle_s, ack_wait_s), so wait for them.
                    if drain and source.pending() == 0:
                        break
                    continue
                with _kept_alive(source, [current, ahead], _keepalive_every(settings)):
                    _finish(source, current, handle, worker is not None)
            except (BusError, *retry_on) as err:
                failures += 1
                stats.failures += 1
                held = [b for b in (current, ahead) if b is not None]
                logger.error(
                    "Batch failed; it will be delivered again",
                    extra={
                        "url": source.url,
                        "error": str(err),
                        "failures": failures,
                        "messages": sum(len(b.messages) for b in held),
                    },
                )
                for batch in held:  # the batch fetched ahead too: it is delivered again after the failed one
                    _settle(batch)
                    source.release(batch.messages)
                ahead = None
                if failures >= settings.max_failures:
                    raise
                stop.wait(min(2.0 ** (failures - 1), 30.0))
                continue
            failures = 0
            _count(stats, current)
            if on_batch is not None:
                on_batch(current.messages)
    finally:
        if worker is not None:
            worker.shutdown(wait=True, cancel_futures=True)
    logger.info(
        "Consumer stopped",
        extra={
            "url": source.url,
            "batches": stats.batches,
            "messages": stats.messages,
            "dead": stats.dead_lettered,
        },
    )
    return stats


def _finish(source: BusSource, batch: _Batch, handle: Handler, prepared: bool) -> None:
    """Handle ``batch`` (with what ``prepare`` made of it), dead-letter its rejects, acknowledge the rest."""
    rejected = batch.rejected
    healthy = batch.healthy
    if healthy:
        if prepared:
            result = batch.prepared.result() if batch.prepared is not None else None
            rejected.update(handle(healthy, result))
        else:
            rejected.update(handle(healthy))
    failpoint("bus.before_ack")
    for message in batch.messages:
        if message.id in rejected:
            source.dead_letter(message, rejected[message.id])
    source.ack([m for m in batch.messages if m.id not in rejected])


def _keepalive_every(settings: BusSettings) -> float:
    """Seconds between two :meth:`BusSource.extend` calls: a third of the shorter broker timeout."""
    return max(min(settings.ack_wait_s, settings.claim_idle_s) / 3, 0.1)


@contextmanager
def _kept_alive(source: BusSource, batches: Sequence[_Batch | None], every_s: float) -> Iterator[None]:
    """Extend the broker's hold on ``batches`` every ``every_s`` seconds until the block ends."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every_s):
            held = [m for b in batches if b is not None for m in b.messages]
            try:
                source.extend(held)
            except Exception as err:  # noqa: BLE001 - the broker redelivers at worst; the commit goes on
                logger.warning(
                    "Could not extend the hold on a batch", extra={"url": source.url, "error": str(err)}
                )
            else:
                logger.debug("Extended the hold on a batch", extra={"url": source.url, "messages": len(held)})

    thread = threading.Thread(target=beat, name="bus-keepalive", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _settle(batch: _Batch) -> None:
    """Wait for ``batch``'s ``prepare`` (its result is dropped), so a release never races it."""
    if batch.prepared is not None and not batch.prepared.cancel():
        try:
            batch.prepared.result()
        except Exception:  # noqa: BLE001 - the batch is released and delivered again anyway
            logger.debug("Prepare of a released batch failed", exc_info=True)


def _count(stats: ConsumeStats, batch: _Batch) -> None:
    stats.batches += 1
    stats.messages += len(batch.messages)
    stats.dead_lettered += sum(1 for m in batch.messages if m.id in batch.rejected)
    stats.acked += sum(1 for m in batch.messages if m.id not in batch.rejected)
    stats.redelivered += sum(1 for m in batch.messages if m.deliveries > 1)


def _poison(messages: Sequence[BusMessage], max_deliveries: int) -> dict[str, str]:
    """Messages delivered more than ``max_deliveries`` times: each earlier attempt died or failed on them."""
    if max_deliveries <= 0:
        return {}
    return {
        m.id: f"delivered {m.deliveries} times without an ack: processing it fails or kills the consumer"
        for m in messages
        if m.deliveries > max_deliveries
    }


__all__ = ["ConsumeStats", "Handler", "Preparer", "consume"]

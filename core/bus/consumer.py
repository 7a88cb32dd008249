"""The at-least-once consume loop: fetch a batch, let the caller commit it, then acknowledge.

:func:`consume` repeats *fetch -> handle -> dead-letter the rejects -> ack*. ``handle`` stores
what the messages carry in one or more transactions and returns the messages it can never
process (bad payloads) with a reason; only after it returns are the messages acknowledged. A
process killed anywhere in between gets the batch again: ``handle`` must therefore be idempotent
(skip what is already stored, by a natural key), and then nothing is lost and nothing doubled.

A message delivered more than ``BusSettings.max_deliveries`` times is dead-lettered without being
handled: something in it kills or fails the consumer every time, and a crash loop would stop the
whole stream behind it.

Fault point (:mod:`core.failpoints`): ``bus.before_ack``, after ``handle`` returned and before
the batch is acknowledged, the window in which a kill makes the broker deliver committed messages
again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from core.bus.base import BusError, BusMessage, BusSettings, BusSource
from core.failpoints import failpoint

logger = logging.getLogger(__name__)

#: ``handle(messages) -> {message id: reason}`` for the messages to dead-letter.
Handler = Callable[[Sequence[BusMessage]], Mapping[str, str]]


@dataclass
class ConsumeStats:
    """What :func:`consume` did."""

    batches: int = 0
    messages: int = 0
    acked: int = 0
    dead_lettered: int = 0
    redelivered: int = 0  # messages delivered more than once (a restart, a takeover, a release)
    failures: int = 0  # batches that failed and were released


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
) -> ConsumeStats:
    """Consume ``source`` until ``stop`` is set (or, with ``drain``, until everything is acknowledged).

    Args:
        source: The stream.
        handle: Commits a batch and returns ``{message id: reason}`` for messages that can never
            be processed; they are dead-lettered, the others acknowledged.
        settings: Batch size, fetch wait, and ``max_failures``.
        stop: Set it (a signal handler) to stop after the batch in progress.
        drain: Return once a fetch comes back empty and the group has no message left unacknowledged
            (``--once``).
        retry_on: Errors of ``handle`` that release the batch and retry it (a database that went
            away); :class:`BusError` is always retried. Others propagate (the batch stays
            unacknowledged and comes back after a restart).
        on_batch: Called after each acknowledged batch.
        on_idle: Called when a fetch finds nothing (the consumer has caught up); its errors are
            handled like ``handle``'s.

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
    while not stop.is_set():
        messages: list[BusMessage] = []
        try:
            messages = source.fetch(settings.batch, settings.wait_s)
            if not messages:
                if on_idle is not None:
                    on_idle()
                # Drained once the group has nothing unacknowledged left: messages a killed consumer
                # held come back after the broker's timeout (claim_idle_s, ack_wait_s), so wait for them.
                if drain and source.pending() == 0:
                    break
                continue
            rejected = _poison(messages, settings.max_deliveries)
            healthy = [m for m in messages if m.id not in rejected]
            if healthy:
                rejected.update(handle(healthy))
            failpoint("bus.before_ack")
            for message in messages:
                if message.id in rejected:
                    source.dead_letter(message, rejected[message.id])
            source.ack([m for m in messages if m.id not in rejected])
        except (BusError, *retry_on) as err:
            failures += 1
            stats.failures += 1
            logger.error(
                "Batch failed; it will be delivered again",
                extra={"url": source.url, "error": str(err), "failures": failures, "messages": len(messages)},
            )
            if messages:
                source.release(messages)
            if failures >= settings.max_failures:
                raise
            stop.wait(min(2.0 ** (failures - 1), 30.0))
            continue
        failures = 0
        stats.batches += 1
        stats.messages += len(messages)
        stats.dead_lettered += sum(1 for m in messages if m.id in rejected)
        stats.acked += sum(1 for m in messages if m.id not in rejected)
        stats.redelivered += sum(1 for m in messages if m.deliveries > 1)
        if on_batch is not None:
            on_batch(messages)
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


def _poison(messages: Sequence[BusMessage], max_deliveries: int) -> dict[str, str]:
    """Messages delivered more than ``max_deliveries`` times: each earlier attempt died or failed on them."""
    if max_deliveries <= 0:
        return {}
    return {
        m.id: f"delivered {m.deliveries} times without an ack: processing it fails or kills the consumer"
        for m in messages
        if m.deliveries > max_deliveries
    }


__all__ = ["ConsumeStats", "Handler", "consume"]

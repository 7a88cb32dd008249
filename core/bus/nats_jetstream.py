"""NATS JetStream: a durable pull consumer, explicit acknowledgement after the commit.

The stream is the one given as ``?stream=NAME``, else the stream that holds the subject, else a
new file-backed stream for the subject alone (named after it: ``news.eu`` -> ``NEWS_EU``). The
durable consumer (named by ``BusSettings.group``) is created on first use with explicit acks and
``ack_wait = BusSettings.ack_wait_s``; JetStream itself delivers again what a killed process
never acknowledged, once that wait is over (30 s by default), and a restarted process gets it
back then.

A dead letter is published to ``deadletter.SUBJECT`` (stream ``STREAM_DEAD``, created on first use)
with the reason and original sequence in headers, and only once JetStream has stored it is the
original terminated (``term``: never delivered again). Publishing sets ``Nats-Msg-Id`` to each
message's key, so JetStream drops a message published twice within its duplicate window.

nats-py is asyncio-only; the source runs its own event loop in a daemon thread and calls into it,
so the connection keeps answering server pings while the caller is busy scoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from core.bus.address import BusAddress
from core.bus.base import BusError, BusMessage, BusPublisher, BusSettings, BusSource

logger = logging.getLogger(__name__)

DEAD_PREFIX = "deadletter."
_CALL_TIMEOUT_S = 30.0
_CONNECT_ATTEMPTS = 2
_RECONNECT_ATTEMPTS = 60  # about a minute, 1 s apart
_INVALID_STREAM_CHARS = re.compile(r"[^A-Za-z0-9_-]")
T = TypeVar("T")


def stream_name_for(subject: str) -> str:
    """The name of the stream created for ``subject`` (``news.eu`` -> ``NEWS_EU``)."""
    return _INVALID_STREAM_CHARS.sub("_", subject).upper()


class _Loop:
    """An asyncio event loop in a daemon thread; :meth:`run` waits for a coroutine from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nats-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = _CALL_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Cancel what is still running on the loop (the client's reader and pinger), then end it."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        with contextlib.suppress(TimeoutError, RuntimeError):
            self.run(cancel_all(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        if not self.thread.is_alive():
            self.loop.close()


class _Connection:
    """A NATS connection with JetStream, on its own loop."""

    def __init__(self, address: BusAddress) -> None:
        self.url = address.masked
        self.address = address
        self.loop = _Loop()
        try:
            self.nc = self.call(self._connect(), "connecting")
        except BaseException:
            self.loop.stop()
            raise
        self.js = self.nc.jetstream()

    def call(self, coro: Coroutine[Any, Any, T], action: str, timeout: float = _CALL_TIMEOUT_S) -> T:
        try:
            return self.loop.run(coro, timeout)
        except (nats.errors.Error, OSError, TimeoutError) as err:
            raise BusError(
                f"NATS at {self.url}: {action} failed: {type(err).__name__} {err}".rstrip()
            ) from None

    async def _connect(self) -> Any:
        auth: dict[str, str] = {}
        if self.address.password is not None:
            auth = {"user": self.address.username or "", "password": self.address.password}
        elif self.address.username:
            auth = {"token": self.address.username}

        async def on_error(err: Exception) -> None:
            logger.warning("NATS connection error", extra={"url": self.url, "error": str(err)})

        nc = await nats.connect(
            servers=[self.address.server_url()],
            name="aigc",
            connect_timeout=5,
            max_reconnect_attempts=_CONNECT_ATTEMPTS,
            reconnect_time_wait=1,
            error_cb=on_error,
            **auth,
        )
        # nats-py applies one attempt limit to the first connection and to reconnections: a broker
        # that is down at start fails fast, one that restarts later is waited for.
        nc.options["max_reconnect_attempts"] = _RECONNECT_ATTEMPTS
        return nc

    async def ensure_stream(self, subject: str, stream: str | None) -> str:
        """The stream holding ``subject`` (``stream`` if given), created for it when there is none."""
        if stream is None:
            try:
                return await self.js.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                stream = stream_name_for(subject)
        try:
            await self.js.stream_info(stream)
        except nats.js.errors.NotFoundError:
            await self.js.add_stream(name=stream, subjects=[subject])
            logger.info("Created JetStream stream", extra={"url": self.url, "stream": stream})
        return stream

    def close(self) -> None:
        try:
            self.call(self.nc.close(), "closing", timeout=10)
        except BusError as err:
            logger.warning("NATS close failed", extra={"url": self.url, "error": str(err)})
        finally:
            self.loop.stop()


class NatsJetStreamSource(BusSource):
    """Consumes a subject through a durable JetStream pull consumer.

    Args:
        address: Parsed ``nats://`` URL (its path names the subject).
        settings: Durable name (``group``) and the ack wait.

    Raises:
        BusError: NATS is unreachable, JetStream is off, or the dead-letter subject would land in
            the source's own stream.
    """

    def __init__(self, address: BusAddress, settings: BusSettings) -> None:
        self.url = address.masked
        self.subject = address.name
        self.dead_subject = DEAD_PREFIX + address.name
        self.durable = settings.group
        self._conn = _Connection(address)
        try:
            self.stream, self._sub = self._conn.call(self._subscribe(address, settings), "subscribing")
        except BaseException:
            self._conn.close()
            raise
        self._dead_ready = False

    async def _subscribe(self, address: BusAddress, settings: BusSettings) -> tuple[str, Any]:
        stream = await self._conn.ensure_stream(self.subject, address.params.get("stream"))
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_s,
        )
        sub = await self._conn.js.pull_subscribe(
            self.subject, durable=self.durable, stream=stream, config=config
        )
        return stream, sub

    def fetch(self, max_messages: int, wait_s: float) -> list[BusMessage]:
        async def fetch() -> list[Any]:
            try:
                return await self._sub.fetch(batch=max_messages, timeout=max(wait_s, 0.05))
            except TimeoutError:  # nats' own, or asyncio's when the client-side wait runs out first (load)
                return []

        msgs = self._conn.call(fetch(), "fetching", timeout=wait_s + _CALL_TIMEOUT_S)
        return [
            BusMessage(str(m.metadata.sequence.stream), m.data, int(m.metadata.num_delivered), m)
            for m in msgs
        ]

    def ack(self, messages: Sequence[BusMessage]) -> None:
        async def ack() -> None:
            for m in messages:
                await m.ref.ack()
            await self._conn.nc.flush()  # the acks have reached the server

        self._conn.call(ack(), "acknowledging")

    def dead_letter(self, message: BusMessage, reason: str) -> None:
        async def dead_letter() -> None:
            if not self._dead_ready:
                dead_stream = await self._conn.ensure_stream(self.dead_subject, None)
                if dead_stream == self.stream:
                    raise BusError(
                        f"NATS at {self.url}: the dead-letter subject {self.dead_subject} belongs to the "
                        f"source stream {self.stream}; narrow that stream's subjects"
                    )
                self._dead_ready = True
            headers = {
                "Aigc-Reason": " ".join(reason.split())[:4000],
                "Aigc-Sequence": message.id,
                "Aigc-Durable": self.durable,
            }
            await self._conn.js.publish(self.dead_subject, message.data, headers=headers)
            await message.ref.term()
            await self._conn.nc.flush()

        self._conn.call(dead_letter(), "dead-lettering")
        logger.warning(
            "Message dead-lettered",
            extra={
                "url": self.url,
                "message_id": message.id,
                "dead_letters": self.dead_subject,
                "reason": reason,
            },
        )

    def extend(self, messages: Sequence[BusMessage]) -> None:
        async def in_progress() -> None:
            for m in messages:
                await m.ref.in_progress()  # +WPI: ack_wait starts again
            await self._conn.nc.flush()

        self._conn.call(in_progress(), "extending the ack wait")

    def release(self, messages: Sequence[BusMessage]) -> None:
        async def nak() -> None:
            for m in messages:
                await m.ref.nak()
            await self._conn.nc.flush()

        try:
            self._conn.call(nak(), "releasing")
        except BusError as err:  # not acknowledged either: JetStream delivers them after ack_wait
            logger.warning("Could not release messages", extra={"url": self.url, "error": str(err)})

    def pending(self) -> int:
        info = self._conn.call(self._conn.js.consumer_info(self.stream, self.durable), "reading the consumer")
        return int(info.num_ack_pending or 0) + int(info.num_pending or 0)

    def close(self) -> None:
        self._conn.close()


class NatsJetStreamPublisher(BusPublisher):
    """Publishes to a JetStream subject (the stream created if none holds it), waiting for every ack."""

    def __init__(self, address: BusAddress) -> None:
        self.url = address.masked
        self.subject = address.name
        self._conn = _Connection(address)
        try:
            self._conn.call(self._conn.ensure_stream(self.subject, address.params.get("stream")), "creating")
        except BaseException:
            self._conn.close()
            raise

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> int:
        async def publish() -> int:
            futures = [
                await self._conn.js.publish_async(self.subject, payload, headers={"Nats-Msg-Id": key})
                for key, payload in messages
            ]
            acks = await asyncio.gather(*futures)
            return sum(1 for a in acks if not getattr(a, "duplicate", False))

        return self._conn.call(publish(), "publishing", timeout=_CALL_TIMEOUT_S + len(messages) / 100)

    def close(self) -> None:
        self._conn.close()


def remove_stream(address: BusAddress) -> None:
    """Delete the streams holding the subject and its dead letters (with their consumers).

    Raises:
        BusError: NATS is unreachable.
    """
    conn = _Connection(address)

    async def delete() -> None:
        for subject in (address.name, DEAD_PREFIX + address.name):
            try:
                await conn.js.delete_stream(await conn.js.find_stream_name_by_subject(subject))
            except nats.js.errors.NotFoundError:
                continue

    try:
        conn.call(delete(), "deleting")
    finally:
        conn.close()


__all__ = ["DEAD_PREFIX", "NatsJetStreamPublisher", "NatsJetStreamSource", "remove_stream", "stream_name_for"]

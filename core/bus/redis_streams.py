"""Redis Streams: a consumer group read with XREADGROUP, acknowledged with XACK after the commit.

Each entry carries the payload in its field ``data`` (and the publisher's key in ``key``); an
entry without ``data`` (``XADD news * title "..." timestamp "..."``) is read as the JSON object of
its fields. The group is created with MKSTREAM when absent, reading from the start of the stream, so entries
published before the first consumer started are not skipped.

What a fetch returns, in this order:

1. this consumer's own pending entries (delivered before, never acknowledged: the process was
   killed, or :meth:`RedisStreamSource.release` was called), read with ``XREADGROUP ... 0``;
2. entries other consumers of the group left pending for ``claim_idle_s`` (a dead replica),
   taken over with ``XAUTOCLAIM``; the scan runs at start and again every ``claim_idle_s / 2``;
3. new entries, ``XREADGROUP ... >`` blocking up to ``wait_s``.

A dead letter is ``XADD STREAM:dead`` (original id, reason, payload, group, consumer) and
``XACK`` in one MULTI/EXEC transaction, so it is either recorded and acknowledged or neither.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import RedisError, ResponseError

from core.bus.address import BusAddress
from core.bus.base import BusError, BusMessage, BusPublisher, BusSettings, BusSource

logger = logging.getLogger(__name__)

DATA_FIELD = "data"
KEY_FIELD = "key"
DEAD_SUFFIX = ":dead"
DEAD_MAXLEN = 100_000  # dead letters kept (approximately) per stream
_CHUNK = 500  # entries per XACK / pipeline


def _client(address: BusAddress, timeout_s: float) -> redis.Redis:
    return redis.Redis(
        host=address.host,
        port=address.port,
        db=int(address.params.get("db", "0")),
        username=address.username,
        password=address.password,
        ssl=address.tls,
        socket_connect_timeout=5,
        socket_timeout=timeout_s,
        decode_responses=False,
    )


@contextmanager
def _errors(url: str, action: str) -> Iterator[None]:
    try:
        yield
    except RedisError as err:
        raise BusError(f"Redis at {url}: {action} failed: {err}") from None


class RedisStreamSource(BusSource):
    """Consumes a Redis stream as one consumer of a consumer group.

    Args:
        address: Parsed ``redis://`` URL (its path names the stream).
        settings: Group, consumer name, claim interval.

    Raises:
        BusError: Redis is unreachable, or the key holds something other than a stream.
    """

    def __init__(self, address: BusAddress, settings: BusSettings) -> None:
        self.url = address.masked
        self.stream = address.name
        self.dead_stream = address.name + DEAD_SUFFIX
        self.group = settings.group
        self.consumer = settings.consumer_name()
        self.claim_idle_ms = max(1, int(settings.claim_idle_s * 1000))
        self._claim_every_s = max(settings.claim_idle_s / 2, 0.5)
        self._redis = _client(address, timeout_s=settings.wait_s + 10)
        self._backlog = True  # own pending entries first...
        self._backlog_after = "0"  # ...past those handed out already (a consumer may hold two batches)
        self._claim_cursor: bytes | str = "0-0"
        self._next_claim = 0.0
        with _errors(self.url, "creating the consumer group"):
            try:
                self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
                logger.info("Created consumer group", extra={"url": self.url, "group": self.group})
            except ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise

    def fetch(self, max_messages: int, wait_s: float) -> list[BusMessage]:
        with _errors(self.url, "reading"):
            if self._backlog:
                entries = self._read(self._backlog_after, max_messages, None)
                if entries:
                    last = entries[-1][0]
                    self._backlog_after = last.decode() if isinstance(last, bytes) else str(last)
                    return self._messages(entries, redelivered=True)
                self._backlog = False
            if time.monotonic() >= self._next_claim:
                claimed = self._claim(max_messages)
                if claimed:
                    return self._messages(claimed, redelivered=True)
            block = int(wait_s * 1000)
            return self._messages(self._read(">", max_messages, block if block > 0 else None))

    def ack(self, messages: Sequence[BusMessage]) -> None:
        ids = [m.id for m in messages]
        with _errors(self.url, "acknowledging"):
            for start in range(0, len(ids), _CHUNK):
                self._redis.xack(self.stream, self.group, *ids[start : start + _CHUNK])

    def dead_letter(self, message: BusMessage, reason: str) -> None:
        record = {
            "id": message.id,
            "reason": reason,
            DATA_FIELD: message.data,
            "group": self.group,
            "consumer": self.consumer,
            "deliveries": message.deliveries,
        }
        with _errors(self.url, "dead-lettering"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.xadd(self.dead_stream, record, maxlen=DEAD_MAXLEN, approximate=True)
            pipe.xack(self.stream, self.group, message.id)
            pipe.execute()
        logger.warning(
            "Message dead-lettered",
            extra={
                "url": self.url,
                "message_id": message.id,
                "dead_letters": self.dead_stream,
                "reason": reason,
            },
        )

    def extend(self, messages: Sequence[BusMessage]) -> None:
        # XCLAIM by the owner with JUSTID resets the entries' idle time without counting a delivery,
        # so XAUTOCLAIM of another consumer leaves them alone.
        ids = [m.id for m in messages]
        with _errors(self.url, "extending the claim"):
            for start in range(0, len(ids), _CHUNK):
                self._redis.xclaim(
                    self.stream, self.group, self.consumer, 0, ids[start : start + _CHUNK], justid=True
                )

    def release(self, messages: Sequence[BusMessage]) -> None:
        # They stay in this consumer's pending list; the next fetch reads that list first.
        self._backlog, self._backlog_after = True, "0"

    def pending(self) -> int:
        with _errors(self.url, "reading the group's state"):
            for info in self._redis.xinfo_groups(self.stream):
                name = info["name"].decode() if isinstance(info["name"], bytes) else info["name"]
                if name == self.group:
                    lag = info.get("lag")
                    if lag is None:  # unknown after deletions: is anything past the group's position?
                        last = self._redis.xinfo_stream(self.stream)["last-generated-id"]
                        lag = int(last != info["last-delivered-id"])
                    return int(info["pending"]) + int(lag)
        return 0

    def close(self) -> None:
        self._redis.close()

    def _read(self, start: str, count: int, block: int | None) -> list[tuple[bytes, Any]]:
        reply = self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block
        )
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3
            return list(next(iter(reply.values()))[0]) if reply else []
        return list(reply[0][1])

    def _claim(self, count: int) -> list[tuple[bytes, Any]]:
        reply = self._redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=count,
        )
        self._claim_cursor = reply[0]
        if self._claim_cursor in (b"0-0", "0-0"):
            self._next_claim = time.monotonic() + self._claim_every_s
        if reply[1]:
            logger.info(
                "Took over messages of another consumer",
                extra={"url": self.url, "group": self.group, "count": len(reply[1])},
            )
        return list(reply[1])

    def _messages(self, entries: list[tuple[bytes, Any]], redelivered: bool = False) -> list[BusMessage]:
        counts = self._delivery_counts(entries) if redelivered and entries else {}
        out, gone = [], []
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            if not fields:  # trimmed from the stream while pending: nothing left to process
                gone.append(entry_id)
                continue
            out.append(BusMessage(entry_id, _payload(fields), counts.get(entry_id, 1), fields))
        if gone:
            logger.warning(
                "Pending entries no longer in the stream", extra={"url": self.url, "ids": gone[:10]}
            )
            self._redis.xack(self.stream, self.group, *gone)
        return out

    def _delivery_counts(self, entries: list[tuple[bytes, Any]]) -> dict[str, int]:
        ids = [e[0].decode() if isinstance(e[0], bytes) else str(e[0]) for e in entries]
        rows = self._redis.xpending_range(
            self.stream, self.group, min=ids[0], max=ids[-1], count=len(ids) * 2, consumername=self.consumer
        )
        return {
            (r["message_id"].decode() if isinstance(r["message_id"], bytes) else r["message_id"]): int(
                r["times_delivered"]
            )
            for r in rows
        }


def _payload(fields: dict[Any, Any]) -> bytes:
    """The entry's ``data`` field, else its fields as one JSON object (values decoded as UTF-8)."""
    data = fields.get(DATA_FIELD.encode(), fields.get(DATA_FIELD))
    if data is not None:
        return data if isinstance(data, bytes) else str(data).encode()

    def text(value: Any) -> str:
        return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)

    return json.dumps({text(k): text(v) for k, v in fields.items()}, ensure_ascii=False).encode()


class RedisStreamPublisher(BusPublisher):
    """Appends entries ``{key, data}`` to a Redis stream (pipelined, in order)."""

    def __init__(self, address: BusAddress) -> None:
        self.url = address.masked
        self.stream = address.name
        self._redis = _client(address, timeout_s=30)

    def publish(self, messages: Sequence[tuple[str, bytes]]) -> int:
        done = 0
        with _errors(self.url, "publishing"):
            for start in range(0, len(messages), _CHUNK):
                pipe = self._redis.pipeline(transaction=False)
                for key, payload in messages[start : start + _CHUNK]:
                    pipe.xadd(self.stream, {KEY_FIELD: key, DATA_FIELD: payload})
                done += len(pipe.execute())
        return done

    def close(self) -> None:
        self._redis.close()


def remove_stream(address: BusAddress) -> None:
    """Delete the stream and its dead letters (with their consumer groups).

    Raises:
        BusError: Redis is unreachable.
    """
    client = _client(address, timeout_s=30)
    try:
        with _errors(address.masked, "deleting"):
            client.delete(address.name, address.name + DEAD_SUFFIX)
    finally:
        client.close()


__all__ = ["DATA_FIELD", "DEAD_SUFFIX", "RedisStreamPublisher", "RedisStreamSource", "remove_stream"]

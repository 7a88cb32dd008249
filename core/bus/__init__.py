"""Message buses as sources: Redis Streams and NATS JetStream, consumed at least once, acked after commit.

* :mod:`core.bus.address` — ``redis://host/STREAM`` and ``nats://host/SUBJECT`` URLs, masked for logs;
* :mod:`core.bus.base` — :class:`BusSource` / :class:`BusPublisher` and :class:`BusSettings`;
* :mod:`core.bus.consumer` — :func:`consume`, the fetch -> commit -> acknowledge loop;
* :mod:`core.bus.redis_streams`, :mod:`core.bus.nats_jetstream` — the two brokers (``redis``, ``nats-py``).

An app plugs in a handler that stores a batch idempotently and names the messages it rejects::

    with open_source("redis://127.0.0.1:6379/news", BusSettings(group="finance")) as source:
        consume(source, store_batch, settings, drain=True)
"""

from __future__ import annotations

from core.bus.address import BusAddress, is_bus_url, mask_bus_url, parse_bus_url
from core.bus.base import BusError, BusMessage, BusPublisher, BusSettings, BusSource
from core.bus.consumer import ConsumeStats, Handler, consume


def open_source(url: str, settings: BusSettings = BusSettings()) -> BusSource:
    """A source for a bus URL: the consumer group (Redis) or durable consumer (NATS) is created if absent.

    Raises:
        ValueError: Not a bus URL (see :func:`parse_bus_url`).
        BusError: The broker is unreachable.
    """
    address = parse_bus_url(url)
    if address.broker == "redis":
        from core.bus.redis_streams import RedisStreamSource

        return RedisStreamSource(address, settings)
    from core.bus.nats_jetstream import NatsJetStreamSource

    return NatsJetStreamSource(address, settings)


def open_publisher(url: str) -> BusPublisher:
    """A publisher for a bus URL (a NATS stream is created for the subject if none holds it).

    Raises:
        ValueError: Not a bus URL.
        BusError: The broker is unreachable.
    """
    address = parse_bus_url(url)
    if address.broker == "redis":
        from core.bus.redis_streams import RedisStreamPublisher

        return RedisStreamPublisher(address)
    from core.bus.nats_jetstream import NatsJetStreamPublisher

    return NatsJetStreamPublisher(address)


def remove(url: str) -> None:
    """Delete the stream behind ``url`` and its dead letters, consumer groups included (tests, benchmarks).

    On NATS this deletes the whole stream that holds the subject, whatever else it holds.

    Raises:
        ValueError: Not a bus URL.
        BusError: The broker is unreachable.
    """
    address = parse_bus_url(url)
    if address.broker == "redis":
        from core.bus.redis_streams import remove_stream
    else:
        from core.bus.nats_jetstream import remove_stream
    remove_stream(address)


__all__ = [
    "BusAddress",
    "BusError",
    "BusMessage",
    "BusPublisher",
    "BusSettings",
    "BusSource",
    "ConsumeStats",
    "Handler",
    "consume",
    "is_bus_url",
    "mask_bus_url",
    "open_publisher",
    "open_source",
    "parse_bus_url",
    "remove",
]

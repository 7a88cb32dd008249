"""Real Redis and NATS JetStream servers on 127.0.0.1 for the bus tests (``.ci/run`` starts them).

``bus_url`` is parametrised over both brokers and gives each test its own stream / subject, removed
afterwards (with its dead letters and, on NATS, the streams created for them). A broker that does
not answer skips its half with the reason. Import the fixtures into a test module
(``from tests.bus_harness import bus_url``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator

import pytest

from core.bus import parse_bus_url, remove

REDIS = os.environ.get("AIGC_TEST_REDIS", "127.0.0.1:6379")
NATS = os.environ.get("AIGC_TEST_NATS", "127.0.0.1:4222")


def server_up(hostport: str) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = hostport.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def require_server(broker: str) -> str:
    """``host:port`` of ``broker`` (``redis`` or ``nats``), or skip the test saying why."""
    hostport = REDIS if broker == "redis" else NATS
    if not server_up(hostport):
        what = "Redis" if broker == "redis" else "NATS with JetStream (nats-server -js)"
        pytest.skip(f"{what} is not reachable at {hostport}; .ci/run starts it")
    return hostport


def drop(url: str) -> None:
    """Remove the stream behind ``url`` and its dead letters."""
    remove(url)


def dead_letters(url: str) -> list[dict]:
    """The dead-letter records of ``url``: reason and payload of each."""
    address = parse_bus_url(url)
    if address.broker == "redis":
        import redis

        client = redis.Redis(host=address.host, port=address.port, decode_responses=True)
        rows = [fields for _, fields in client.xrange(address.name + ":dead")]
        client.close()
        return [{"reason": r["reason"], "data": r["data"], "id": r["id"]} for r in rows]
    import nats
    import nats.js.errors

    from core.bus.nats_jetstream import DEAD_PREFIX

    async def read() -> list[dict]:
        nc = await nats.connect(f"nats://{address.host}:{address.port}")
        try:
            sub = await nc.jetstream().pull_subscribe(DEAD_PREFIX + address.name)
            msgs = await sub.fetch(100, timeout=2)
        except nats.js.errors.NotFoundError:  # no dead letter ever: no stream for them
            msgs = []
        finally:
            await nc.close()
        return [
            {"reason": m.headers["Aigc-Reason"], "data": m.data.decode(), "id": m.headers["Aigc-Sequence"]}
            for m in msgs
        ]

    return asyncio.run(read())


def fresh_url(broker: str) -> str:
    """A URL naming a stream / subject no other test uses."""
    hostport = require_server(broker)
    return f"{broker}://{hostport}/aigc-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["redis", "nats"])
def bus_url(request) -> Iterator[str]:
    """A fresh ``redis://.../STREAM`` or ``nats://.../SUBJECT`` on the real server, removed after the test."""
    url = fresh_url(request.param)
    try:
        yield url
    finally:
        drop(url)

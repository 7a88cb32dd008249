"""core.bus against the real Redis and NATS JetStream servers: at-least-once delivery, acks, dead letters."""

from __future__ import annotations

import json
import time

import pytest

from core.bus import (
    BusError,
    BusSettings,
    consume,
    is_bus_url,
    mask_bus_url,
    open_publisher,
    open_source,
    parse_bus_url,
)
from tests.bus_harness import bus_url, dead_letters, fresh_url, require_server  # noqa: F401 - fixture

FAST = BusSettings(group="g", consumer="c1", batch=4, wait_s=0.2, ack_wait_s=1.0, claim_idle_s=0.2)


def publish(url: str, n: int) -> list[str]:
    payloads = [(f"k{i}", json.dumps({"i": i}).encode()) for i in range(n)]
    with open_publisher(url) as pub:
        assert pub.publish(payloads) == n
    return [p[1].decode() for p in payloads]


# --- URLs --------------------------------------------------------------------------------------------


def test_urls_are_parsed_with_defaults_and_options():
    a = parse_bus_url("redis://127.0.0.1/news?db=2")
    assert (a.broker, a.host, a.port, a.name, a.params["db"], a.tls) == (
        "redis",
        "127.0.0.1",
        6379,
        "news",
        "2",
        False,
    )
    b = parse_bus_url("tls://user:pw@nats.example:4333/markets.eu?stream=NEWS")
    assert (b.broker, b.port, b.name, b.params, b.tls) == (
        "nats",
        4333,
        "markets.eu",
        {"stream": "NEWS"},
        True,
    )
    assert b.server_url() == "tls://nats.example:4333" and "pw" not in b.server_url()
    assert is_bus_url("rediss://h/s") and not is_bus_url("http://h/s") and not is_bus_url("/tmp/inbox")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://h/news", "use redis://HOST[:PORT]/STREAM"),
        ("redis://h", "the path must name the stream"),
        ("nats://h/", "the path must name the subject"),
        ("redis://:s3cret@h:port/news", "bad bus URL"),
        ("redis://h/news?db=one", "db must be a number"),
        ("redis://h/news?password=s3cret", "unknown parameter 'password'"),
    ],
)
def test_bad_urls_fail_with_the_url_masked(url, problem):
    with pytest.raises(ValueError, match="bad bus URL") as err:
        parse_bus_url(url)
    assert problem in str(err.value) and "s3cret" not in str(err.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:s3cret@h:6379/news", "redis://user:***@h:6379/news"),
        ("redis://:s3cret@h/news", "redis://***@h/news"),
        ("nats://s3crettoken@h/news", "nats://***@h/news"),  # a NATS token sits where a user would
        ("redis://h/news?db=1&password=s3cret", "redis://h/news?db=1&password=***"),
        ("not a url s3cret", "***"),
    ],
)
def test_secrets_are_masked(url, masked):
    assert mask_bus_url(url) == masked
    if "://" in url and "password" not in url:
        assert "s3cret" not in parse_bus_url(url).masked and "s3cret" not in repr(parse_bus_url(url))


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_an_unreachable_broker_is_a_bus_error_without_the_password(broker):
    require_server(broker)  # both halves only where the real servers run, so the port below is surely closed
    url = f"{broker}://user:s3cret@127.0.0.1:1/news"
    started = time.monotonic()
    with pytest.raises(BusError) as err:
        open_source(url, FAST)
    assert "127.0.0.1:1" in str(err.value) and "s3cret" not in str(err.value)
    assert time.monotonic() - started < 30


# --- delivery ----------------------------------------------------------------------------------------


def test_fetch_then_ack_empties_the_group(bus_url):  # noqa: F811 - fixture
    sent = publish(bus_url, 6)
    with open_source(bus_url, FAST) as source:
        assert source.pending() == 6
        first = source.fetch(4, 0.2)
        second = source.fetch(4, 0.2)
        assert [m.data.decode() for m in first + second] == sent  # in order, each once
        assert all(m.deliveries == 1 for m in first + second)
        source.ack(first + second)
        assert source.fetch(4, 0.2) == [] and source.pending() == 0


def test_unacknowledged_messages_come_back_after_a_restart(bus_url):  # noqa: F811 - fixture
    publish(bus_url, 3)
    with open_source(bus_url, FAST) as source:
        taken = source.fetch(4, 0.2)  # then the process "dies": closed without an ack
    assert len(taken) == 3
    with open_source(bus_url, FAST) as source:
        deadline = time.monotonic() + 10  # NATS delivers again after ack_wait (1 s here)
        again = []
        while len(again) < 3 and time.monotonic() < deadline:
            again += source.fetch(4, 0.3)
        assert [m.id for m in again] == [m.id for m in taken]
        assert all(m.deliveries == 2 for m in again)
        source.ack(again)
        assert source.pending() == 0


def test_dead_letters_are_recorded_then_acknowledged(bus_url):  # noqa: F811 - fixture
    sent = publish(bus_url, 2)
    with open_source(bus_url, FAST) as source:
        bad, good = source.fetch(4, 0.2)
        source.dead_letter(bad, "row 1, field 'title': missing title")
        source.ack([good])
        assert source.pending() == 0
    assert dead_letters(bus_url) == [
        {"reason": "row 1, field 'title': missing title", "data": sent[0], "id": bad.id}
    ]


def test_redis_takes_over_what_a_dead_consumer_left_pending():
    from tests.bus_harness import drop

    url = fresh_url("redis")
    try:
        publish(url, 5)
        with open_source(url, FAST) as dead:
            taken = {m.id for m in dead.fetch(3, 0.2)}  # consumer c1 dies holding three entries
        other = BusSettings(group="g", consumer="c2", batch=10, wait_s=0.2, claim_idle_s=0.2)
        with open_source(url, other) as source:
            got = []
            deadline = time.monotonic() + 10
            while len(got) < 5 and time.monotonic() < deadline:
                batch = source.fetch(10, 0.2)  # the two nobody had, and the three once idle for 0.2 s
                source.ack(batch)
                got += batch
            assert len(got) == 5 and len({m.id for m in got}) == 5
            assert {m.id for m in got if m.deliveries > 1} == taken
            assert source.pending() == 0
    finally:
        drop(url)


# --- the consume loop --------------------------------------------------------------------------------


def test_consume_acks_after_the_handler_and_dead_letters_its_rejects(bus_url):  # noqa: F811 - fixture
    sent = publish(bus_url, 10)
    seen: list[str] = []

    def handle(messages):
        seen.extend(m.data.decode() for m in messages)
        return {m.id: "not an item" for m in messages if json.loads(m.data)["i"] == 7}

    with open_source(bus_url, FAST) as source:
        stats = consume(source, handle, FAST, drain=True)
        assert source.pending() == 0
    assert seen == sent
    assert (stats.messages, stats.acked, stats.dead_lettered, stats.batches) == (10, 9, 1, 3)
    assert [d["data"] for d in dead_letters(bus_url)] == [sent[7]]


def test_a_failed_batch_is_released_and_delivered_again(bus_url):  # noqa: F811 - fixture
    publish(bus_url, 3)
    calls: list[list[str]] = []

    class DatabaseDown(Exception):
        pass

    def handle(messages):
        calls.append([m.id for m in messages])
        if len(calls) == 1:
            raise DatabaseDown("the database went away")
        return {}

    with open_source(bus_url, FAST) as source:
        stats = consume(source, handle, FAST, drain=True, retry_on=(DatabaseDown,))
        assert source.pending() == 0
    assert calls[0] == calls[1] and len(calls) == 2  # the same batch, again, then acknowledged
    assert (stats.failures, stats.acked, stats.redelivered) == (1, 3, 3)


def test_other_errors_propagate_and_leave_the_batch_pending(bus_url):  # noqa: F811 - fixture
    publish(bus_url, 2)

    def handle(messages):
        raise RuntimeError("bug")

    with open_source(bus_url, FAST) as source:
        with pytest.raises(RuntimeError, match="bug"):
            consume(source, handle, FAST, drain=True)
        assert source.pending() == 2


def test_a_message_that_keeps_killing_the_consumer_is_dead_lettered(bus_url):  # noqa: F811 - fixture
    sent = publish(bus_url, 2)
    settings = BusSettings(group="g", consumer="c1", batch=4, wait_s=0.3, ack_wait_s=1.0, max_deliveries=2)
    for _ in range(2):  # two consumers die holding both messages
        with open_source(bus_url, settings) as source:
            deadline = time.monotonic() + 10
            while not source.fetch(4, 0.3) and time.monotonic() < deadline:
                pass
    handled: list[str] = []

    def handle(messages):
        handled.extend(m.data.decode() for m in messages)
        return {}

    with open_source(bus_url, settings) as source:
        stats = consume(source, handle, settings, drain=True)
    assert handled == [] and stats.dead_lettered == 2  # the third delivery is not handed over
    assert [d["data"] for d in dead_letters(bus_url)] == sent
    assert "delivered 3 times without an ack" in dead_letters(bus_url)[0]["reason"]


# --- the pipelined consume loop (prepare on a worker thread) -----------------------------------------


def test_prepare_runs_ahead_on_a_worker_and_batches_are_acked_in_order_after_their_handle(bus_url):  # noqa: F811
    import threading

    sent = publish(bus_url, 10)
    prepared: list[list[str]] = []  # batches prepared, in order
    handled: list[list[str]] = []
    unacked_at_handle: list[int] = []
    threads: set[str] = set()

    def prepare(messages):
        threads.add(threading.current_thread().name)
        prepared.append([m.data.decode() for m in messages])
        return [m.data.decode().upper() for m in messages]

    def handle(messages, upper):
        assert upper == [m.data.decode().upper() for m in messages]  # its own batch's result
        handled.append([m.data.decode() for m in messages])
        unacked_at_handle.append(source.pending())
        return {}

    with open_source(bus_url, FAST) as source:
        stats = consume(source, handle, FAST, drain=True, prepare=prepare)
        assert source.pending() == 0
    assert [d for batch in handled for d in batch] == sent and handled == prepared
    assert threading.main_thread().name not in threads
    # Each batch is acknowledged only after its handle: the messages handled before it are all that is gone.
    assert unacked_at_handle == [10 - sum(len(b) for b in handled[:i]) for i in range(len(handled))]
    assert (stats.messages, stats.acked, stats.batches) == (10, 10, 3)


def test_a_failed_batch_releases_the_batch_fetched_ahead_too(bus_url):  # noqa: F811 - fixture
    publish(bus_url, 8)
    done: list[str] = []
    calls = 0

    class DatabaseDown(Exception):
        pass

    def handle(messages, prepared):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise DatabaseDown("the database went away")
        done.extend(prepared)
        return {}

    def prepare(messages):
        return [m.data.decode() for m in messages]

    with open_source(bus_url, FAST) as source:
        stats = consume(source, handle, FAST, drain=True, retry_on=(DatabaseDown,), prepare=prepare)
        assert source.pending() == 0
    assert sorted(done) == sorted(json.dumps({"i": i}) for i in range(8))  # each handled once
    assert stats.failures == 1 and stats.acked == 8


def test_a_restart_holding_two_batches_gets_each_pending_message_once():
    """A pipelined consumer killed with two batches unacknowledged reads its pending list in order, once."""
    from tests.bus_harness import drop

    url = fresh_url("redis")
    try:
        publish(url, 10)
        with open_source(url, FAST) as killed:  # two batches fetched, never acknowledged
            assert len(killed.fetch(4, 0.2)) == 4 and len(killed.fetch(4, 0.2)) == 4
        handled: list[str] = []

        def handle(messages, prepared):
            handled.extend(prepared)
            return {}

        with open_source(url, FAST) as source:  # the same consumer name: its pending list first
            stats = consume(source, handle, FAST, drain=True, prepare=lambda ms: [m.id for m in ms])
            assert source.pending() == 0
        assert len(handled) == len(set(handled)) == 10
        assert stats.redelivered == 8
    finally:
        drop(url)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_commit_longer_than_the_broker_timeout_is_not_delivered_to_another_replica(bus_url, pipelined):  # noqa: F811
    """While one replica commits a batch for 3.5 x the broker's timeout (a digest written by a language
    model), the consumer keeps extending its hold: the second replica of the group gets none of it."""
    import threading

    slow = BusSettings(group="g", consumer="c1", batch=4, wait_s=0.2, ack_wait_s=1.0, claim_idle_s=1.0)
    other = BusSettings(group="g", consumer="c2", batch=4, wait_s=0.2, ack_wait_s=1.0, claim_idle_s=1.0)
    publish(bus_url, 4)
    handling = threading.Event()
    handled: list[str] = []
    stolen: list[str] = []

    def handle(messages, prepared=None):
        handled.extend(m.id for m in messages)
        handling.set()
        time.sleep(3.5)
        return {}

    def second_replica() -> None:
        handling.wait(10)
        deadline = time.monotonic() + 4.5
        with open_source(bus_url, other) as source:
            while time.monotonic() < deadline:
                batch = source.fetch(4, 0.2)
                stolen.extend(m.id for m in batch)
                source.ack(batch)

    thread = threading.Thread(target=second_replica)
    thread.start()
    prepare = (lambda ms: None) if pipelined else None
    with open_source(bus_url, slow) as source:
        stats = consume(source, handle, slow, drain=True, prepare=prepare)
        thread.join()
        assert source.pending() == 0
    assert len(handled) == 4 and stolen == []
    assert (stats.acked, stats.redelivered) == (4, 0)


@pytest.mark.parametrize("password", ["s3c/ret", "s3c#ret", "s3c?ret"])
def test_a_password_with_a_url_delimiter_is_never_quoted_in_the_error(password):
    """urllib cuts such a URL at the delimiter and names what it took for the port: part of the password."""
    with pytest.raises(ValueError, match="percent-encoded") as err:
        parse_bus_url(f"redis://user:{password}@127.0.0.1:6379/news")
    assert "s3c" not in str(err.value) and "ret" not in str(err.value).replace("or the URL", "")

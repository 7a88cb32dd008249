"""News over a message bus: messages to items and back, and the monitor consuming real Redis and NATS."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from apps.finance_monitor.classifiers import load_model
from apps.finance_monitor.errors import DataError
from apps.finance_monitor.feed import consume_feed, publish_files, publish_items
from apps.finance_monitor.monitor import SAMPLE_RULES, Monitor
from apps.finance_monitor.rules import load_rules
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
from apps.finance_monitor.scoring import Label, Scorer
from apps.finance_monitor.sinks import LogSink
from apps.finance_monitor.sources import encode_message, parse_message, read_news
from apps.finance_monitor.storage import Alert, AlertItem, Item, Score
from core.bus import BusSettings, open_publisher, open_source
from core.storage import session_scope
from tests.apps.finance_monitor.model_fixtures import ConstantScorer, TruthScorer
from tests.apps.finance_monitor.unfit_batch import CLEAN_TITLE, RECORDS, STORED, messages
from tests.bus_harness import bus_url, dead_letters, require_server  # noqa: F401 - fixture
from tests.cli_run import assert_one_line_error, run_aigc

NOW = datetime(2026, 3, 6, 22, tzinfo=UTC)
ORIGIN = "redis://127.0.0.1:6379/news#1733-0"
FAST = BusSettings(group="finance-test", consumer="c1", batch=64, wait_s=0.2, ack_wait_s=2.0)


def sample_items():
    """The sample stream in publication order, as a live feed would send it."""
    items = [item for name in STREAM_FILES for item in read_news(SAMPLE_DATA_DIR / name)]
    return sorted(items, key=lambda i: (i.timestamp, i.id))


def counts(engine) -> tuple[int, ...]:
    with session_scope(engine) as session:
        return tuple(
            session.scalar(sa.select(sa.func.count()).select_from(t)) for t in (Item, Score, Alert, AlertItem)
        )


def test_a_message_reads_back_to_the_item_it_was_made_from():
    for item in sample_items():
        parsed = parse_message(encode_message(item), ORIGIN)
        assert replace(parsed, origin=None) == replace(item, origin=None)
        assert parsed.origin == ORIGIN


def test_a_message_without_id_gets_the_stable_id_every_time():
    payload = json.dumps({"title": "Acme cuts outlook", "published": "2026-03-02 09:00", "source": "Wire"})
    first, again = (parse_message(payload.encode(), ORIGIN) for _ in range(2))
    assert first.id == again.id and len(first.id) == 20  # a redelivery is the same item


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"\xff\xfe title", "payload is not UTF-8"),
        (b'{"title": "Acme"', "payload is not JSON"),
        (b'["Acme", "2026-03-02"]', "must be a JSON object"),
        (b'{"timestamp": "2026-03-02T09:00:00Z", "source": "Wire"}', "field 'title': missing title"),
        (b'{"title": "Acme", "timestamp": "next tuesday-ish", "source": "W"}', "field 'timestamp'"),
    ],
)
def test_a_bad_message_names_its_origin_and_field(payload, problem):
    with pytest.raises(DataError) as err:
        parse_message(payload, ORIGIN)
    assert str(err.value).startswith(ORIGIN + ":") and problem in str(err.value)


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipelined", "one-batch-at-a-time"])
def test_consuming_the_bus_stores_scores_and_alerts_once(
    bus_url,  # noqa: F811 - fixture
    sqlite_db,
    tiny_sentiment_dir,
    pipeline,
):
    settings = replace(FAST, pipeline=pipeline)
    items = sample_items()
    assert publish_items(bus_url, items) == 506
    with open_publisher(bus_url) as publisher:  # two messages that are not news items
        publisher.publish([("bad-1", b"not json"), ("bad-2", b'{"title": "", "timestamp": "2026-03-02"}')])
    monitor = Monitor(
        sqlite_db, TruthScorer(load_model(tiny_sentiment_dir)), load_rules(SAMPLE_RULES), [LogSink()],
        clock=lambda: NOW,
    )  # fmt: skip
    with open_source(bus_url, settings) as source:
        result, stats = consume_feed(monitor, source, settings, drain=True)
        assert source.pending() == 0  # everything acknowledged or dead-lettered
    assert (result.new_items, result.scored, stats.messages, stats.acked) == (506, 506, 508, 506)
    with session_scope(sqlite_db) as session:
        alerts = {(a.rule, a.key) for a in session.scalars(sa.select(Alert))}
        assert session.scalar(sa.select(sa.func.count(sa.distinct(Item.id)))) == 506
    # The same incidents as the files in one cycle (test_monitor), although evaluated batch by batch.
    assert alerts == {("topic-negative-surge", "Energy | Oil"), ("ticker-negative-surge", "NWDE")}
    letters = dead_letters(bus_url)
    assert [d["data"] for d in letters] == [
        "not json",
        '{"title": "", "timestamp": "2026-03-02"}',
    ]
    assert "payload is not JSON" in letters[0]["reason"] and "field 'title'" in letters[1]["reason"]
    assert all(f"#{d['id']}:" in d["reason"] for d in letters)  # the reason names the message
    assert len(result.errors) == 2

    # A second consumer group gets every message again: stored ids make the repeat change nothing.
    before = counts(sqlite_db)
    again_settings = replace(settings, group="finance-test-2")
    with open_source(bus_url, again_settings) as source:
        again, again_stats = consume_feed(monitor, source, again_settings, drain=True)
    assert (again.new_items, again.scored, again.alerts, again_stats.messages) == (0, 0, [], 508)
    assert counts(sqlite_db) == before


def test_publish_checks_every_file_before_sending_anything(bus_url, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,source,title\n2026-03-02T09:00:00Z,Wire,\n", encoding="utf-8")
    with pytest.raises(DataError, match="bad.csv: row 1"):
        publish_files(bus_url, [SAMPLE_DATA_DIR / "news_stream.jsonl", bad])
    with open_source(bus_url, FAST) as source:
        assert source.pending() == 0
    assert publish_files(bus_url, [SAMPLE_DATA_DIR / "news_stream.jsonl"]) == 100


# --- the commands --------------------------------------------------------------------------------------


def test_publish_then_monitor_once_from_the_command_line(bus_url, tiny_sentiment_dir, tmp_path):  # noqa: F811
    published = run_aigc("finance", "publish", "--to", bus_url, str(SAMPLE_DATA_DIR / "news_stream.jsonl"))
    assert published.code == 0 and "published 100 messages" in published.stderr
    monitor = (
        "finance",
        "monitor",
        "--once",
        "--source",
        bus_url,
        "--set",
        f"sentiment_model={tiny_sentiment_dir}",
    )
    first = run_aigc(*monitor, "--set", "bus.ack_wait_s=2")
    assert first.code == 0, first.stderr
    assert "100 messages (0 redelivered, 0 dead-lettered), 100 new items, 100 scored" in first.stderr
    again = run_aigc(*monitor)
    assert again.code == 0 and "0 messages" in again.stderr  # all acknowledged the first time


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--source", "redis://u:s3cret@127.0.0.1/news?bogus=1"), ("unknown parameter 'bogus'", "u:***@")),
        (("--source", "kafka://127.0.0.1/news"), ("use redis://HOST[:PORT]/STREAM",)),
        (("--source", "redis://127.0.0.1/news", "--file", "x.csv"), ("--source replaces the folder",)),
    ],
)
def test_bad_source_options_are_one_line_errors(args, fragments):
    result = run_aigc("finance", "monitor", "--once", *args)
    assert "s3cret" not in assert_one_line_error(result, *fragments)


@pytest.mark.parametrize("broker", ["redis", "nats"])
def test_an_unreachable_broker_exits_3_with_the_url_masked(broker, tiny_sentiment_dir):
    require_server(broker)  # the real server answers, so 127.0.0.1:1 is surely not it
    url = f"{broker}://user:s3cret@127.0.0.1:1/news"
    result = run_aigc(
        "finance", "monitor", "--once", "--source", url, "--set", f"sentiment_model={tiny_sentiment_dir}"
    )
    assert result.code == 3 and len(result.error_lines) == 1, result.stderr
    assert "user:***@127.0.0.1:1" in result.error_lines[0] and "s3cret" not in result.stderr + result.stdout


def test_a_redis_entry_of_plain_fields_is_read_as_one_item(sqlite_db, tiny_sentiment_dir):
    import redis

    from core.bus import parse_bus_url
    from tests.bus_harness import drop, fresh_url

    url = fresh_url("redis")
    address = parse_bus_url(url)
    client = redis.Redis(host=address.host, port=address.port)
    try:  # what `redis-cli XADD news * title ... timestamp ...` sends: no JSON at all
        client.xadd(address.name, {"title": "Acme $ACME cuts outlook", "timestamp": "2026-03-02T09:00:00Z"})
        client.xadd(address.name, {"headline": "No time given"})
        monitor = Monitor(sqlite_db, Scorer.from_dirs(tiny_sentiment_dir), load_rules(SAMPLE_RULES), [])
        monitor.ingestor.default_source = "redis-cli"
        with open_source(url, FAST) as source:
            result, stats = consume_feed(monitor, source, FAST, drain=True)
        assert (result.new_items, stats.dead_lettered) == (1, 1)
        with session_scope(sqlite_db) as session:
            item = session.scalars(sa.select(Item)).one()
        assert (item.title, item.source, item.tickers) == ("Acme $ACME cuts outlook", "redis-cli", ["ACME"])
        assert "field 'timestamp': missing timestamp" in dead_letters(url)[0]["reason"]
    finally:
        client.close()
        drop(url)


def test_a_bus_batch_is_stored_and_scored_in_one_transaction(sqlite_db, tiny_sentiment_dir, tmp_path):
    """commit_batch scores its own items (also ones an earlier attempt stored and died before scoring),
    with the labels the scorer gives them, and leaves other unscored items to the sweep."""
    items = sample_items()[:40]
    earlier, fresh, elsewhere = items[:10], items[10:30], items[30:]
    scorer = Scorer.from_dirs(tiny_sentiment_dir)
    monitor = Monitor(sqlite_db, scorer, load_rules(SAMPLE_RULES), [])
    monitor.ingestor.ingest_items(earlier + elsewhere)  # stored, never scored: a kill in between

    result = monitor.commit_batch(earlier + fresh + fresh[:3])  # a repeat inside the batch too
    assert (result.new_items, result.scored) == (20, 30)
    with session_scope(sqlite_db) as session:
        scores = {s.item_id: s for s in session.scalars(sa.select(Score))}
    assert set(scores) == {i.id for i in earlier + fresh}
    expected = scorer.label([i.title for i in earlier + fresh], monitor.model_batch_size)
    for item, label in zip(earlier + fresh, expected, strict=True):
        assert scores[item.id].sentiment == label.sentiment
        assert scores[item.id].probabilities == label.probabilities

    before = counts(sqlite_db)
    again = monitor.commit_batch(earlier + fresh)  # the batch delivered again: nothing changes
    assert (again.new_items, again.scored) == (0, 0) and counts(sqlite_db) == before
    assert monitor.score_unscored() == 10  # the items of no batch
    assert counts(sqlite_db)[:2] == (40, 40)


def test_a_bus_batch_stores_the_labels_computed_ahead_and_labels_the_rest(sqlite_db, tiny_sentiment_dir):
    """The pipelined consumer labels a batch before its commit; commit_batch stores those labels as given
    and runs the model only on titles that have none (an item stored earlier under another title)."""
    items = sample_items()[:6]
    scorer = Scorer.from_dirs(tiny_sentiment_dir)
    monitor = Monitor(sqlite_db, scorer, load_rules(SAMPLE_RULES), [], batch_size=256, model_batch_size=4)
    ahead = Label("positive", 0.99, None, None, {"sentiment": {"positive": 0.99}})
    result = monitor.commit_batch(items, {items[0].title: ahead})
    assert (result.new_items, result.scored) == (6, 6)
    with session_scope(sqlite_db) as session:
        scores = {s.item_id: s for s in session.scalars(sa.select(Score))}
    first = scores[items[0].id]
    assert (first.sentiment, first.sentiment_confidence, first.probabilities) == (
        "positive", 0.99, ahead.probabilities,
    )  # fmt: skip
    expected = scorer.label([i.title for i in items[1:]], 4)
    assert [scores[i.id].probabilities for i in items[1:]] == [lab.probabilities for lab in expected]


def test_an_item_that_does_not_fit_is_dead_lettered_alone_and_the_batch_stored(bus_url, db):  # noqa: F811
    with open_publisher(bus_url) as publisher:
        assert publisher.publish(messages()) == len(RECORDS)
    monitor = Monitor(db, ConstantScorer(), [], [])
    with open_source(bus_url, FAST) as source:
        result, stats = consume_feed(monitor, source, FAST, drain=True)
        assert source.pending() == 0
    assert (result.new_items, result.scored, stats.acked, stats.dead_lettered) == (4, 4, 4, 1)
    [letter] = dead_letters(bus_url)
    assert json.loads(letter["data"])["id"] == "u1"
    assert f"#{letter['id']}: field 'url': url of 3018 characters" in letter["reason"]
    assert result.errors == [letter["reason"]]
    with session_scope(db) as session:
        stored = {i.id: i for i in session.scalars(sa.select(Item))}
        assert set(stored) == set(session.scalars(sa.select(Score.item_id))) == STORED
    assert (
        stored["n1"].title == CLEAN_TITLE and len(stored["s1"].source) == Item.__table__.c.source.type.length
    )

    before = counts(db)  # every message again, to a second group: nothing new, nothing twice
    again_settings = replace(FAST, group="finance-test-2")
    with open_source(bus_url, again_settings) as source:
        again, again_stats = consume_feed(monitor, source, again_settings, drain=True)
    assert (again.new_items, again.scored, again_stats.messages) == (0, 0, len(RECORDS))
    assert counts(db) == before

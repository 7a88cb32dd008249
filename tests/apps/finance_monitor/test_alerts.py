"""Alert rules: YAML, breaches, one alert per incident with cooldown, mute/acknowledge, queued deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from apps.finance_monitor.alerts import (
    AlertEngine,
    acknowledge,
    alert_items,
    list_alerts,
    mute,
    mute_for,
    unmute,
)
from apps.finance_monitor.outbox import Sender
from apps.finance_monitor.rules import (
    AlertRule,
    find_breaches,
    load_rules,
    load_webhook_allow,
    parse_duration,
)
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import Alert, Delivery, ScoreRow, scored_frame, store_items, store_scores
from apps.finance_monitor.ui import queries
from core.storage import session_scope
from core.webhook_safety import AllowList, UnsafeWebhookURL, check_webhook_url
from tests.cli_run import assert_one_line_error, run_aigc

T0 = datetime(2026, 3, 2, 0, tzinfo=UTC)
RULE = AlertRule(
    name="energy-surge",
    scope="topic",
    std_factor=3.0,
    min_volume=5,
    baseline_buckets=24,
    min_baseline_buckets=6,
    cooldown=timedelta(hours=6),
)
# Baseline or absolute: once a surge sits in the baseline, a later surge can only cross the threshold.
INCIDENT_RULE = AlertRule(**{**RULE.__dict__, "threshold": 0.9})


def hourly(negatives_per_hour: dict[int, tuple[int, int]], topic: str = "Energy") -> list[dict]:
    """Scored rows: {hour: (negatives, total)}; the rest of each hour's items are neutral."""
    rows = []
    for hour, (neg, total) in negatives_per_hour.items():
        for i in range(total):
            rows.append(
                {
                    "item_id": f"{topic[:3]}-{hour}-{i}",
                    "timestamp": T0 + timedelta(hours=hour, minutes=5 * i),
                    "sentiment": "negative" if i < neg else "neutral",
                    "sentiment_confidence": 0.9,
                    "topic": topic,
                    "tickers": [],
                    "source": "Wirewatch",
                }
            )
    return rows


def baseline_hours(hours: range) -> dict[int, tuple[int, int]]:
    return {h: (1 + h % 2, 5) for h in hours}  # shares alternate 0.2 / 0.4


def store(engine, rows: list[dict]) -> pd.DataFrame:
    """Store rows as items with scores; return the scored frame read back from the database."""
    items = [NewsItem(r["item_id"], r["timestamp"], r["source"], f"Headline {r['item_id']}") for r in rows]
    scores = [
        ScoreRow(r["item_id"], "v1", r["sentiment"], r["sentiment_confidence"], r["topic"], 0.8) for r in rows
    ]
    with session_scope(engine) as session:
        store_items(session, items)
        store_scores(session, scores)
    with session_scope(engine) as session:
        return scored_frame(session)


class ListSink:
    name = "list"
    target = "a list"

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, payload, idempotency_key) -> None:
        self.sent.append(dict(payload))


def deliver(engine, sink, now) -> None:
    Sender(engine, [sink], clock=lambda: now).deliver_due()


def test_parse_duration():
    assert parse_duration("6h") == timedelta(hours=6)
    assert parse_duration(" 30min ") == timedelta(minutes=30)
    assert parse_duration("1.5d") == timedelta(hours=36)
    assert parse_duration(90) == timedelta(seconds=90)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_load_rules_with_defaults(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(
        "defaults:\n  window: hour\n  cooldown: 3h\n"
        "rules:\n"
        "  - name: topic-surge\n    scope: topic\n    std_factor: 2.5\n    threshold: 0.8\n"
        "  - name: nwe\n    scope: entity\n    keys: NWE\n    std_factor: null\n    threshold: 0.5\n"
        "    window: day\n    min_volume: 3\n",
        encoding="utf-8",
    )
    first, second = load_rules(path)
    assert (first.std_factor, first.threshold, first.cooldown, first.window) == (
        2.5,
        0.8,
        timedelta(hours=3),
        "hour",
    )
    assert (second.keys, second.std_factor, second.window, second.min_volume) == (("NWE",), None, "day", 3)
    assert second.history() == timedelta(days=25)
    path.write_text(
        "rules:\n  - name: slow\n    window: 6h\n", encoding="utf-8"
    )  # buckets at 00, 06, 12, 18 UTC
    (slow,) = load_rules(path)
    assert slow.window == "6h" and slow.history() == timedelta(hours=6 * 25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - name: a\n    colour: red\n", r"rule 1 \('a'\): unknown key\(s\) \['colour'\]"),
        (
            "rules:\n  - name: a\n    window: week\n",
            r"rule 1 \('a'\): alert rule 'a': window: 'week' is not one of",
        ),
        ("rules:\n  - scope: topic\n", r"rule 1 \('unnamed'\): missing key 'name'"),
        ("rules:\n  - name: a\n    std_factor: null\n", "give at least one"),
        ("rules:\n  - name: a\n    min_volume: 2.5\n", r"key 'min_volume': expected a whole number"),
        ("rules:\n  - name: a\n    cooldown: later\n", r"key 'cooldown': 'later' is not a duration"),
        ("rules:\n  - name: a\n    min_volume: .inf\n", r"key 'min_volume': cannot convert float infinity"),
        ("rules:\n  - name: a\n    cooldown: 99999999999d\n", r"key 'cooldown': .*"),
        ("rules:\n  - name: a\n    threshold: .nan\n", r"key 'threshold': expected a finite number"),
        ("rules:\n  - name: a\n    std_factor: .inf\n", r"key 'std_factor': expected a finite number"),
        ("rules:\n  - name: a\n  - name: a\n", r"repeated: \['a'\]"),
        ("rules: []\n", "non-empty 'rules:' list"),
        ("rules: [\n", "not valid YAML"),
        (
            "rules:\n  - name: a\n    baseline_buckets: 2\n",
            r"rule 1 \('a'\): .*baseline_buckets: 2 is fewer than min_baseline_buckets \(3, the default\)",
        ),
        (
            "defaults:\n  min_baseline_buckets: 6\nrules:\n  - name: a\n    baseline_buckets: 5\n",
            r"rule 1 \('a'\): .*baseline_buckets: 5 is fewer than min_baseline_buckets \(6\)",
        ),
        ("rules:\n  - name: a\n  - foo\n", r"rule 2: expected a mapping of rule keys .*got str 'foo'"),
        ("rules:\n  - [a, b]\n", r"rule 1: expected a mapping of rule keys .*got list \['a', 'b'\]"),
    ],
)
def test_load_rules_errors(tmp_path, text, message):
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_rules(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("entry", "fragments"),
    [
        ("  - name: short\n    baseline_buckets: 1\n", ["rule 1 ('short')", "baseline_buckets: 1 is fewer"]),
        ("  - foo\n", ["rule 1: expected a mapping", "got str 'foo'"]),
        ("  - [a, b]\n", ["rule 1: expected a mapping", "got list"]),
    ],
)
def test_a_rules_file_the_monitor_cannot_use_is_one_error_line_and_exit_2(tmp_path, entry, fragments):
    """Refused when the file is read, not at the first evaluation after the scores were committed."""
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + entry, encoding="utf-8")
    result = run_aigc("finance", "digest", "--alert", "1", "--set", f"rules={path}")
    assert_one_line_error(result, str(path), *fragments)


def test_a_rule_with_its_minimum_as_its_whole_baseline_loads_and_fires(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: short\n    baseline_buckets: 2\n    min_baseline_buckets: 2\n")
    (short,) = load_rules(path)
    frame = pd.DataFrame(hourly({0: (1, 5), 1: (1, 5), 2: (5, 5)}))
    assert [(b.key, b.bucket_start, b.reason) for b in find_breaches(short, frame)] == [
        ("Energy", T0 + timedelta(hours=2), "baseline")
    ]


def test_find_breaches_baseline_absolute_volume_and_keys():
    rows = hourly({**baseline_hours(range(24)), 24: (5, 6), 25: (4, 4)})
    rows += hourly({**baseline_hours(range(24)), 24: (6, 6)}, topic="Tech")
    frame = pd.DataFrame(rows)
    breaches = find_breaches(RULE, frame)
    assert [(b.key, b.bucket_start) for b in breaches] == [
        ("Energy", T0 + timedelta(hours=24)),
        ("Tech", T0 + timedelta(hours=24)),
    ]  # hour 25 of Energy has only 4 items (< min_volume 5)
    energy = breaches[0]
    assert energy.reason == "baseline" and energy.value == pytest.approx(5 / 6)
    assert energy.baseline_mean == pytest.approx(0.3)  # 12 hours at 0.2, 12 at 0.4
    assert energy.threshold == pytest.approx(0.3 + 3 * energy.baseline_std)
    assert energy.volume == 6 and energy.item_ids == tuple(f"Ene-24-{i}" for i in range(6))
    only_tech = AlertRule(**{**RULE.__dict__, "keys": ("Tech",)})
    assert [b.key for b in find_breaches(only_tech, frame)] == ["Tech"]
    absolute = AlertRule(name="abs", std_factor=None, threshold=0.4, min_volume=5)
    assert {(b.key, b.reason) for b in find_breaches(absolute, frame)} >= {("Energy", "absolute")}
    assert find_breaches(RULE, frame, since=T0 + timedelta(hours=25)) == []


def test_one_alert_per_incident_with_cooldown(db):
    now = [T0 + timedelta(hours=30)]
    sink = ListSink()
    engine = AlertEngine(db, [INCIDENT_RULE], sinks=[sink], clock=lambda: now[0])
    # Surge at hours 24 and 25: one incident.
    frame = store(db, hourly({**baseline_hours(range(24)), 24: (6, 6), 25: (6, 6), 26: (1, 5)}))
    created = engine.evaluate(frame)
    assert len(created) == 1 and sink.sent == []  # queued in the outbox, not sent by the rules
    deliver(db, sink, now[0])
    assert len(sink.sent) == 1
    alert = created[0]
    assert (alert.window_start, alert.window_end) == (T0 + timedelta(hours=24), T0 + timedelta(hours=26))
    assert alert.value == 1.0 and alert.status == "open"
    with session_scope(db) as session:
        (delivery,) = session.scalars(sa.select(Delivery))
    assert (delivery.alert_id, delivery.sink, delivery.status, delivery.attempts) == (
        alert.id,
        "list",
        "delivered",
        1,
    )
    assert len(alert_items(db, alert.id)) == 12
    assert "energy-surge: share negative 100% for topic 'Energy'" in alert.message

    # Evaluating the same data again: nothing new, nothing re-sent.
    assert engine.evaluate(frame) == []
    deliver(db, sink, now[0])
    assert len(sink.sent) == 1

    # Another surge 4 h after the incident ended (within the 6 h cooldown) extends it.
    frame = store(db, hourly({**baseline_hours(range(27, 30)), 30: (6, 6)}))
    assert engine.evaluate(frame) == []
    (extended,) = list_alerts(db)
    assert extended.window_end == T0 + timedelta(hours=31) and len(alert_items(db, extended.id)) == 18

    # A surge well after the cooldown is a new incident.
    frame = store(db, hourly({**baseline_hours(range(31, 45)), 45: (6, 6)}))
    created = engine.evaluate(frame, since=T0 + timedelta(hours=40))
    assert [a.window_start for a in created] == [T0 + timedelta(hours=45)]
    deliver(db, sink, now[0])
    assert len(sink.sent) == 2 and sink.sent[1]["item_ids"] == [f"Ene-45-{i}" for i in range(6)]


def test_mute_and_acknowledge(sqlite_db):
    now = [T0 + timedelta(hours=25)]
    sink = ListSink()
    engine = AlertEngine(sqlite_db, [RULE], sinks=[sink], clock=lambda: now[0])
    (first,) = engine.evaluate(store(sqlite_db, hourly({**baseline_hours(range(24)), 24: (6, 6)})))
    deliver(sqlite_db, sink, now[0])
    acked = acknowledge(sqlite_db, first.id, by="ana", now=now[0])
    assert (acked.status, acked.acknowledged_by, acked.acknowledged_at) == ("acknowledged", "ana", now[0])
    mute(sqlite_db, first.id, until=T0 + timedelta(days=5))
    now[0] = T0 + timedelta(hours=50)
    frame = store(sqlite_db, hourly({**baseline_hours(range(25, 48)), 48: (6, 6)}))
    (second,) = engine.evaluate(frame)
    deliver(sqlite_db, sink, now[0])
    assert second.status == "muted" and len(sink.sent) == 1  # stored, not sent
    assert [a.status for a in list_alerts(sqlite_db, status="muted")] == ["muted", "muted"]
    with pytest.raises(ValueError, match="no alert with id 999"):
        acknowledge(sqlite_db, 999)


def test_acknowledge_mute_and_unmute_on_the_sample_database(sample_engine):
    ids = dict(zip(*queries.alerts_frame(sample_engine)[["key", "id"]].to_numpy().T, strict=True))
    energy, nwde = int(ids["Energy | Oil"]), int(ids["NWDE"])
    acknowledge(sample_engine, energy, by="  dana ")
    now = datetime(2026, 3, 5, 17, tzinfo=UTC)
    until = mute_for(sample_engine, nwde, 6, now=now)
    assert until == now + timedelta(hours=6)
    frame = queries.alerts_frame(sample_engine).set_index("id")
    assert frame.loc[energy, "status"] == "acknowledged" and frame.loc[energy, "acknowledged_by"] == "dana"
    assert frame.loc[nwde, "status"] == "muted" and frame.loc[nwde, "muted_until"] == pd.Timestamp(until)
    assert list(queries.alerts_frame(sample_engine, status="open")["id"]) == []
    assert queries.monitor_status(sample_engine).open_alerts == 0
    unmute(sample_engine, nwde)
    with session_scope(sample_engine) as session:
        alert = session.get(Alert, nwde)
        assert (alert.status, alert.muted_until) == ("open", None)
    with pytest.raises(ValueError, match="positive"):
        mute_for(sample_engine, nwde, 0)
    with pytest.raises(ValueError, match="no alert with id 42"):
        unmute(sample_engine, 42)


def test_allow_list_from_the_rules_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("webhooks:\n  allow: [127.0.0.1, alerts.local]\nrules:\n  - name: a\n")
    allow = load_webhook_allow(rules)
    assert allow.hosts == {"alerts.local"} and [str(n) for n in allow.networks] == ["127.0.0.1/32"]
    rules.write_text("rules:\n  - name: a\n")
    assert load_webhook_allow(rules) == AllowList()
    for bad in (
        "webhooks: [1]\n",
        "webhooks:\n  allow: {a: 1}\n",
        "webhooks:\n  allow: ['']\n",
        "webhooks:\n  deny: []\n",
    ):
        rules.write_text(bad + "rules:\n  - name: a\n")
        with pytest.raises(ValueError, match=str(rules.name)):
            load_webhook_allow(rules)


def test_a_refused_webhook_names_the_rules_file(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("webhooks:\n  allow: [alerts.local]\nrules:\n  - name: a\n")
    with pytest.raises(UnsafeWebhookURL, match=r"listed in .*rules.yaml: webhooks.allow"):
        check_webhook_url("http://127.0.0.1:9/hook", load_webhook_allow(rules))

"""The alert outbox: queued with the alert, sent once, retried with capped backoff, dead letters, retry."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from apps.finance_monitor.alerts import AlertEngine
from apps.finance_monitor.outbox import DeliveryPolicy, Sender, delivery_counts, list_deliveries, retry
from apps.finance_monitor.storage import Delivery
from core.storage import session_scope
from core.webhook_safety import AllowList
from core.webhooks import WebhookSink
from tests.apps.finance_monitor.test_alerts import RULE, T0, baseline_hours, hourly, store
from tests.webhook_receiver import Receiver

LOCAL = AllowList.parse(["127.0.0.1"])
NOW = T0 + timedelta(days=2)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def raise_one_alert(engine, sinks, clock) -> int:
    alert_engine = AlertEngine(engine, [RULE], sinks=sinks, clock=clock)
    (alert,) = alert_engine.evaluate(store(engine, hourly({**baseline_hours(range(24)), 24: (6, 6)})))
    return alert.id


def deliveries(engine) -> list[Delivery]:
    with session_scope(engine) as session:
        return list(session.scalars(sa.select(Delivery).order_by(Delivery.id)))


def test_policy_backoff_is_exponential_and_capped():
    policy = DeliveryPolicy(backoff_s=2, max_backoff_s=10)
    assert [policy.delay(n).total_seconds() for n in range(1, 6)] == [2, 4, 8, 10, 10]
    with pytest.raises(ValueError, match="max_attempts"):
        DeliveryPolicy(max_attempts=0)


def test_delivered_once_with_its_idempotency_key(db):
    clock = Clock(NOW)
    secret_url = None
    with Receiver() as receiver:
        secret_url = receiver.url + "?token=SECRET42"
        sink = WebhookSink(secret_url, allow=LOCAL)
        alert_id = raise_one_alert(db, [sink], clock)
        (queued,) = deliveries(db)
        assert (queued.status, queued.attempts, queued.alert_id) == ("pending", 0, alert_id)
        assert "SECRET42" not in queued.target and queued.target.endswith("/hook?token=***")
        sender = Sender(db, [sink], clock=clock)
        assert len(sender.deliver_due().sent) == 1
        assert sender.deliver_due().sent == []  # nothing twice
    assert receiver.accepted_ids() == {alert_id: 1}
    assert receiver.headers[0]["Idempotency-Key"] == queued.idempotency_key
    assert receiver.bodies[0]["id"] == alert_id and len(receiver.bodies[0]["item_ids"]) == 6
    (done,) = deliveries(db)
    assert (done.status, done.attempts, done.delivered_at) == ("delivered", 1, NOW)
    assert delivery_counts(db) == {"pending": 0, "delivered": 1, "dead": 0}


def test_failures_are_retried_with_backoff_then_delivered_once(sqlite_db):
    clock = Clock(NOW)
    policy = DeliveryPolicy(max_attempts=5, backoff_s=10, max_backoff_s=15)
    with Receiver([500, "hang", 503], hang_s=1.5) as receiver:
        sink = WebhookSink(receiver.url, allow=LOCAL, timeout=0.3)
        alert_id = raise_one_alert(sqlite_db, [sink], clock)
        sender = Sender(sqlite_db, [sink], policy, clock=clock)
        waits = []
        for _ in range(4):
            report = sender.deliver_due()
            (row,) = deliveries(sqlite_db)
            waits.append((row.next_attempt_at - clock.now).total_seconds())
            assert sender.deliver_due().sent == [] or report.sent  # not due again before its time
            clock.now = row.next_attempt_at
        assert report.sent == [row.id]
    (row,) = deliveries(sqlite_db)
    assert (row.status, row.attempts) == ("delivered", 4)
    assert waits[:3] == [10, 15, 15]  # 10 s, then 20 s capped at 15 s
    assert receiver.accepted_ids() == {alert_id: 1} and len(receiver.bodies) == 4
    assert len({h["Idempotency-Key"] for h in receiver.headers}) == 1


def test_dead_letter_after_max_attempts_then_manual_retry(sqlite_db):
    clock = Clock(NOW)
    policy = DeliveryPolicy(max_attempts=2, backoff_s=0, max_backoff_s=0)
    with Receiver([500, 502]) as receiver:
        sink = WebhookSink(receiver.url, allow=LOCAL)
        alert_id = raise_one_alert(sqlite_db, [sink], clock)
        sender = Sender(sqlite_db, [sink], policy, clock=clock)
        assert len(sender.deliver_due().retrying) == 1
        assert len(sender.deliver_due().dead) == 1
        assert sender.deliver_due().sent == []  # dead letters wait for a person
        (dead,) = list_deliveries(sqlite_db, ["dead"])
        assert dead.attempts == 2 and "HTTP 502" in dead.last_error
        assert retry(sqlite_db, all_dead=True, now=clock.now) == 1
        assert len(sender.deliver_due().sent) == 1
        with pytest.raises(ValueError, match="already delivered"):
            retry(sqlite_db, [dead.id])
        with pytest.raises(ValueError, match="no delivery with id 999"):
            retry(sqlite_db, [999])
    assert receiver.accepted_ids() == {alert_id: 1}


def test_a_refusal_is_dead_at_once_and_a_down_sink_costs_one_attempt_per_pass(sqlite_db):
    clock = Clock(NOW)
    with Receiver([404]) as receiver:
        sink = WebhookSink(receiver.url, allow=LOCAL)
        raise_one_alert(sqlite_db, [sink], clock)
        assert len(Sender(sqlite_db, [sink], clock=clock).deliver_due().dead) == 1
    # Two more alerts to a sink nobody listens on any more: one attempt per pass, not one per alert.
    store(sqlite_db, hourly({**baseline_hours(range(25, 48)), 48: (6, 6)}, topic="Tech"))
    store(sqlite_db, hourly({**baseline_hours(range(25, 48)), 48: (6, 6)}, topic="Oil"))
    gone = WebhookSink(receiver.url, allow=LOCAL, timeout=1)
    AlertEngine(sqlite_db, [RULE], sinks=[gone], clock=clock).evaluate(_scored(sqlite_db))
    report = Sender(sqlite_db, [gone], clock=clock).deliver_due()
    assert len(report.retrying) == 1 and delivery_counts(sqlite_db)["pending"] == 2


def test_a_delivery_claimed_by_another_sender_is_not_sent_twice(sqlite_db):
    clock = Clock(NOW)
    with Receiver() as receiver:
        sink = WebhookSink(receiver.url, allow=LOCAL)
        raise_one_alert(sqlite_db, [sink], clock)
        first, second = Sender(sqlite_db, [sink], clock=clock), Sender(sqlite_db, [sink], clock=clock)
        (row,) = deliveries(sqlite_db)
        assert first._claim(row.id) and not second._claim(row.id)
        assert second.deliver_due().sent == []  # leased: left alone
    assert receiver.bodies == []


def _scored(engine):
    from apps.finance_monitor.storage import scored_frame

    with session_scope(engine) as session:
        return scored_frame(session)

"""The core outbox on a table of its own: keys, one claim per delivery, backoff, dead letters, requeue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.outbox import (
    DeliveryPolicy,
    OutboxColumns,
    Sender,
    delivery_counts,
    list_deliveries,
    new_delivery,
    retry,
)
from core.storage import TYPE_ANNOTATION_MAP, create_engine, new_metadata, session_scope
from core.webhooks import DeliveryError

T0 = datetime(2026, 12, 2, 9, tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


class Event(Base):
    __tablename__ = "test_events"
    id: Mapped[int] = mapped_column(primary_key=True)


class EventDelivery(OutboxColumns, Base):
    __tablename__ = "test_event_deliveries"
    event_id: Mapped[int] = mapped_column(sa.ForeignKey("test_events.id"))


class Sink:
    """Records payloads; fails with the scripted errors first."""

    name, target = "hook", "https://hooks.example/***"

    def __init__(self, *failures: DeliveryError) -> None:
        self.failures = list(failures)
        self.sent: list[tuple[dict, str]] = []

    def send(self, payload, idempotency_key) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((dict(payload), idempotency_key))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    Base.metadata.create_all(engine)
    yield engine
    engine.dispose()


def queue_event(engine, sink, event_id: int = 1) -> None:
    with session_scope(engine) as session:
        session.add(Event(id=event_id))
        session.add(
            new_delivery(EventDelivery, sink, f"event-{event_id}", {"id": event_id}, T0, event_id=event_id)
        )


def test_delivered_once_with_a_stable_key(engine):
    sink = Sink(DeliveryError("HTTP 503", retryable=True))
    clock = Clock()
    queue_event(engine, sink)
    sender = Sender(engine, EventDelivery, [sink], DeliveryPolicy(backoff_s=10), clock)
    assert sender.deliver_due().retrying == [1]
    assert sender.deliver_due().sent == []  # not due before its backoff
    clock.now += timedelta(seconds=10)
    assert sender.deliver_due().sent == [1] and sender.deliver_due().sent == []
    [(payload, key)] = sink.sent
    assert payload == {"id": 1} and key.startswith("event-1-hook-")
    [row] = list_deliveries(engine, EventDelivery)
    assert (row.status, row.attempts, row.idempotency_key, row.delivered_at) == (
        "delivered",
        2,
        key,
        clock.now,
    )


def test_a_claimed_delivery_is_left_to_its_sender(engine):
    sink = Sink()
    queue_event(engine, sink)
    first, second = (Sender(engine, EventDelivery, [sink], clock=Clock()) for _ in range(2))
    assert first._claim(1) and not second._claim(1)  # the lease holds it for the first one


def test_refused_for_good_is_dead_until_requeued(engine):
    sink = Sink(DeliveryError("HTTP 404", retryable=False))
    queue_event(engine, sink)
    sender = Sender(engine, EventDelivery, [sink], clock=Clock())
    assert sender.deliver_due().dead == [1]
    assert delivery_counts(engine, EventDelivery) == {"pending": 0, "delivered": 0, "dead": 1}
    with pytest.raises(ValueError, match="no delivery with id 7"):
        retry(engine, EventDelivery, [7])
    assert retry(engine, EventDelivery, all_dead=True, now=T0) == 1
    assert sender.deliver_due().sent == [1]
    with pytest.raises(ValueError, match="already delivered"):
        retry(engine, EventDelivery, [1])

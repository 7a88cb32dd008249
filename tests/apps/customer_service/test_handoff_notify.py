"""Hand-off notifications: through the outbox to a real local webhook, masked, retried, and kill-safe."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from apps.customer_service.config import QueueConfig
from apps.customer_service.handoff_notify import (
    build_sinks,
    delivery_counts,
    list_deliveries,
    notifying_store,
    retry,
    send_due,
)
from core.storage import create_engine, get_db_url
from core.webhook_safety import UnsafeWebhookURL
from tests.apps.customer_service.test_handoff_queue import handoff
from tests.servers import REPO
from tests.webhook_receiver import Receiver

URL_ENV = "AIGC_SUPPORT_HANDOFF_WEBHOOK_URL"
LOCAL = QueueConfig(webhook_allow=("127.0.0.1",), webhook_backoff_s=0.0, poll_s=0.05)


def wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_a_new_handoff_is_posted_once_with_its_key_and_the_url_stays_masked(monkeypatch, caplog):
    with Receiver() as receiver:
        monkeypatch.setenv(URL_ENV, receiver.url + "?token=SECRET-42")
        store = notifying_store(config=LOCAL)
        try:
            conv = store.start_conversation("where is my refund", owner="web")
            store.add_exchange(conv, "where is my refund, I want a human", handoff("asked_for_human"))
            store.add_exchange(conv, "hello?", handoff("low_confidence"))  # same open case: no second POST
            wait_for(lambda: delivery_counts(store.engine)["delivered"] == 1)
        finally:
            store.close()
    [body] = receiver.bodies
    assert body["event"] == "support.handoff" and body["conversation_id"] == conv
    assert body["reason"] == "asked_for_human" and body["question"] == "where is my refund, I want a human"
    assert [s["id"] for s in body["sources"]] == ["ret-03", "ret-01"]
    key = receiver.headers[0]["Idempotency-Key"]
    assert key.startswith(f"handoff-{body['handoff_id']}-webhook-") and receiver.accepted_ids() == {
        body["handoff_id"]: 1
    }
    [delivery] = list_deliveries(store.engine)
    assert delivery.status == "delivered" and delivery.target.endswith("/hook?token=***")
    assert "SECRET-42" not in caplog.text and "SECRET-42" not in repr(store.sinks)


def test_a_receiver_that_fails_is_retried_then_dead_then_requeued(monkeypatch):
    config = QueueConfig(webhook_allow=("127.0.0.1",), webhook_backoff_s=0.0, webhook_max_attempts=2)
    with Receiver([500, 503, 200]) as receiver:
        monkeypatch.setenv(URL_ENV, receiver.url)
        store = notifying_store(config=config, start_sender=False)
        conv = store.start_conversation("q")
        store.add_exchange(conv, "q", handoff())
        assert send_due(store.engine, config).retrying and send_due(store.engine, config).dead
        assert delivery_counts(store.engine) == {"pending": 0, "delivered": 0, "dead": 1}
        [dead] = list_deliveries(store.engine, ["dead"])
        assert dead.attempts == 2 and "HTTP 503" in dead.last_error
        assert retry(store.engine, all_dead=True) == 1
        assert send_due(store.engine, config).sent == [dead.id]
    assert len(receiver.bodies) == 3 and len({h["Idempotency-Key"] for h in receiver.headers}) == 1


def test_without_a_url_nothing_is_queued_and_bad_urls_are_refused(monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    assert build_sinks(QueueConfig()) == []
    store = notifying_store(config=QueueConfig())
    conv = store.start_conversation("q")
    store.add_exchange(conv, "q", handoff())
    assert store.worker is None and delivery_counts(store.engine)["pending"] == 0
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/hook?key=abc")
    with pytest.raises(
        UnsafeWebhookURL, match="listed in configs/customer_service.yaml: queue.webhook_allow"
    ):
        build_sinks(QueueConfig())
    assert "abc" not in str(build_sinks.__doc__)


def test_a_sender_killed_before_its_attempt_loses_and_duplicates_nothing(monkeypatch, tmp_path):
    """The real `aigc support deliveries --send`, killed at the fault point, then run again."""
    with Receiver() as receiver:
        monkeypatch.setenv(URL_ENV, receiver.url)
        store = notifying_store(config=LOCAL, start_sender=False)  # hand-offs committed, nothing sent
        for question in ("first", "second"):
            store.add_exchange(store.start_conversation(question), question, handoff())
        config = tmp_path / "support.yaml"
        config.write_text("queue:\n  webhook_allow: [127.0.0.1]\n  webhook_backoff_s: 0\n")
        env = {**os.environ, "AIGC_DB_URL": get_db_url(), "AIGC_FAILPOINT": "outbox.before_delivery@2"}
        command = [
            sys.executable,
            "-m",
            "core.cli",
            "support",
            "deliveries",
            "--send",
            "--config",
            str(config),
        ]
        killed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert killed.returncode == 137, killed.stderr
        assert len(receiver.bodies) == 1  # the first was sent before the kill
        del env["AIGC_FAILPOINT"]
        again = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
    assert sorted(receiver.accepted_ids().values()) == [1, 1] and len(receiver.bodies) == 2
    assert delivery_counts(create_engine()) == {"pending": 0, "delivered": 2, "dead": 0}

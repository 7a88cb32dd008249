"""Webhook sinks: one attempt against a real local HTTP server; what is retryable; nothing secret leaks."""

from __future__ import annotations

import logging
import socket

import pytest

from core.webhook_safety import AllowList, UnsafeWebhookURL
from core.webhooks import DeliveryError, WebhookSink, webhook_sink
from tests.webhook_receiver import Receiver

LOCAL = AllowList.parse(["127.0.0.1"])


def test_delivers_json_with_the_idempotency_key_and_headers():
    with Receiver() as receiver:
        WebhookSink(receiver.url, allow=LOCAL, headers={"X-Token": "t1"}).send({"id": 1, "value": 0.9}, "k-1")
    assert receiver.bodies == [{"id": 1, "value": 0.9}]
    assert receiver.headers[0]["Idempotency-Key"] == "k-1" and receiver.headers[0]["X-Token"] == "t1"
    assert receiver.headers[0]["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
def test_status_decides_whether_to_retry(status, retryable):
    with Receiver([status]) as receiver, pytest.raises(DeliveryError, match=f"HTTP {status} nope") as info:
        WebhookSink(receiver.url, allow=LOCAL).send({"id": 2}, "k-2")
    assert info.value.retryable is retryable and len(receiver.bodies) == 1


def test_redirects_are_not_followed():
    with (
        Receiver([302]) as receiver,
        pytest.raises(DeliveryError, match="HTTP 302 redirect not followed") as info,
    ):
        WebhookSink(receiver.url, allow=LOCAL).send({"id": 3}, "k-3")
    assert not info.value.retryable and receiver.paths == ["/hook"]  # /elsewhere never asked


def test_a_hanging_receiver_times_out_and_is_retryable():
    with (
        Receiver(["hang"], hang_s=2.0) as receiver,
        pytest.raises(DeliveryError, match="timed out after 0.3s") as info,
    ):
        WebhookSink(receiver.url, allow=LOCAL, timeout=0.3).send({"id": 4}, "k-4")
    assert info.value.retryable


def test_connection_refused_is_retryable_and_names_no_token():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook?token=SECRET123", allow=LOCAL, timeout=2)
    with pytest.raises(DeliveryError) as info:
        sink.send({"id": 5}, "k-5")
    assert info.value.retryable and "ConnectionError" in str(info.value)
    assert "SECRET123" not in str(info.value) and "SECRET123" not in repr(sink)


def test_loopback_needs_the_allow_list():
    with pytest.raises(UnsafeWebhookURL, match="loopback"):
        WebhookSink("http://127.0.0.1:9/hook")
    with pytest.raises(UnsafeWebhookURL, match="must start with http"):
        WebhookSink("ftp://example.test/hook")


def test_a_name_resolving_to_loopback_is_refused_at_send_time():
    sink = WebhookSink("http://localhost:9/hook?key=abc")  # a name: checked (resolved) per attempt
    with pytest.raises(DeliveryError, match="resolves to .*loopback") as info:
        sink.send({"id": 6}, "k-6")
    assert not info.value.retryable and "abc" not in str(info.value)


def test_a_dns_answer_that_changes_after_the_check_is_caught_at_connect():
    """DNS rebinding: the pre-check sees a public address, the connection lands on loopback."""
    with Receiver() as receiver:
        port = receiver.url.split(":")[2].split("/")[0]
        sink = WebhookSink(f"http://localhost:{port}/hook", resolver=lambda host, port: ["93.184.216.34"])
        with pytest.raises(DeliveryError, match="connected to 127.0.0.1, a loopback address") as info:
            sink.send({"id": 8}, "k-8")
    assert not info.value.retryable and receiver.bodies == []  # refused before a byte was sent


def test_urllib3_debug_lines_do_not_show_the_token(caplog):
    with Receiver() as receiver, caplog.at_level(logging.DEBUG, logger="urllib3"):
        WebhookSink(receiver.url + "/T0AB12CD3/xYzSecretToken1234567890?token=SECRET9", allow=LOCAL).send(
            {"id": 9}, "k-9"
        )
    assert '"POST /hook/***/***?token=*** HTTP/1.1" 200' in caplog.text
    assert "SECRET9" not in caplog.text and "xYzSecret" not in caplog.text


def test_webhook_sink_from_settings_sends_the_token_from_the_environment(monkeypatch):
    monkeypatch.setenv("HOOK_TOKEN", "tok-SECRET")
    with Receiver() as receiver:
        sink = webhook_sink(receiver.url + "?key=abc123def456", token_env="HOOK_TOKEN", allow=LOCAL)
        sink.send({"id": 10}, "k-10")
    assert receiver.headers[0]["Authorization"] == "Bearer tok-SECRET"
    assert "tok-SECRET" not in repr(sink) and sink.target.endswith("/hook?key=***")
    monkeypatch.delenv("HOOK_TOKEN")
    with pytest.raises(ValueError, match="environment variable HOOK_TOKEN is not set"):
        webhook_sink(receiver.url, token_env="HOOK_TOKEN", allow=LOCAL)
    with pytest.raises(UnsafeWebhookURL, match="loopback"):
        webhook_sink("http://localhost:9/hook")  # resolved now, not only at the first attempt

"""Webhook delivery against a local HTTP server on 127.0.0.1 (retries without real sleeping)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.finance_monitor.sinks import LogSink, WebhookError, WebhookSink


class Recorder:
    """A local webhook endpoint answering with scripted statuses and recording what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers["Content-Length"])
                recorder.bodies.append(json.loads(self.rfile.read(length)))
                recorder.headers.append(dict(self.headers))
                status = recorder.statuses.pop(0) if recorder.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"nope" if status >= 300 else b"ok")

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )


@pytest.fixture
def endpoint() -> Iterator[Recorder]:
    recorder = Recorder([])
    recorder.thread.start()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


def test_delivers_json(endpoint):
    sink = WebhookSink(
        endpoint.url, headers={"X-Token": "t1"}, sleep=lambda s: pytest.fail("no retry expected")
    )
    sink.send({"id": 1, "rule": "surge", "value": 0.9})
    assert endpoint.bodies == [{"id": 1, "rule": "surge", "value": 0.9}]
    assert endpoint.headers[0]["X-Token"] == "t1"
    assert endpoint.headers[0]["Content-Type"] == "application/json"


def test_retries_after_500_with_backoff(endpoint):
    endpoint.statuses[:] = [500, 503]
    waits: list[float] = []
    WebhookSink(endpoint.url, backoff=0.5, sleep=waits.append).send({"id": 2})
    assert waits == [0.5, 1.0]
    assert len(endpoint.bodies) == 3 and endpoint.bodies[-1] == {"id": 2}


def test_gives_up_after_retries(endpoint):
    endpoint.statuses[:] = [500] * 10
    waits: list[float] = []
    sink = WebhookSink(endpoint.url, retries=3, backoff=1.0, max_backoff=3.0, sleep=waits.append)
    with pytest.raises(WebhookError, match=r"failed after 4 attempts \(HTTP 500: nope\)"):
        sink.send({"id": 3})
    assert waits == [1.0, 2.0, 3.0]
    assert len(endpoint.bodies) == 4


def test_client_error_is_not_retried(endpoint):
    endpoint.statuses[:] = [400]
    with pytest.raises(WebhookError, match=r"refused the alert \(HTTP 400"):
        WebhookSink(endpoint.url, sleep=lambda s: pytest.fail("400 must not be retried")).send({"id": 4})
    assert len(endpoint.bodies) == 1


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits: list[float] = []
    sink = WebhookSink(f"http://127.0.0.1:{port}/hook", retries=1, timeout=2, sleep=waits.append)
    with pytest.raises(WebhookError, match="failed after 2 attempts .*ConnectionError"):
        sink.send({"id": 5})
    assert waits == [0.5]


def test_bad_url():
    with pytest.raises(ValueError, match="must start with http"):
        WebhookSink("ftp://example.test")


def test_log_sink(caplog):
    with caplog.at_level(logging.WARNING, logger="apps.finance_monitor.sinks"):
        LogSink().send({"id": 7, "rule": "surge", "key": "Energy", "message": "surge: share 90%"})
    assert "ALERT surge: share 90%" in caplog.text
    assert caplog.records[0].rule == "surge"

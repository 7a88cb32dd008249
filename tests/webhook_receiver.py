"""A real webhook receiver on 127.0.0.1 for the sink, outbox and kill tests (alerts and hand-offs).

It answers each POST with the next scripted action (a status code, or ``"hang"``: wait
``hang_s`` seconds before answering 200, longer than the sender's timeout), then 200. It records
every request, and counts as *accepted* the ones it answered 2xx in time, by idempotency key,
as a receiver that deduplicates would.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """A local webhook endpoint; use as a context manager (``url`` ends in ``/hook``)."""

    def __init__(self, script: list[int | str] | None = None, hang_s: float = 3.0) -> None:
        self.script = list(script or [])
        self.hang_s = hang_s
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self.accepted: Counter[str] = Counter()  # idempotency key -> 2xx answers
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.bodies.append(body)
                    receiver.headers.append(dict(self.headers))
                    receiver.paths.append(self.path)
                    action = receiver.script.pop(0) if receiver.script else 200
                if action == "hang":
                    time.sleep(receiver.hang_s)  # the sender has given up by now
                    return
                self.send_response(int(action))
                if 300 <= int(action) < 400:
                    self.send_header("Location", "/elsewhere")
                self.end_headers()
                self.wfile.write(b"ok" if int(action) < 300 else b"nope")
                if 200 <= int(action) < 300:
                    with receiver.lock:
                        receiver.accepted[self.headers.get("Idempotency-Key", "")] += 1

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted_ids(self) -> Counter[int]:
        """Event id -> 2xx answers for it (keys are ``<event>-<id>-<sink>-<random>``, e.g. ``alert-3-…``)."""
        counts: Counter[int] = Counter()
        for key, n in self.accepted.items():
            counts[int(key.split("-")[1])] += n
        return counts

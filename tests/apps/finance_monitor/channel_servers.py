"""Real local servers for the alert-channel tests: SMTP (aiosmtpd) and HTTPS receivers (trustme certificates).

* :class:`SmtpServer`: an SMTP server on 127.0.0.1 with STARTTLS and a login, keeping every message.
* :class:`HttpsReceiver`: an HTTPS endpoint on 127.0.0.1 (Teams workflows), or, with ``proxy=True``,
  an HTTP proxy that accepts ``CONNECT host:443`` and terminates TLS with a certificate for that
  host, so that Apprise's Slack plugin, which always posts to ``https://hooks.slack.com``, reaches a
  local receiver through ``HTTPS_PROXY``, certificates verified against the test CA.

Both answer from a script of status codes (then 200; a 3xx points to ``/elsewhere``) and record
every request that arrived.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (aiosmtpd cannot bind port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mail:
    """One message the SMTP server accepted."""

    sender: str
    recipients: list[str]
    message: email.message.EmailMessage

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""


class SmtpServer:
    """aiosmtpd on 127.0.0.1 with STARTTLS required and one login; :meth:`start` / :meth:`stop` at will."""

    def __init__(self, ca: trustme.CA, user: str, password: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.user, self.password = user, password
        self.mails: list[Mail] = []
        self.logins: list[str] = []
        self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(self._tls)
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            self.user.encode(),
            self.password.encode(),
        )
        if ok:
            self.logins.append(self.user)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SmtpServer:
        self._controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            tls_context=self._tls,
            require_starttls=True,
            authenticator=self._authenticate,
            auth_required=True,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Request:
    """One HTTPS request a receiver got (``host``: the CONNECT target through the proxy)."""

    host: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class HttpsReceiver:
    """An HTTPS endpoint, or a TLS-terminating ``CONNECT`` proxy, answering from a script of statuses."""

    def __init__(self, ca: trustme.CA, script: list[int] | None = None, *, proxy: bool = False) -> None:
        self.script = list(script or [])
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        receiver = self

        def tls_for(host: str) -> ssl.SSLContext:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ca.issue_cert(host).configure_cert(context)
            return context

        class Handler(BaseHTTPRequestHandler):
            tunnel_host = "127.0.0.1"

            def do_CONNECT(self) -> None:  # noqa: N802 - http.server API
                host = self.path.rsplit(":", 1)[0]
                self.send_response(200, "Connection established")
                self.end_headers()
                conn = tls_for(host).wrap_socket(self.connection, server_side=True)
                self.connection, self.tunnel_host = conn, host
                self.rfile, self.wfile = conn.makefile("rb"), conn.makefile("wb")
                self.close_connection = True
                self.handle_one_request()

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else {}
                with receiver.lock:
                    receiver.requests.append(Request(self.tunnel_host, self.path, dict(self.headers), body))
                    status = receiver.script.pop(0) if receiver.script else 200
                answer = b"ok" if status < 300 else b"no_service"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
                self.wfile.flush()

            do_GET = do_POST  # a followed redirect would arrive as a GET  # noqa: N815

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if not proxy:
            self.server.socket = tls_for("127.0.0.1").wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> HttpsReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

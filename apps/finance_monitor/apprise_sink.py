"""Slack, Microsoft Teams and e-mail alerts through Apprise: one notification per outbox attempt.

Apprise (https://github.com/caronc/apprise) knows each service's payload, escaping and quirks;
this module adds what the outbox needs around it:

* **One attempt, an error to record.** :class:`AppriseSink` calls :meth:`apprise.Apprise.notify`
  once (no Apprise retries, no thread: the outbox retries, and the attempt is bounded by the
  socket timeouts). Apprise answers with a result whose per-service log holds the reason of a
  failure; its warnings become the :class:`~core.webhooks.DeliveryError`. A redirect
  or a 4xx other than 408/425/429 (``error=NNN`` in Apprise's message) is final, anything else
  retryable.
* **No redirects.** The asset turns them off for every service and the plugin is set again after
  loading, so ``redirect=yes`` in a URL cannot turn them on.
* **Public addresses for Teams.** A Teams workflow host must resolve to public addresses (or be
  allowed under ``webhooks: allow:``) before every attempt, as webhooks must. Apprise connects on
  its own (``requests.post``), so the address actually connected to is not checked again as the
  project's webhook sender does; that is why generic webhooks keep the project's sender.
  Slack's host is fixed by Apprise (``hooks.slack.com``).
* **No secrets in logs.** Apprise logs request URLs, tokens included, at DEBUG level.
  :data:`REDACT`, a filter on the ``apprise`` and ``urllib3`` loggers, replaces every secret part of
  every channel URL (:func:`url_secrets`, registered before Apprise first sees the URL) with ``***``
  before any handler, or Apprise's own result capture, sees the record; error texts go through
  :func:`clean_error`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from apps.finance_monitor.alert_text import alert_message
from core.webhook_safety import MASK, AllowList, UnsafeWebhookURL, check_webhook_url, mask_url
from core.webhooks import RETRY_STATUSES, DeliveryError

if TYPE_CHECKING:
    import apprise

logger = logging.getLogger(__name__)

_SECRET_QUERY_HINTS = ("token", "secret", "key", "auth", "pass", "sig", "pwd")
#: Schemes whose host is a real host name (elsewhere, e.g. ``slack://T…/B…/…``, it is a token).
_HOST_SCHEMES = ("http", "https", "mailto", "mailtos", "workflow", "workflows")
_ERROR_STATUS = re.compile(r"error=(\d{3})")
_ANY_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\")]+", re.I)
_MAX_ERROR = 300


class SecretRedactor(logging.Filter):
    """Masks secrets in log records (message, arguments, tracebacks) and texts.

    Registered secrets become ``***``, and so do the secret parts of any URL left in the text
    (:func:`~core.webhook_safety.mask_url`: user info, query values, token-like
    path segments), which covers the shortened forms Apprise prints (``mailtos://user:p...w@host``).
    """

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def add(self, secrets: Iterable[str]) -> None:
        """Remember more secrets (the longest are replaced first, so one inside another goes too)."""
        merged = set(self._secrets) | {s for s in secrets if s}
        self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` without any registered secret, its URLs masked."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return _ANY_URL.sub(lambda m: mask_url(m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record without secrets; never drops it."""
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is left to logging's own error path
            return True
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, None
        cleaned = self.redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        return True


#: The process-wide redactor on the loggers of Apprise and urllib3; each channel registers its secrets.
REDACT = SecretRedactor()
for _logger_name in ("apprise", "urllib3.connectionpool", "urllib3.connection"):
    logging.getLogger(_logger_name).addFilter(REDACT)


def url_secrets(url: str) -> set[str]:
    """The parts of ``url`` that may be secret, raw and percent-encoded.

    The URL itself, the password (or a token-like user name), token-like path segments (16+
    characters, or 8+ mixing letters and digits, as
    :func:`~core.webhook_safety.mask_url` counts them), the host of a scheme whose
    host is a token (``slack://T…``), and query values that are long or whose names suggest a
    secret (``sig``, ``token``, ``key``, ``pass``, …).
    """
    found = {url}
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return found
    if password and len(password) >= 3:
        found.add(password)
    elif user and _token_like(user):  # a token given as the user name (https://TOKEN@host)
        found.add(user)
    host = parts.netloc.rpartition("@")[2].rsplit(":", 1)[0]  # as written: hostname would lower-case it
    segments = parts.path.split("/") + ([] if parts.scheme in _HOST_SCHEMES else [host])
    found.update(s for s in segments if _token_like(unquote(s)))
    for key, value in parse_qsl(parts.query):
        if _token_like(value) or (len(value) >= 3 and any(h in key.lower() for h in _SECRET_QUERY_HINTS)):
            found.add(value)
    return found | {quote(s, safe="") for s in found} | {unquote(s) for s in found}


def _token_like(segment: str) -> bool:
    if len(segment) >= 16:
        return True
    return len(segment) >= 8 and any(c.isdigit() for c in segment) and any(c.isalpha() for c in segment)


def clean_error(text: str) -> str:
    """An error text for the outbox, the log and the UI: secrets and URLs masked, one line, short."""
    text = " ".join(REDACT.redact(text).split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


class AppriseSink:
    """An alert sink sending each alert's message through one Apprise URL (Slack, Teams, e-mail).

    Args:
        name: The sink's name in the outbox (the channel's name).
        url: The Apprise URL, or a native URL Apprise recognises (from the environment; never shown).
        schemes: Apprise schemes the URL must resolve to (``("slack",)``: a Slack URL and nothing else).
        target: Where it sends, for people (no secret).
        check_host: Check the host against the public-address rule before each attempt (Teams).
        allow: Hosts and networks exempt from that rule.
        timeout: Seconds to connect and per read.
        dashboard_url: Base URL of the suite, for the link in the message (empty: none).
        min_interval_s: Least time between two messages (Apprise sleeps before sending until it
            has passed); ``None`` keeps the service's own (Slack 1.2 s, 5.5 s by default).

    Raises:
        ValueError: ``url`` is not a URL of one of ``schemes`` (the message never shows it).
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        schemes: tuple[str, ...],
        target: str,
        check_host: bool = False,
        allow: AllowList = AllowList(),
        timeout: float = 5.0,
        dashboard_url: str = "",
        min_interval_s: float | None = None,
    ) -> None:
        import apprise

        REDACT.add(url_secrets(url))  # before Apprise logs the URL while loading it
        asset = apprise.AppriseAsset(
            app_id="aigc finance monitor",
            app_desc="Finance news alerts",
            async_mode=False,
            http_redirects=False,
            service_timeout=0,  # run in the sender's thread, bounded by the socket timeouts
            storage_mode="memory",
        )
        with _warnings("apprise") as reasons:
            plugin = apprise.Apprise.instantiate(url, asset=asset)
        if plugin is None or not set(schemes) & _plugin_schemes(plugin):
            raise ValueError("; ".join(reasons) or f"not a URL of {' or '.join(s + '://' for s in schemes)}")
        plugin.redirects = False
        plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout
        if min_interval_s is not None:
            plugin.request_rate_per_sec = min_interval_s
        self._apprise = apprise.Apprise(asset=asset)
        self._apprise.add(plugin)
        self._format = apprise.NotifyFormat.TEXT
        self._notify_type = apprise.NotifyType.WARNING
        self.plugin = plugin
        self.name = name
        self.target = target
        self.allow = allow
        self.dashboard_url = dashboard_url
        self._host_url = f"https://{plugin.host}" + (f":{plugin.port}" if plugin.port else "") + "/"
        self._check_host = check_host

    def __repr__(self) -> str:
        return f"AppriseSink(name={self.name!r}, target={self.target!r})"

    def check_host(self) -> None:
        """Refuse a host that is not public and not allowed (when this sink checks hosts).

        Raises:
            UnsafeWebhookURL: A forbidden address.
            OSError: The host does not resolve.
        """
        if self._check_host:
            check_webhook_url(self._host_url, self.allow)

    def send(self, payload: Mapping[str, Any], idempotency_key: str) -> None:
        """Send the alert's message once (:func:`~apps.finance_monitor.alert_text.alert_message`).

        Raises:
            DeliveryError: Refused, failed or timed out (``retryable`` says what to do next).
        """
        try:
            self.check_host()
        except UnsafeWebhookURL as err:
            raise DeliveryError(f"{self.target}: {clean_error(str(err))}", retryable=False) from None
        except OSError as err:
            raise DeliveryError(f"{self.target}: host does not resolve ({err})", retryable=True) from None
        title, body = alert_message(payload, dashboard_url=self.dashboard_url, reference=idempotency_key)
        result = self._apprise.notify(
            body=body, title=title, body_format=self._format, notify_type=self._notify_type
        )
        if not result:
            raise _failure(self.target, result)
        logger.info("Alert sent", extra={"sink": self.name, "target": self.target})


@contextmanager
def _warnings(name: str) -> Iterator[list[str]]:
    """Collect the warnings and errors logged on logger ``name`` (secrets already masked) in the block."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logging.getLogger(name).addHandler(handler)
    try:
        yield found
    finally:
        logging.getLogger(name).removeHandler(handler)


def _failure(target: str, result: apprise.AppriseResult) -> DeliveryError:
    """The attempt's warnings and errors as one masked line; a 3xx or 4xx (but 408/425/429) is final."""
    messages = [
        entry.message
        for service in result
        for entry in service.logs()
        if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    text = clean_error("; ".join(dict.fromkeys(messages)) or f"not delivered ({result.status.name.lower()})")
    statuses = [int(s) for s in _ERROR_STATUS.findall(text)]
    final = bool(statuses) and all(300 <= s < 500 and s not in RETRY_STATUSES for s in statuses)
    return DeliveryError(f"{target}: {text}", retryable=not final)


def _plugin_schemes(plugin: apprise.NotifyBase) -> set[str]:
    schemes: set[str] = set()
    for attr in ("protocol", "secure_protocol"):
        value = getattr(plugin, attr, None) or ()
        schemes.update([value] if isinstance(value, str) else value)
    return schemes

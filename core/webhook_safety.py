"""Webhook URLs: which ones notifications may be sent to, and how they are shown without their secrets.

Shared by every app that POSTs to a webhook (finance alerts, support hand-offs), through
:mod:`core.webhooks` and :mod:`core.outbox`.

**Where webhooks may go.** A webhook URL must be ``http://`` or ``https://`` and its host must
resolve only to public addresses: loopback, private, link-local, multicast, reserved and other
non-global addresses are refused (every address the name resolves to is checked), so a config
file or a DNS answer cannot turn a sender into a probe of the internal network. Hosts,
addresses or networks on the app's allow-list (:class:`AllowList`, read from the app's
configuration, which it names in ``AllowList.where``) are exempt (a local receiver during tests,
an internal router). The check runs when the sender starts and
again before every attempt, because DNS answers change; and :func:`checked_session` checks the
address actually connected to, before a byte is sent, so a DNS answer that changes between the
check and the connection (DNS rebinding) is caught too. Redirects are never followed.

**What is shown.** Webhook URLs often carry their token (Slack-style
``/services/T…/B…/secret`` paths, ``?token=`` queries, ``user:password@``). Only
:func:`mask_url`'s form is written to the database, the log and the UI; the real URL stays in
the process (read from the config or, preferably, an environment variable). urllib3's debug
log lines, which repeat the request path and query, are masked too (:class:`MaskRequestLines`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from core.url_masking import MASK, mask_url

logger = logging.getLogger(__name__)

SCHEMES = ("http", "https")
#: Header names whose values are secrets (compared case-insensitively); others are shown.
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "x-auth-token")
_SECRET_HINTS = ("token", "secret", "key", "auth", "pass", "sig", "session")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class UnsafeWebhookURL(ValueError):
    """A webhook URL that nothing may be sent to (bad scheme, non-public address)."""


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of secret-looking ones (auth, cookies, keys, tokens) as ``***``."""
    return {
        name: MASK
        if name.lower() in SECRET_HEADERS or any(h in name.lower() for h in _SECRET_HINTS)
        else value
        for name, value in headers.items()
    }


@dataclass(frozen=True)
class AllowList:
    """Hosts and networks exempt from the public-address rule (the app's webhook allow-list).

    Args:
        hosts: Host names, lower case (compared exactly, as written in the URL).
        networks: Addresses and networks (``127.0.0.1``, ``10.0.0.0/8``, ``::1``).
        where: Where the list is configured, for the message refusing an address
            (e.g. ``rules.yaml: webhooks.allow``); not part of equality.
    """

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    where: str = field(default="the webhook allow-list", compare=False)

    @classmethod
    def parse(cls, entries: Iterable[str], where: str = "webhooks.allow") -> AllowList:
        """Split ``entries`` into networks (anything ``ipaddress`` reads) and host names.

        Raises:
            ValueError: An entry that is empty or not text.
        """
        hosts, networks = set(), []
        for i, entry in enumerate(entries, 1):
            if not isinstance(entry, str) or not entry.strip():
                raise ValueError(f"{where}[{i}]: expected a host name, address or network, got {entry!r}")
            text = entry.strip().lower()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                hosts.add(text.rstrip("."))
        return cls(frozenset(hosts), tuple(networks), where)

    def allows(self, address: Address) -> bool:
        """Whether ``address`` lies in a listed network."""
        return any(address.version == net.version and address in net for net in self.networks)


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (raises ``OSError`` when it does not resolve)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({info[4][0] for info in infos})


def non_public_reason(address: Address) -> str | None:
    """Why ``address`` is not a public unicast address (``None`` when it is one)."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not globally routable"


def check_webhook_url(
    url: str, allow: AllowList = AllowList(), *, resolver: Resolver | None = resolve
) -> None:
    """Refuse a URL that nothing may be sent to.

    Args:
        url: The webhook URL.
        allow: Hosts and networks exempt from the public-address rule.
        resolver: Looks the host name up; ``None`` checks only what the URL itself says
            (scheme, host, a literal address).

    Raises:
        UnsafeWebhookURL: Bad scheme, no host, or an address that is not public and not allowed
            (the message shows the masked URL).
        OSError: The host name does not resolve.
    """
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as err:
        raise UnsafeWebhookURL(f"webhook URL {shown} is not a valid URL ({err})") from None
    if parts.scheme not in SCHEMES:
        raise UnsafeWebhookURL(f"webhook URL {shown} must start with http:// or https://")
    if not host:
        raise UnsafeWebhookURL(f"webhook URL {shown} has no host")
    if host.lower() in allow.hosts:
        return
    try:
        addresses: Sequence[str] = [str(ipaddress.ip_address(host))]
    except ValueError:
        if resolver is None:
            return
        addresses = resolver(host, port)
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])  # drop an IPv6 zone id
        reason = non_public_reason(address)
        if reason is not None and not allow.allows(address):
            raise UnsafeWebhookURL(
                f"webhook URL {shown}: {host} resolves to {address}, a {reason} address; webhooks go only "
                f"to public addresses unless the host is listed in {allow.where}"
            )


def check_peer(sock: socket.socket, host: str, allow: AllowList) -> None:
    """Refuse a connected socket whose peer is not public (unless ``host`` or the peer is allowed).

    Raises:
        UnsafeWebhookURL: The peer is forbidden (the socket is closed).
    """
    if host.lower().rstrip(".") in allow.hosts:
        return
    address = ipaddress.ip_address(str(sock.getpeername()[0]).split("%")[0])
    reason = non_public_reason(address)
    if reason is not None and not allow.allows(address):
        sock.close()
        raise UnsafeWebhookURL(
            f"webhook host {host} connected to {address}, a {reason} address (its DNS answer changed?); "
            f"webhooks go only to public addresses unless the host is listed in {allow.where}"
        )


def checked_session(allow: AllowList = AllowList()) -> requests.Session:
    """A requests session that checks every new connection's peer address against ``allow``.

    Proxies and ``.netrc`` from the environment are not used, so the peer is the webhook host.
    """

    class Checked(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            check_peer(sock, self.host, allow)
            return sock

    class CheckedTLS(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            check_peer(sock, self.host, allow)
            return sock

    class Pool(HTTPConnectionPool):
        ConnectionCls = Checked

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = CheckedTLS

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": TLSPool}

    session = requests.Session()
    session.trust_env = False
    session.mount("http://", Adapter())
    session.mount("https://", Adapter())
    return session


_REQUEST_LINE = re.compile(r'"([A-Z]+) (\S+) ')


class MaskRequestLines(logging.Filter):
    """Masks the path and query in urllib3's ``"POST /path?query HTTP/1.1"`` debug lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the message with masked request targets; never drops a record."""
        message = record.getMessage()
        masked = _REQUEST_LINE.sub(lambda m: f'"{m.group(1)} {_mask_target(m.group(2))} ', message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _mask_target(target: str) -> str:
    if "://" in target:
        return mask_url(target)
    return mask_url("http://h" + target).removeprefix("http://h")


logging.getLogger("urllib3.connectionpool").addFilter(MaskRequestLines())

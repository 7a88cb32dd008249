"""Bus URLs: ``redis://[user:password@]host[:port]/STREAM`` and ``nats://[user:password@]host[:port]/SUBJECT``.

The path names the Redis stream or the NATS subject (not a database number, as in a plain Redis
URL: ``?db=N`` selects that). ``rediss://`` and ``tls://`` connect with TLS. NATS takes
``?stream=NAME`` to name the JetStream stream (default: the stream that holds the subject, else
one created for it).

Credentials are for the connection only: :func:`mask_bus_url` gives the form for logs, errors and
the database, with the password (or a NATS token, which sits where a user name would) replaced by
``***`` and every query value outside :data:`SAFE_PARAMS` masked too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from core.url_masking import MASK, mask_url

#: URL schemes and the broker each one reaches.
SCHEMES: dict[str, str] = {"redis": "redis", "rediss": "redis", "nats": "nats", "tls": "nats"}
DEFAULT_PORTS: dict[str, int] = {"redis": 6379, "nats": 4222}
#: Query parameters read by the sources (their values are not secret).
SAFE_PARAMS: frozenset[str] = frozenset({"db", "stream"})


@dataclass(frozen=True)
class BusAddress:
    """A parsed bus URL.

    Attributes:
        broker: ``redis`` or ``nats``.
        scheme: The URL's scheme (``rediss`` and ``tls`` mean TLS).
        host: Host name or address.
        port: Port (the broker's default when the URL has none).
        name: The Redis stream or the NATS subject.
        username: User name, if any (for NATS without a password: a token).
        password: Password, if any. Never log it; use :attr:`masked`.
        params: Query parameters (``db``, ``stream``).
    """

    broker: str
    scheme: str
    host: str
    port: int
    name: str
    username: str | None = field(default=None, repr=False)  # a NATS token sits here
    password: str | None = field(default=None, repr=False)
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        """Whether the URL asks for TLS (``rediss://``, ``tls://``)."""
        return self.scheme in ("rediss", "tls")

    @property
    def masked(self) -> str:
        """The URL without secrets (see :func:`mask_bus_url`)."""
        auth = ""
        if self.username or self.password is not None:
            auth = f"{self.username}:{MASK}@" if self.password is not None and self.username else f"{MASK}@"
        query = "&".join(f"{k}={v if k in SAFE_PARAMS else MASK}" for k, v in self.params.items())
        return urlunsplit(
            (self.scheme, auth + self.server_url().partition("://")[2], "/" + self.name, query, "")
        )

    def server_url(self) -> str:
        """``scheme://host:port``, without credentials (the clients take those as arguments)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def is_bus_url(text: str) -> bool:
    """Whether ``text`` starts with a bus scheme (``redis://``, ``rediss://``, ``nats://``, ``tls://``)."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def parse_bus_url(url: str) -> BusAddress:
    """Parse a bus URL.

    Raises:
        ValueError: Not a bus scheme, no host, a bad port, no stream / subject in the path, or a
            subject with spaces (the message shows the URL masked).
    """
    masked = mask_bus_url(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # urllib's text can quote part of the password (``user:pa/ss@`` splits at ``/``)
        raise ValueError(
            f"bad bus URL {masked!r}: the port is not a number, or the URL is malformed; write '/', '#', "
            "'?' and '@' in a user name or password percent-encoded (%2F, %23, %3F, %40)"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"bad bus URL {masked!r}: use redis://HOST[:PORT]/STREAM or nats://HOST[:PORT]/SUBJECT"
        )
    broker = SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError(f"bad bus URL {masked!r}: no host")
    name = unquote(parts.path.lstrip("/"))
    what = "stream" if broker == "redis" else "subject"
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"bad bus URL {masked!r}: the path must name the {what}, e.g. {scheme}://host/news")
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(set(params) - SAFE_PARAMS)
    if unknown:
        raise ValueError(f"bad bus URL {masked!r}: unknown parameter {unknown[0]!r} (known: db, stream)")
    if broker == "redis" and not params.get("db", "0").isdigit():
        raise ValueError(f"bad bus URL {masked!r}: db must be a number")
    return BusAddress(
        broker=broker,
        scheme=scheme,
        host=parts.hostname,
        port=port or DEFAULT_PORTS[broker],
        name=name,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        params=params,
    )


def mask_bus_url(url: str) -> str:
    """``url`` safe to log: ``redis://user:***@host/news``; a NATS token (user info alone) becomes ``***``.

    Query values outside :data:`SAFE_PARAMS` are masked; text that is not a URL is masked whole.
    """
    return mask_url(url, keep_user=True, safe_params=SAFE_PARAMS, mask_path=False)


__all__ = ["BusAddress", "MASK", "is_bus_url", "mask_bus_url", "parse_bus_url"]

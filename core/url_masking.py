"""URLs safe to log and show: user info, query values and token-like path parts replaced by ``***``.

One masker for every URL that may carry a secret (webhook and chat hooks, broker addresses); each
caller says what it may keep (a broker's user name and its non-secret options, a stream name).
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def mask_url(
    url: str,
    *,
    keep_user: bool = False,
    safe_params: Collection[str] = (),
    mask_path: bool = True,
) -> str:
    """``url`` with its secrets replaced by :data:`MASK`.

    Args:
        url: Any text; text that is not a URL with a scheme and host is masked whole.
        keep_user: Keep the user name of ``user:password@`` (the password is always masked; user
            info without a password, e.g. a NATS token, is masked whole).
        safe_params: Query keys whose values are kept (other values are masked).
        mask_path: Mask path segments that look like tokens: 16+ characters, or 8+ mixing letters
            and digits (Slack, Teams and Discord hook URLs); over-masking is harmless.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not host:
        return MASK
    netloc = ""
    if "@" in parts.netloc:
        keep = keep_user and parts.username and parts.password is not None
        netloc = f"{parts.username}:{MASK}@" if keep else f"{MASK}@"
    netloc += (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    path = parts.path
    if mask_path:
        path = "/".join(MASK if _looks_secret(segment) else segment for segment in path.split("/"))
    query = "&".join(_mask_pair(pair, safe_params) for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, netloc, path, query, MASK if parts.fragment else ""))


def _mask_pair(pair: str, safe_params: Collection[str]) -> str:
    key, sep, value = pair.partition("=")
    if not sep:
        return MASK
    return f"{key}={value if key in safe_params else MASK}"


def _looks_secret(segment: str) -> bool:
    if len(segment) >= 16:
        return True
    has_digit = any(c.isdigit() for c in segment)
    has_alpha = any(c.isalpha() for c in segment)
    return len(segment) >= 8 and has_digit and has_alpha


__all__ = ["MASK", "mask_url"]

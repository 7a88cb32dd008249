"""Log lines that show their context: a record's ``extra`` fields appended as ``key=value``.

Library code logs a short message and puts the numbers in ``extra`` (``logger.info("Epoch done",
extra={"epoch": 2, "macro_f1": 0.87})``). A plain formatter drops those fields, so a person watching
``aigc finance train`` would read "Epoch done" and nothing else. :class:`FieldsFormatter` appends them
(``Epoch done  epoch=2 macro_f1=0.87``): floats to four significant digits, long lists and texts cut, and the
value of any field whose name says it holds a secret (password, token, key, ...) replaced by ``***``,
as are the password, query values and token-like path parts of any URL in the line, so a careless
``extra`` or message cannot print one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from core.url_masking import MASK, mask_url

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra``.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
#: The format of a plain log line (no terminal): ``time LEVEL logger: message  key=value``.
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: A URL inside a line of text (up to whitespace, a quote or a closing bracket).
URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>()\[\]{},]+")
#: Field names whose values are never shown: a secret word as a whole part of the name (``password``,
#: ``smtp_password``, ``api-key``, ``Token``), so that counts such as ``passages`` or ``tokens`` stay.
SECRET_NAME = re.compile(
    r"(?:^|[_\-.])(?:pass(?:word|wd)?|pwd|secret|token|api[_\-]?key|authori[sz]ation|cookie|credentials?)"
    r"(?:$|[_\-.])",
    re.I,
)
#: Longest list, mapping or other value shown, in characters (longer ones end with an ellipsis).
MAX_VALUE_CHARS = 160
#: Longest text shown: paths and URLs are kept whole, a pasted document is not.
MAX_TEXT_CHARS = 1000


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of ``record``, in the order they were given."""
    return {k: v for k, v in vars(record).items() if k not in STANDARD_ATTRIBUTES and not k.startswith("_")}


def format_value(name: str, value: Any) -> str:
    """One field's value as shown: masked if ``name`` looks secret, floats to 4 significant digits."""
    if SECRET_NAME.search(name):
        return MASK
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, str):
        # Quoted (JSON-escaped) when it has spaces or anything unprintable: a NUL, a terminal escape
        # sequence or a bell from a request path must not reach an operator's terminal raw.
        plain = value and value.isprintable() and not any(c.isspace() for c in value)
        text = value if plain else json.dumps(value)
    elif isinstance(value, Mapping | list | tuple):
        text = json.dumps(_rounded(value), default=str, separators=(",", ":"))
    else:
        text = str(value)
    limit = MAX_TEXT_CHARS if isinstance(value, str) else MAX_VALUE_CHARS
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, Mapping):
        return {str(k): (MASK if SECRET_NAME.search(str(k)) else _rounded(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def mask_urls(text: str) -> str:
    """``text`` with the secrets of every URL in it masked (a password, query values, token-like path
    parts: :func:`core.url_masking.mask_url`); URLs without a host (``sqlite:////tmp/x.db``) are kept."""

    def masked(match: re.Match[str]) -> str:
        url = match.group(0)
        try:
            has_host = bool(urlsplit(url).hostname)
        except ValueError:
            return MASK
        return mask_url(url, keep_user=True) if has_host else url

    return URL_IN_TEXT.sub(masked, text) if "://" in text else text


class FieldsFormatter(logging.Formatter):
    """A :class:`logging.Formatter` that appends the record's ``extra`` fields as ``key=value``, and
    masks the secrets of any URL in the line (a caller that forgot to mask one leaks nothing)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        """The formatted message, then two spaces and the fields (none: the message alone); a
        traceback, if any, follows on the next lines."""
        text = super().formatMessage(record)
        fields = record_fields(record)
        if fields:
            text += "  " + " ".join(f"{k}={format_value(k, v)}" for k, v in fields.items())
        return text

    def format(self, record: logging.LogRecord) -> str:
        """The whole record (message, fields, traceback) with the secrets of its URLs masked."""
        return mask_urls(super().format(record))


class StderrHandler(logging.StreamHandler):
    """A :class:`logging.StreamHandler` that writes to whatever ``sys.stderr`` is at the time.

    A handler that kept the stream it was created with would write into a closed file once a test
    runner (``typer.testing.CliRunner``, pytest's capture) has swapped ``sys.stderr`` back.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """The current ``sys.stderr``."""
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure_service_logging(level: int = logging.INFO, loggers: tuple[str, ...] = ("core", "apps")) -> bool:
    """Plain lines with their fields on stderr for a server process that configured no logging (the
    Streamlit suite): the suite's own ``loggers`` at ``level``, other libraries at the root's
    WARNING. Like :func:`logging.basicConfig`, it does nothing when the root logger already has a
    handler (the ``aigc`` command's, pytest's), so a script that reruns may call it every time.

    Returns:
        Whether it configured logging.
    """
    with _CONFIGURE_LOCK:  # Streamlit runs the first sessions' scripts at once, on threads
        root = logging.getLogger()
        if root.handlers:
            return False
        handler = StderrHandler()
        handler.setFormatter(FieldsFormatter(PLAIN_FORMAT))
        root.addHandler(handler)
        for name in loggers:
            logging.getLogger(name).setLevel(level)
        return True


_CONFIGURE_LOCK = threading.Lock()

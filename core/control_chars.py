"""Control characters in text from files, feeds and requests: removed from free text, refused in ids.

NUL and the other C0/C1 controls (tab, newline and carriage return aside) carry no meaning in a
question, a headline or a reply; PostgreSQL refuses a NUL in any text value, and terminal escape
sequences in stored text can rewrite an operator's terminal when it is printed or logged. Unpaired
UTF-16 surrogates (JSON ``"\\ud800"``) cannot be encoded at all. Free text is therefore cleaned
where it enters the suite (:func:`strip_control`); an identifier is refused instead
(:func:`has_control`), since a cleaned id would name something else.
"""

from __future__ import annotations

import re

#: C0 and C1 controls but tab, newline and carriage return, and unpaired surrogates.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def strip_control(text: str) -> str:
    """``text`` without control characters (tab and newlines kept) and unpaired surrogates."""
    return CONTROL_CHARS.sub("", text)


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character (tab and newlines aside) or an unpaired surrogate."""
    return CONTROL_CHARS.search(text) is not None


__all__ = ["CONTROL_CHARS", "has_control", "strip_control"]

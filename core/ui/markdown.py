"""Text from people, files and feeds shown inside Streamlit Markdown as written, never as Markdown.

Streamlit renders Markdown in ``st.markdown``, captions, expander labels and ``st.table`` cells: a
``[link](url)`` or ``![image](url)`` in a knowledge-base entry, a news source or a sign-in name would
become a live link or an image fetched from anywhere. :func:`escape_markdown` backslash-escapes every
Markdown control character (and ``:``, so Streamlit's ``:color[...]`` directives and ``$`` maths do
not apply). Bare URLs and e-mail addresses are still shown as links by Streamlit's autolinking, which no
escape turns off; they are links the text itself shows, never an image loaded on sight.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+!|<>~:$-])")
#: A plain http(s) URL, safe as a link target; anything else (``javascript:``, ``data:``, text with
#: brackets or quotes that could close the link) is shown as text.
SAFE_URL = re.compile(r"https?://[^\s<>\"'()\[\]\\]+")


def escape_markdown(text: str) -> str:
    """``text`` with Markdown control characters escaped (KB, news and user text shown as it is)."""
    return _SPECIALS.sub(r"\\\1", text)


def escaped_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell escaped, for ``st.table`` (whose cells render Markdown)."""
    return frame.map(lambda v: escape_markdown(v) if isinstance(v, str) else v)


__all__ = ["SAFE_URL", "escape_markdown", "escaped_table"]

"""Progress bars (tqdm) that suit where they are drawn.

On a terminal a bar redraws up to ten times a second, as tqdm does. Anywhere else (a log file, CI, a
service manager, the UI server) every redraw is appended to the log, so a twenty-minute training would
write thousands of progress lines; there the bar redraws at most every :data:`NONINTERACTIVE_INTERVAL`
seconds, which still shows that long work is moving. That includes ``set_postfix`` and
``set_description``, which tqdm redraws at once by default: off a terminal they only change what the
next regular redraw shows.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

#: Seconds between redraws of a bar whose output is not a terminal.
NONINTERACTIVE_INTERVAL = 30.0


class _QuietBar(tqdm):  # type: ignore[misc]  # tqdm.auto's class is untyped
    """A bar whose label and postfix changes wait for the next timed redraw."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = False, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=refresh, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = False) -> None:
        super().set_postfix_str(s, refresh=refresh)

    def set_description(self, desc: str | None = None, refresh: bool = False) -> None:
        super().set_description(desc, refresh=refresh)

    def set_description_str(self, desc: str | None = None, refresh: bool = False) -> None:
        super().set_description_str(desc, refresh=refresh)


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A :class:`tqdm.auto.tqdm` bar over ``iterable`` (tqdm's own arguments in ``kwargs``), redrawn at
    most every :data:`NONINTERACTIVE_INTERVAL` seconds when its stream is not a terminal (unless
    ``mininterval`` is given), postfix and description changes included."""
    stream = kwargs.get("file") or sys.stderr
    if bool(getattr(stream, "isatty", lambda: False)()):
        return tqdm(iterable, **kwargs)
    kwargs.setdefault("mininterval", NONINTERACTIVE_INTERVAL)
    return _QuietBar(iterable, **kwargs)

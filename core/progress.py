"""Progress bars (tqdm) that suit where they are drawn.

On a terminal a bar redraws up to ten times a second, as tqdm does. Anywhere else (a log file, CI, a
service manager, the UI server) every redraw is appended to the log, so a twenty-minute training would
write thousands of progress lines; there the bar redraws at most every :data:`NONINTERACTIVE_INTERVAL`
seconds, which still shows that long work is moving.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

#: Seconds between redraws of a bar whose output is not a terminal.
NONINTERACTIVE_INTERVAL = 30.0


def progress_bar(iterable: Any = None, **kwargs: Any) -> tqdm:
    """A :class:`tqdm.auto.tqdm` bar over ``iterable`` (tqdm's own arguments in ``kwargs``), redrawn at
    most every :data:`NONINTERACTIVE_INTERVAL` seconds when its stream is not a terminal (unless
    ``mininterval`` is given)."""
    if "mininterval" not in kwargs:
        stream = kwargs.get("file") or sys.stderr
        interactive = bool(getattr(stream, "isatty", lambda: False)())
        if not interactive:
            kwargs["mininterval"] = NONINTERACTIVE_INTERVAL
    return tqdm(iterable, **kwargs)

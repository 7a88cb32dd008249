"""Progress bars redraw rarely where no terminal shows them, as often as tqdm likes where one does."""

from __future__ import annotations

import io
import time

from core.progress import NONINTERACTIVE_INTERVAL, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _slow_loop(stream: io.StringIO, **kwargs: object) -> int:
    """Iterate for about a second and count the bar's redraws."""
    for _ in progress_bar(range(200), file=stream, desc="Work", **kwargs):
        time.sleep(0.005)
    return stream.getvalue().count("\r")


def test_a_bar_into_a_log_redraws_only_at_start_and_end():
    log = io.StringIO()
    assert _slow_loop(log) <= 3
    assert "Work: 100%" in log.getvalue()  # the last state is still written
    assert progress_bar(range(2), file=io.StringIO()).mininterval == NONINTERACTIVE_INTERVAL


def test_a_bar_on_a_terminal_keeps_tqdms_pace_and_a_given_interval_wins():
    assert _slow_loop(_Terminal()) >= 5
    assert progress_bar(range(2), file=_Terminal()).mininterval == 0.1
    assert progress_bar(range(2), file=io.StringIO(), mininterval=1.0).mininterval == 1.0

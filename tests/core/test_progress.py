"""Progress bars redraw rarely where no terminal shows them, as often as tqdm likes where one does."""

from __future__ import annotations

import io
import time

from core.progress import NONINTERACTIVE_INTERVAL, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _slow_loop(stream: io.StringIO, **kwargs: object) -> int:
    """Iterate for about a second, setting the postfix at every step as the training loop does, and
    count the bar's redraws."""
    bar = progress_bar(range(200), file=stream, desc="Work", **kwargs)
    for step in bar:
        time.sleep(0.005)
        bar.set_postfix(loss=f"{1 / (step + 1):.4f}")
    return stream.getvalue().count("\r")


def test_a_bar_into_a_log_redraws_only_at_start_and_end():
    log = io.StringIO()
    assert _slow_loop(log) <= 3
    assert "Work: 100%" in log.getvalue()  # the last state is still written
    assert "loss=0.0050" in log.getvalue()  # with the last postfix
    assert progress_bar(range(2), file=io.StringIO()).mininterval == NONINTERACTIVE_INTERVAL


def test_a_bar_on_a_terminal_keeps_tqdms_pace_and_a_given_interval_wins():
    assert _slow_loop(_Terminal()) >= 5
    assert progress_bar(range(2), file=_Terminal()).mininterval == 0.1
    assert progress_bar(range(2), file=io.StringIO(), mininterval=1.0).mininterval == 1.0


def test_a_new_label_off_a_terminal_waits_for_the_next_redraw():
    log = io.StringIO()
    bar = progress_bar(range(3), file=log, desc="Epoch 1/2")
    drawn = log.getvalue().count("\r")
    bar.set_description("Epoch 2/2")
    bar.set_postfix_str("loss=1.0")
    assert log.getvalue().count("\r") == drawn
    bar.close()
    assert "Epoch 2/2" in log.getvalue().rsplit("\r", 1)[-1]

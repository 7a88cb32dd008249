"""Named fault points for kill tests: ``AIGC_FAILPOINT=<name>`` ends the process there at once.

Production systems (FoundationDB's buggify, TiKV's fail-rs, etcd's gofail) place named points in
the code paths where a crash would hurt most: between a commit and what must follow it, between
two renames. A test sets the variable, runs the real command in a subprocess, sees it die with
exit code 137 (what a ``SIGKILL`` gives) and then checks that a normal rerun loses and duplicates
nothing. The process exits with :func:`os._exit`: no ``finally`` blocks, no atexit handlers, no
flushing of buffers, exactly as if the kernel had killed it.

Several points may be armed at once, comma-separated; ``name@N`` fires on the N-th time the point
is reached (1-based), so a test can kill the second batch rather than the first.

Example:
    >>> from core.failpoints import failpoint
    >>> session.commit()
    >>> failpoint("monitor.after_score_commit")   # no-op unless armed
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter

logger = logging.getLogger(__name__)

ENV_VAR = "AIGC_FAILPOINT"
#: Exit code of a process stopped at a fault point (128 + SIGKILL), as if it had been killed.
EXIT_CODE = 137

#: The points placed in the suite, for documentation and for tests that iterate over them.
KNOWN_POINTS: tuple[str, ...] = (
    "monitor.after_score_commit",
    "monitor.after_alert_commit",
    "monitor.before_delivery",
    "outbox.before_delivery",
    "bus.before_ack",
    "index.between_renames",
    "score.during_assembly",
    "train.after_checkpoint",
    "models.during_assembly",
    "versions.before_commit",
    "versions.before_activate",
)

_hits: Counter[str] = Counter()


def _armed() -> dict[str, int]:
    """``{name: hit number to fire on}`` from the environment (read on every call: tests change it)."""
    armed: dict[str, int] = {}
    for part in os.environ.get(ENV_VAR, "").split(","):
        name, _, nth = part.strip().partition("@")
        if name:
            armed[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return armed


def failpoint(name: str) -> None:
    """Exit the process at once with :data:`EXIT_CODE` if ``name`` is armed (and due); else nothing."""
    armed = _armed()
    if name not in armed:
        return
    _hits[name] += 1
    if _hits[name] == armed[name]:
        sys.stderr.write(f"failpoint {name}: exiting with {EXIT_CODE}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)


__all__ = ["ENV_VAR", "EXIT_CODE", "KNOWN_POINTS", "failpoint"]

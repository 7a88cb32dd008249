"""Terminal output of the ``aigc`` commands: consoles that never wrap, and one-line errors.

Error messages name a file, row and field; scripts and tests grep for them, so they must stay on
one line whatever the terminal's width, the length of a temporary path, or whether there is a TTY
at all. Rich wraps at the console width by default (80 columns without a TTY), which once split
``row\\n0 (line 2)`` across lines in CI. Everything here therefore prints with ``soft_wrap=True``,
and :func:`print_error` bypasses rich altogether: no markup is parsed out of the message (a path
like ``data[1].csv`` stays intact) and newlines inside an exception's text are folded.

Example:
    >>> from core.console import exit_on_error
    >>> with exit_on_error(ValueError):
    ...     train(...)          # a ValueError prints "error: ..." on one line, exit code 2
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

#: Human-facing messages (progress, summaries) on stderr; stdout stays clean for ``--json``.
console = Console(stderr=True, soft_wrap=True)
#: Tables and results on stdout.
out = Console(soft_wrap=True)

#: Exit code of a command stopped by bad input or configuration.
EXIT_INPUT = 2
#: Exit code of a command stopped by an unreachable or failing database.
EXIT_DATABASE = 3


def one_line(message: object) -> str:
    """``message`` as text with every run of whitespace (newlines included) folded to one space."""
    return " ".join(str(message).split())


def print_error(message: object, label: str = "error") -> None:
    """Write ``label: message`` to stderr as exactly one line (no markup, no wrapping)."""
    sys.stderr.write(f"{label}: {one_line(message)}\n")
    sys.stderr.flush()


def fail(message: object, code: int = EXIT_INPUT, label: str = "error") -> typer.Exit:
    """Print ``message`` as one error line and return the :class:`typer.Exit` to raise.

    Example:
        >>> raise fail(f"--engine must be local or ray, got {engine!r}")
    """
    print_error(message, label)
    return typer.Exit(code=code)


@contextmanager
def exit_on_error(
    *errors: type[BaseException], code: int = EXIT_INPUT, label: str = "error"
) -> Iterator[None]:
    """Turn ``errors`` raised inside the block into one error line and exit ``code`` (no traceback)."""
    try:
        yield
    except errors as err:
        raise fail(err, code, label) from None


__all__ = [
    "EXIT_DATABASE",
    "EXIT_INPUT",
    "console",
    "exit_on_error",
    "fail",
    "one_line",
    "out",
    "print_error",
]

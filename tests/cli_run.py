"""Run the ``aigc`` console script in-process, as a user would (known errors -> one line, exit 2)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass
class CliResult:
    """Exit code and captured output of one ``aigc`` run."""

    code: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        """The lines of stderr that start with ``error:``."""
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def run_aigc(*args: str) -> CliResult:
    """Call :func:`core.cli.main` with ``args`` (no TTY, output captured); never raises ``SystemExit``."""
    from core.cli import main

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["aigc", *args]
    # The command sets up logging on the root logger (a rich handler writing to stderr); put the
    # test process's logging back afterwards, or later tests would capture log lines on stderr.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = argv
        root.handlers[:] = handlers
        root.setLevel(level)
    return CliResult(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: CliResult, *fragments: str) -> str:
    """Exit code 2, exactly one ``error:`` line holding every fragment, and no traceback."""
    assert result.code == 2, (result.code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = result.error_lines
    assert len(lines) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def run_aigc_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``aigc`` console script in a child process without a TTY (stdin closed,
    output captured), with ``env`` over this process's environment; never raises on its exit code."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("aigc")), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=timeout,
    )

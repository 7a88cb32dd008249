"""Run the ``aigc ui`` suite as a background server (for browser tests and benchmarks)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

# Debian's headless Chromium in a container, with no network chatter of its own (browser tests and
# the memory benchmark drive the suite with it).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ui_server(
    apps: list[str] | None = None,
    env: dict[str, str] | None = None,
    log_path: str | Path | None = None,
    timeout: float = 60.0,
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start ``aigc ui`` on a free port of 127.0.0.1 and wait until it is healthy.

    Args:
        apps: Only these apps (default: every installed one).
        env: Extra environment variables for the server.
        log_path: Where the server's output goes (default: discarded). A file, not a pipe nobody
            reads, which could fill and stall the server during a long run.
        timeout: Seconds to wait for the health endpoint.

    Yields:
        ``(process, base URL)``. On exit the server is stopped (``aigc ui`` forwards SIGTERM to
        Streamlit); anything still running after 20 s is killed.

    Raises:
        RuntimeError: The server exited before it became healthy (with its output when logged).
        TimeoutError: It did not become healthy within ``timeout`` seconds.
    """
    port = free_port()
    cmd = [sys.executable, "-m", "core.cli", "ui", "--port", str(port), "--address", "127.0.0.1"]
    for app in apps or []:
        cmd += ["--app", app]
    with contextlib.ExitStack() as stack:
        out: IO[str] | int = subprocess.DEVNULL
        if log_path is not None:
            out = stack.enter_context(open(log_path, "w", encoding="utf-8"))  # noqa: SIM115
        proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT, text=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, timeout, log_path)
        yield proc, url
    finally:
        stop_process_tree(proc.pid)


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float, log_path: str | Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = Path(log_path).read_text(encoding="utf-8") if log_path else "(output not logged)"
            raise RuntimeError(f"aigc ui exited early:\n{output}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"aigc ui did not become healthy within {timeout:.0f} s")


def stop_process_tree(pid: int, timeout: float = 20.0) -> None:
    """SIGTERM ``pid`` and its descendants; SIGKILL what is left after ``timeout`` seconds."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        logger.warning("Killing a process that ignored SIGTERM", extra={"pid": proc.pid})
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)

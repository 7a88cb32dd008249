"""Helpers for tests that start real servers as subprocesses on 127.0.0.1 (free port, wait, stop)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_process(cmd: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start ``cmd`` with its output in ``log_path`` (an unread pipe could block a chatty server)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)


def wait_http(proc: subprocess.Popen, url: str, log_path: Path, timeout_s: float = 300.0) -> None:
    """Poll ``url`` until it answers 200; raise with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log_path.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_process(proc)
    raise RuntimeError(f"{url} did not answer in {timeout_s:.0f} s: {log_path.read_text()[-3000:]}")


def stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_entry_points_dir(tmp: Path) -> Path | None:
    """A directory to put on ``PYTHONPATH`` so a subprocess finds this checkout's ``aigc.api`` plugins.

    ``None`` when they are installed already; otherwise (an install made from another checkout) a
    minimal ``dist-info`` with the entry points of this checkout's pyproject.toml.
    """
    if entry_points(group="aigc.api"):
        return None
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    group = project["project"]["entry-points"]["aigc.api"]
    info = tmp / "aigc_api_plugins-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aigc-api-plugins\nVersion: 0.0\n")
    lines = ["[aigc.api]", *(f"{name} = {target}" for name, target in group.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return tmp


def server_env(tmp: Path, **variables: str) -> dict[str, str]:
    """The environment of a server subprocess: this checkout first on ``PYTHONPATH``, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if k not in ("AIGC_GENERATION_URL",)}
    paths = [str(REPO)]
    extra = api_entry_points_dir(tmp)
    if extra is not None:
        paths.insert(0, str(extra))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env.update(PYTHONPATH=os.pathsep.join(paths), OMP_WAIT_POLICY="PASSIVE", **variables)
    return env

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from core import __version__
from core.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_models_json_lists_both_defaults_installed():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"smollm2-135m-instruct", "minilm-l6", "mpnet-base"}
    assert all(row["status"] == "installed" for row in rows.values() if not row["optional"])
    # The optional encoder is listed with its state whether or not the `accurate` extra is installed.
    assert rows["mpnet-base"]["optional"] is True
    assert rows["mpnet-base"]["status"] in {"installed", "not assembled", "missing"}


def test_app_subcommands_are_mounted():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("support", "finance", "recommend", "ui", "models", "db"):
        assert name in result.stdout


def test_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    current = runner.invoke(app, ["db", "current", "--url", url])
    assert current.exit_code == 0 and "(no schema" not in current.stdout


def test_ui_stops_its_streamlit_server_on_sigterm(tmp_path):
    """SIGTERM to `aigc ui` alone (not its process group) must not leave the Streamlit server running."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    import psutil

    from tests.browser import free_port

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "ui", "--port", str(port), "--address", "127.0.0.1"],
        env={**os.environ, "AIGC_HOME": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.3)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "aigc ui should run Streamlit as a child process"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"left running: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_python_m_core_cli_mounts_every_app_once() -> None:
    """``python -m core.cli`` works like ``aigc``: no plugin import cycle, all app commands mounted."""
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "core.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "Could not load plugin" not in proc.stderr
    for name in ("support", "finance", "recommend"):
        assert f"│ {name} " in proc.stdout


def test_app_cli_imported_before_core_cli_still_mounts() -> None:
    """Importing an app's CLI first (as a test or a plugin host may) leaves ``aigc`` whole."""
    import subprocess
    import sys

    code = (
        "import apps.finance_monitor.cli, apps.customer_service.cli, apps.recommender.cli\n"
        "from core.cli import app\n"
        "print(sorted(g.name for g in app.registered_groups))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Could not load plugin" not in proc.stderr
    for name in ("finance", "recommend", "support"):
        assert f"'{name}'" in proc.stdout


def test_the_command_line_sets_passive_openmp_waiting_before_torch_loads():
    """libgomp reads OMP_WAIT_POLICY once, when torch loads it: the CLI must set it before that import."""
    code = (
        "import importlib.abc, os, sys\n"
        "seen = []\n"
        "class Spy(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch' and not seen:\n"
        "            seen.append(os.environ.get('OMP_WAIT_POLICY'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Spy())\n"
        "import core.cli\n"
        "assert not seen, 'importing the command line loads no torch'\n"
        "import torch  # as a command that needs a model does, later\n"
        "print(seen)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "['PASSIVE']", run.stderr

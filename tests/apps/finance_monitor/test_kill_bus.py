"""Kill tests over a real bus: `aigc finance monitor --source redis://... | nats://...` dies, a rerun ends it.

The sample stream (506 items, in publication order) is published to a fresh Redis stream or NATS
subject; the monitor consumes it in batches of 128 and is killed at a fault point (``os._exit(137)``,
as by SIGKILL) or by a real SIGKILL from outside while following the bus. A rerun drains the
rest. The database must then hold what the uninterrupted run over the same files holds (the
fixture of test_kill.py): every item once, scored once, the same alerts, each delivered once,
and the broker must have nothing left unacknowledged and no dead letters.

In the default run: ``bus.before_ack`` and a real SIGKILL on each broker, about 2 minutes on two quiet
cores (each monitor process 5-15 s); ``-m slow`` adds the three monitor fault points on each.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps.finance_monitor.feed import publish_items
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, SAMPLE_WATCHLIST, STREAM_FILES
from apps.finance_monitor.sources import read_news
from core.bus import BusSettings, open_source
from core.failpoints import EXIT_CODE
from tests.apps.finance_monitor.test_kill import RULES, TOKEN, check_complete, uninterrupted  # noqa: F401
from tests.bus_harness import bus_url, dead_letters  # noqa: F401 - fixture
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[3]
BATCH = 128  # 506 items: 4 batches of the bus, each scored in 2 batches of 64
GROUP = "aigc-finance-monitor"
PASSWORD = "bu5PASSword77"


def publish_sample(url: str) -> None:
    items = [item for name in STREAM_FILES for item in read_news(SAMPLE_DATA_DIR / name)]
    assert publish_items(url, sorted(items, key=lambda i: (i.timestamp, i.id))) == 506


def monitor_cmd(tmp: Path, model: Path, mode: str = "--once") -> tuple[list[str], Path]:
    rules = tmp / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    cmd = [sys.executable, "-c", "from core.cli import main; main()", "finance", "monitor", mode]
    cmd += ["--set", f"sentiment_model={model}", "--set", f"rules={rules}", "--set", "batch_size=64"]
    cmd += ["--set", "webhook_backoff_s=0", "--set", "webhook_max_backoff_s=0"]
    cmd += ["--set", f"bus.batch={BATCH}", "--set", "bus.wait_s=0.3", "--set", "bus.ack_wait_s=2"]
    cmd += ["--set", "bus.consumer=kill-test", "--set", f"watchlist={SAMPLE_WATCHLIST}"]
    return cmd, rules


def monitor_env(tmp: Path, source: str, receiver_url: str, failpoint: str = "") -> dict[str, str]:
    env = {
        **os.environ,
        "AIGC_DATA_DIR": str(tmp / "data"),
        "AIGC_FINANCE_WEBHOOK_URL": f"{receiver_url}?token={TOKEN}",
        "AIGC_FINANCE_SOURCE": source,  # the URL (with a password on Redis) stays off the command line
        "AIGC_FAILPOINT": failpoint,
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "60",
    }
    env.pop("AIGC_DB_URL", None)
    return env


def run_monitor(
    tmp: Path, model: Path, source: str, url: str, failpoint: str = ""
) -> subprocess.CompletedProcess:
    cmd, _ = monitor_cmd(tmp, model)
    env = monitor_env(tmp, source, url, failpoint)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def with_password(url: str) -> str:
    """The Redis URL with a user and password (the test server ignores them for user ``default``)."""
    if not url.startswith("redis://"):
        return url
    return url.replace("redis://", f"redis://default:{PASSWORD}@", 1)


def items_stored(tmp: Path) -> int:
    try:
        with sqlite3.connect(tmp / "data" / "aigc.db", timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM finance_scores").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def assert_bus_done(url: str) -> None:
    with open_source(url, BusSettings(group=GROUP, consumer="kill-test")) as source:
        assert source.pending() == 0
    assert dead_letters(url) == []


def assert_secret_kept(*runs: subprocess.CompletedProcess) -> None:
    output = "".join(r.stdout + r.stderr for r in runs)
    assert TOKEN not in output and PASSWORD not in output


@pytest.mark.parametrize(
    "point",
    [
        "bus.before_ack@2",  # batch 2 stored, scored and evaluated, never acknowledged: delivered again
        # The other points in the slow run (-m slow): each case is two monitor processes.
        pytest.param("monitor.after_score_commit@3", marks=pytest.mark.slow),  # half of batch 2 scored
        # The first paced evaluation comes right after batch 1 (the second only with the last batch,
        # once a tiny model scores all 506 items within the pacing): killed with 128 items stored.
        pytest.param("monitor.after_alert_commit", marks=pytest.mark.slow),
        pytest.param("monitor.before_delivery@2", marks=pytest.mark.slow),
    ],
)
# Each broker's consumer runs both kill cases in the slow run; the default run takes one of each.
@pytest.mark.parametrize("bus_url", ["redis", pytest.param("nats", marks=pytest.mark.slow)], indirect=True)
def test_killed_at_a_fault_point_while_consuming_then_rerun(
    point,
    bus_url,  # noqa: F811 - fixture
    uninterrupted,  # noqa: F811 - fixture
    tiny_sentiment_dir,
    tmp_path,
):
    publish_sample(bus_url)
    source = with_password(bus_url)
    with Receiver() as receiver:
        killed = run_monitor(tmp_path, tiny_sentiment_dir, source, receiver.url, point)
        assert killed.returncode == EXIT_CODE, killed.stderr
        assert f"failpoint {point.split('@')[0]}" in killed.stderr
        assert 0 < items_stored(tmp_path) < 506 or point.startswith("monitor.before_delivery")
        rerun = run_monitor(tmp_path, tiny_sentiment_dir, source, receiver.url)
        assert rerun.returncode == 0, rerun.stderr
        assert "redelivered" in rerun.stderr
    after = check_complete(tmp_path, uninterrupted, receiver)
    assert {d[2] for d in after["deliveries"]} == {"delivered"}
    assert_bus_done(bus_url)
    assert_secret_kept(killed, rerun)


@pytest.mark.parametrize("bus_url", ["nats", pytest.param("redis", marks=pytest.mark.slow)], indirect=True)
def test_sigkill_while_following_the_bus_then_rerun(
    bus_url,  # noqa: F811 - fixture
    uninterrupted,  # noqa: F811 - fixture
    tiny_sentiment_dir,
    tmp_path,
):
    publish_sample(bus_url)
    source = with_password(bus_url)
    with Receiver() as receiver:
        cmd, _ = monitor_cmd(tmp_path, tiny_sentiment_dir, "--follow")
        # Small batches, so that the kill lands between two of them with many still to come.
        cmd += ["--set", "bus.batch=16"]
        follower = subprocess.Popen(
            cmd, cwd=ROOT, env=monitor_env(tmp_path, source, receiver.url), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 240
            while items_stored(tmp_path) < 100 and time.monotonic() < deadline and follower.poll() is None:
                time.sleep(0.05)
            stored = items_stored(tmp_path)
            follower.send_signal(signal.SIGKILL)
            out, err = follower.communicate(timeout=60)
        finally:
            if follower.poll() is None:
                follower.kill()
        assert follower.returncode == -signal.SIGKILL, err
        assert 100 <= stored < 506, f"killed after {stored} scored items: too late to prove anything"
        rerun = run_monitor(tmp_path, tiny_sentiment_dir, source, receiver.url)
        assert rerun.returncode == 0, rerun.stderr
    check_complete(tmp_path, uninterrupted, receiver)
    assert_bus_done(bus_url)
    assert TOKEN not in out + err and PASSWORD not in out + err
    assert_secret_kept(rerun)

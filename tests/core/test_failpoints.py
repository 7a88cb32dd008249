"""Named fault points end the process at once, only where and when armed."""

from __future__ import annotations

import subprocess
import sys

from core.failpoints import ENV_VAR, EXIT_CODE

SCRIPT = """
import sys
from core.failpoints import failpoint
for i in range(3):
    print(i, flush=True)
    failpoint("demo.point")
print("done", flush=True)
"""


def _run(env_value: str | None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if env_value is not None:
        env[ENV_VAR] = env_value
    return subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=False
    )


def test_unarmed_point_does_nothing():
    result = _run(None)
    assert result.returncode == 0 and result.stdout.split() == ["0", "1", "2", "done"]
    assert _run("other.point").returncode == 0


def test_armed_point_exits_137_on_first_hit():
    result = _run("demo.point")
    assert result.returncode == EXIT_CODE
    assert result.stdout.split() == ["0"]
    assert "failpoint demo.point" in result.stderr


def test_nth_hit_and_several_points():
    result = _run("other.point, demo.point@3")
    assert result.returncode == EXIT_CODE
    assert result.stdout.split() == ["0", "1", "2"]

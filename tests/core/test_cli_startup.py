"""The ``aigc`` commands that touch no model start without the model libraries.

``aigc --help`` used to import torch, transformers and peft (through the finance app's settings and
the error handler's exception list): 9 s of CPU before any output. Each case runs the console
script's entry point in a fresh interpreter, as a user's shell does, and lists the heavy libraries
that were imported by the time it exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import project_root

#: Libraries that cost seconds to import and that only model work needs.
HEAVY = ("torch", "transformers", "peft", "sentence_transformers", "faiss", "sklearn", "llama_cpp")

_PROBE = """
import atexit, json, sys
heavy = {heavy!r}
def report():
    print("LOADED=" + json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)
atexit.register(report)
sys.argv = ["aigc", *{args!r}]
{pre}
from core.cli import main
main()
"""


def _loaded(args: list[str], home: Path, pre: str = "") -> tuple[int, list[str], str]:
    env = {**os.environ, "AIGC_HOME": str(home), "AIGC_DATA_DIR": str(home / "data"), "COLUMNS": "100"}
    env.pop("AIGC_DB_URL", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY, args=args, pre=pre)],
        capture_output=True,
        text=True,
        env=env,
        cwd=project_root(),
        timeout=120,
        check=False,
    )
    marker = [line for line in proc.stderr.splitlines() if line.startswith("LOADED=")]
    assert marker, proc.stderr[-2000:]
    return proc.returncode, json.loads(marker[-1].removeprefix("LOADED=")), proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["version"],
        ["models"],
        ["users", "list"],
        ["audit"],
        ["support", "--help"],
        ["support", "queue"],
        ["support", "take", "1"],
        ["support", "deliveries"],
        ["finance", "--help"],
        ["finance", "train", "--help"],
        ["finance", "deliveries"],
        ["finance", "digest", "--alert", "1"],
        ["finance", "entities"],
        ["recommend", "--help"],
    ],
    ids=lambda args: " ".join(args),
)
def test_commands_without_model_work_load_no_model_library(args: list[str], tmp_path: Path) -> None:
    code, loaded, output = _loaded(args, tmp_path)
    # `take 1` and `digest --alert 1` on an empty database end in one error line and exit 2
    assert code in (0, 2), output[-2000:]
    assert "Traceback" not in output
    assert loaded == [], f"`aigc {' '.join(args)}` imported {loaded}"


def test_the_probe_sees_a_model_library_when_one_is_imported(tmp_path: Path) -> None:
    # the control: the same probe reports torch once something imports it, or the test above proves nothing
    code, loaded, output = _loaded(["--help"], tmp_path, pre="import torch")
    assert code == 0, output[-2000:]
    assert loaded == ["torch"], (loaded, output[-2000:])

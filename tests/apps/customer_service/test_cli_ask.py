"""`aigc support ask`, `export-feedback` and `calibrate` from the command line."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from apps.customer_service.cli import app
from apps.customer_service.confidence import CALIBRATION_FILE
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir  # noqa: F401

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_ask_prints_the_documented_json(calibrated_kb_dir):  # noqa: F811
    result = runner.invoke(
        app, ["ask", "i forgot my login password", "--kb-dir", str(calibrated_kb_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"answer", "sources", "confidence", "handoff", "intent", "latency_ms"}
    assert payload["sources"][0]["id"] == "acct-01" and set(payload["sources"][0]) == {"id", "title", "score"}
    assert payload["handoff"] is False and payload["intent"] is None
    assert payload["answer"].startswith("Click Sign in, then Forgot password")


def test_ask_hands_off_out_of_scope(calibrated_kb_dir):  # noqa: F811
    result = runner.invoke(app, ["ask", "how tall is mount everest", "--kb-dir", str(calibrated_kb_dir)])
    assert result.exit_code == 0, result.output
    assert "HAND-OFF" in flat(result.output) and "don't know" in flat(result.output)


def test_ask_rejects_bad_input_with_exit_code_2(calibrated_kb_dir, tmp_path):  # noqa: F811
    empty = runner.invoke(app, ["ask", "  ", "--kb-dir", str(calibrated_kb_dir)])
    assert empty.exit_code == 2 and "question is empty" in flat(empty.output)
    missing = runner.invoke(app, ["ask", "hello", "--kb-dir", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in flat(missing.output)
    (tmp_path / "notkb").mkdir()
    (tmp_path / "notkb" / "x.txt").write_text("x")
    corrupt = runner.invoke(app, ["ask", "hello", "--kb-dir", str(tmp_path / "notkb")])
    assert corrupt.exit_code == 2 and "not a knowledge base" in flat(corrupt.output)
    bad_set = runner.invoke(
        app, ["ask", "hello", "--kb-dir", str(calibrated_kb_dir), "--set", "answer.nope=1"]
    )
    assert bad_set.exit_code == 2 and "nope" in flat(bad_set.output)
    assert "Traceback" not in empty.output + missing.output + corrupt.output + bad_set.output


def test_export_feedback_writes_an_indexable_file(tmp_path):
    out = tmp_path / "fb.csv"
    result = runner.invoke(app, ["export-feedback", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"rows": 0, "path": str(out)}
    assert out.read_text(encoding="utf-8").strip() == "id,question,answer,title,url,category"
    bad = runner.invoke(app, ["export-feedback", "--out", str(tmp_path / "fb.xlsx")])
    assert bad.exit_code == 2 and "export format" in flat(bad.output)


def test_calibrate_writes_the_gate_into_the_kb(calibrated_kb_dir, tmp_path):  # noqa: F811
    kb_dir = tmp_path / "kb"
    shutil.copytree(calibrated_kb_dir, kb_dir)
    (kb_dir / CALIBRATION_FILE).unlink()
    result = runner.invoke(app, ["calibrate", "--kb-dir", str(kb_dir), "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((kb_dir / CALIBRATION_FILE).read_text())
    assert saved["fitted"] and saved == json.loads(result.stdout)

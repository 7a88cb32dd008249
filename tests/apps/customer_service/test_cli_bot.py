"""`aigc support` (:mod:`apps.customer_service.cli`): the joined sub-apps, and `ask`, `answering`,
`export-feedback` and `calibrate` from the command line."""

from __future__ import annotations

import json
import shutil

import typer
from typer.testing import CliRunner

from apps.customer_service.cli import app
from apps.customer_service.confidence import CALIBRATION_FILE
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir  # noqa: F401

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_support_joins_the_commands_of_every_sub_app_in_order():
    group = typer.main.get_command(app)
    commands = ["ui", "index", "eval", "ask", "answering", "export-feedback", "sample-questions", "calibrate"]
    commands += ["gaps"]
    commands += ["train-intents", "eval-intents", "finetune", "eval-answers", "refresh", "versions"]
    commands += ["queue", "take", "reply", "release", "resolve", "queue-stats", "deliveries"]
    assert list(group.commands) == commands
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and all(name in result.output for name in commands)


def test_ask_prints_the_documented_json(calibrated_kb_dir):  # noqa: F811
    result = runner.invoke(
        app, ["ask", "i forgot my login password", "--kb-dir", str(calibrated_kb_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "answer", "route", "sources", "confidence", "handoff", "handoff_reason", "uncovered", "intent",
        "latency_ms",
    }  # fmt: skip
    source = payload["sources"][0]
    assert source["id"] == "acct-01" and set(source) == {"id", "title", "score", "text"}
    assert source["text"] == payload["answer"] and payload["route"] == "faq"
    assert payload["handoff"] is False and payload["intent"] is None
    assert payload["answer"].startswith("Click Sign in, then Forgot password")


def test_ask_answers_every_row_of_a_questions_file_as_json_lines(calibrated_kb_dir, tmp_path):  # noqa: F811
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "id,question\n1,i forgot my login password\n2,how tall is mount everest\n"
        '3,"how long until i get my money back after a return"\n',
        encoding="utf-8",
    )
    result = runner.invoke(
        app, ["ask", "--questions", str(questions), "--kb-dir", str(calibrated_kb_dir), "--json"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in rows] == [
        "i forgot my login password",
        "how tall is mount everest",
        "how long until i get my money back after a return",
    ]
    assert [r["route"] for r in rows][:2] == ["faq", "handoff"] and rows[1]["sources"] == []
    for row in rows:
        assert {"question", "answer", "route", "confidence", "handoff", "sources"} <= set(row)
        for source in row["sources"]:
            assert set(source) == {"id", "title", "score", "text"} and source["text"]
    assert "5 working days" in rows[2]["answer"] and not rows[2]["handoff"]


def test_ask_questions_file_errors_name_the_row_and_field(calibrated_kb_dir, tmp_path):  # noqa: F811
    bad = tmp_path / "q.csv"
    bad.write_text("question,channel\nfine,mail\n   ,chat\n", encoding="utf-8")
    result = runner.invoke(app, ["ask", "--questions", str(bad), "--kb-dir", str(calibrated_kb_dir)])
    assert result.exit_code == 2
    assert f"{bad}: row 1 (line 3), field 'question': is empty" in result.output
    no_column = tmp_path / "c.csv"
    no_column.write_text("query\nhello\n", encoding="utf-8")
    result = runner.invoke(app, ["ask", "--questions", str(no_column), "--kb-dir", str(calibrated_kb_dir)])
    assert result.exit_code == 2 and "field 'question': missing column(s) ['question']" in result.output
    both = runner.invoke(app, ["ask", "hi", "--questions", str(bad), "--kb-dir", str(calibrated_kb_dir)])
    assert both.exit_code == 2 and "exactly one" in both.output
    folder = runner.invoke(app, ["ask", "--questions", str(tmp_path), "--kb-dir", str(calibrated_kb_dir)])
    assert folder.exit_code == 2 and "not a file" in folder.output
    assert "Traceback" not in result.output + both.output + folder.output


def test_answering_sets_the_kb_answer_mode(calibrated_kb_dir, tmp_path):  # noqa: F811
    kb_dir = tmp_path / "kb"
    shutil.copytree(calibrated_kb_dir, kb_dir)
    result = runner.invoke(app, ["answering", "--kb-dir", str(kb_dir), "--mode", "generate"])
    assert result.exit_code == 0, result.output
    assert json.loads((kb_dir / "answering.json").read_text())["mode"] == "generate"
    bad = runner.invoke(app, ["answering", "--kb-dir", str(kb_dir), "--mode", "poetry"])
    assert bad.exit_code == 2 and "must be one of" in bad.output
    nokb = runner.invoke(app, ["answering", "--kb-dir", str(tmp_path), "--mode", "generate"])
    assert nokb.exit_code == 2 and "no knowledge base" in nokb.output


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


def test_paths_with_brackets_are_printed_as_given_not_as_markup(tmp_path):
    """Rich markup in a path ended in a MarkupError traceback after the work was done (exit 1)."""
    from tests.cli_run import run_aigc

    out = tmp_path / "label[/b].csv"
    result = run_aigc("support", "sample-questions", "--out", str(out), "--kb-dir", str(tmp_path / "kb[/b]"))
    assert result.code == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert out.is_file() and str(out) in result.stderr
    dry = run_aigc("support", "refresh", "--dry-run", "--kb-dir", str(tmp_path / "nokb[/b]"))
    assert dry.code == 0 and "Traceback" not in dry.stderr, dry.stderr[-2000:]
    assert f"no knowledge base at {tmp_path / 'nokb[/b]'}" in dry.stderr

"""`aigc support gaps` (apps.customer_service.cli.gaps): the JSON shape, the table, saving, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from apps.customer_service.cli import app
from apps.customer_service.cli.gaps import parse_since
from apps.customer_service.storage import SupportStore
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir  # noqa: F401

runner = CliRunner()
QUESTIONS = [
    "Do you have a mobile app?",
    "i forgot my login password",
    "Is there an app for iPhone?",
    "Do you offer gift wrapping?",
    "Can I download your app on Android?",
    "Can you wrap my present for me?",
    "what is the capital of australia",
]


@pytest.fixture
def questions(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text("question\n" + "".join(f'"{q}"\n' for q in QUESTIONS), encoding="utf-8")
    return path


def gaps(*args: str):
    return runner.invoke(app, ["gaps", *args])


def test_json_is_the_documented_shape_largest_cluster_first(calibrated_kb_dir, questions):  # noqa: F811
    result = gaps(
        "--kb-dir",
        str(calibrated_kb_dir),
        "--questions",
        str(questions),
        "--json",
        "--set",
        "draft=extractive",
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert list(payload) == ["clusters", "unclustered"]
    keys = ["label", "size", "questions", "nearest", "draft_answer", "draft_sources"]
    assert [list(c) for c in payload["clusters"]] == [keys, keys]
    sizes = [c["size"] for c in payload["clusters"]]
    assert sizes == [3, 2] and [len(c["questions"]) for c in payload["clusters"]] == sizes
    assert "i forgot my login password" not in json.dumps(payload)  # the bot answers it
    assert payload["unclustered"] == ["what is the capital of australia"]
    assert "7 questions read, 6 not answered: 2 clusters, 1 unclustered" in " ".join(result.stderr.split())
    assert "(generation off)" in result.stderr


def test_the_table_lists_clusters_and_save_stores_the_report(calibrated_kb_dir, questions, wide_output):  # noqa: F811
    result = gaps(
        "--kb-dir",
        str(calibrated_kb_dir),
        "--questions",
        str(questions),
        "--set",
        "draft=extractive",
        "--save",
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "Knowledge gaps" in out and "Unclustered (1): what is the capital of australia" in out
    assert "no draft" in out and "app" in out
    [report] = SupportStore().gap_reports()
    assert report["source"] == "file" and report["gaps"] == 6
    assert [d["size"] for d in SupportStore().gap_drafts(report_id=report["id"])] == [3, 2]
    assert "Saved as gap report" in result.stderr


def test_no_stored_gaps_gives_an_empty_report(calibrated_kb_dir):  # noqa: F811
    result = gaps("--kb-dir", str(calibrated_kb_dir), "--json", "--since", "2026-01-01")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"clusters": [], "unclustered": []}


def test_stored_questions_of_another_kb_are_no_gaps_of_this_one(calibrated_kb_dir, tmp_path):  # noqa: F811
    from apps.customer_service.bot import Answer

    handoff = Answer(text="A person will help.", sources=[], confidence=0.1, handoff=True, route="handoff")
    store = SupportStore()
    for kb, question in [
        (calibrated_kb_dir, "Do you offer gift wrapping?"),
        (calibrated_kb_dir, "Can you wrap my present for me?"),
        (tmp_path / "other-kb", "Do you have a mobile app?"),
        (tmp_path / "other-kb", "Is there an app for iPhone?"),
    ]:
        store.add_exchange(store.start_conversation(question, kb=kb), question, handoff)
    result = gaps("--kb-dir", str(calibrated_kb_dir), "--json", "--set", "draft=extractive")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    asked = [q for c in payload["clusters"] for q in c["questions"]] + payload["unclustered"]
    assert sorted(asked) == ["Can you wrap my present for me?", "Do you offer gift wrapping?"]
    assert "2 questions read, 2 not answered" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "--since: 'last week' is not a date; give YYYY-MM-DD or an ISO date-time"),
        (["--set", "clustering.method=kmeans"], "clustering.method"),
        (["--set", "low_confidence=2"], "low_confidence"),
        (["--set", "low_confidence=abc"], "--set low_confidence=abc: low_confidence: expected float"),
        (["--since", "0001-01-01T00:00:00+05:00"], "--since: '0001-01-01T00:00:00+05:00' is not a date"),
        (["--since", "9999-12-31T23:00:00-05:00"], "is not a date"),
    ],
)
def test_bad_options_end_with_one_line_and_code_2(calibrated_kb_dir, args, message):  # noqa: F811
    result = gaps("--kb-dir", str(calibrated_kb_dir), *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and message in result.stderr and result.stdout == ""


def test_bad_files_are_named_with_row_and_field(calibrated_kb_dir, tmp_path, questions):  # noqa: F811
    bad = tmp_path / "bad.csv"
    bad.write_text("text\nDo you gift wrap?\n", encoding="utf-8")
    result = gaps("--kb-dir", str(calibrated_kb_dir), "--questions", str(bad))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "bad.csv" in result.stderr and "question" in result.stderr
    empty_row = tmp_path / "empty.csv"
    empty_row.write_text("id,question\n1,Do you gift wrap?\n2,\n", encoding="utf-8")
    result = gaps("--kb-dir", str(calibrated_kb_dir), "--questions", str(empty_row))
    assert result.exit_code == 2 and "empty.csv: row 1 (line 3), field 'question': is empty" in result.stderr
    result = gaps("--kb-dir", str(tmp_path / "no-kb"), "--questions", str(questions))
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = gaps("--kb-dir", str(calibrated_kb_dir), "--questions", str(questions), "--since", "2026-01-01")
    assert result.exit_code == 2 and "--since applies to stored questions" in result.stderr


def test_since_takes_dates_and_times_in_utc():
    assert parse_since("2026-12-01").isoformat() == "2026-12-01T00:00:00+00:00"
    assert parse_since("2026-12-01T10:00+02:00").isoformat() == "2026-12-01T08:00:00+00:00"
    assert parse_since(None) is None

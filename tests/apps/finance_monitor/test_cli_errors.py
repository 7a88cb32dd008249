"""One-line errors of the finance commands, and the artifact guard of `aigc finance train`.

The property tests feed generated malformed files (see :mod:`tests.malformed`) to every finance command
that reads one: exit 2, one line naming the file (and the row of a bad JSON line), nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.cli_run import assert_one_line_error, run_aigc
from tests.malformed import (
    FEW,
    check_rejected,
    csv_header_only,
    csv_missing_column,
    csv_not_utf8,
    empty_file,
    jsonl_broken_line,
    parquet_truncated,
    yaml_broken,
)

SAMPLE = Path(__file__).resolve().parents[3] / "apps" / "finance_monitor" / "sample_data"
LABELLED = ("text", "label")
TRAIN = ("finance", "train", "--task", "sentiment")
SAMPLE_TRAIN = str(SAMPLE / "train_sentiment.csv")


def labelled_files():
    return st.one_of(
        csv_missing_column(LABELLED),
        csv_header_only(LABELLED),
        csv_not_utf8(LABELLED),
        empty_file(".csv"),
        jsonl_broken_line(LABELLED),
        parquet_truncated(["headline", "tone"]),
    )


def text_files():
    return st.one_of(
        csv_missing_column(["text"]),
        csv_header_only(["text"]),
        csv_not_utf8(["text"]),
        empty_file(".csv"),
        jsonl_broken_line(["text"]),
        parquet_truncated(["body"]),
    )


@FEW
@given(bad=labelled_files())
def test_train_rejects_malformed_data(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["finance", "train", "--task", "sentiment", "--data", str(p),
                                        "--out", str(out / "model")], out,
    )  # fmt: skip


@FEW
@given(bad=labelled_files())
def test_eval_rejects_malformed_data(tmp_path, bad, tiny_sentiment_dir):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in",
        bad,
        lambda p: ["finance", "eval", "--model", str(tiny_sentiment_dir), "--data", str(p)],
        out,
    )


@FEW
@given(bad=text_files())
def test_classify_rejects_malformed_input(tmp_path, bad, tiny_sentiment_dir):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["finance", "classify", "--model", str(tiny_sentiment_dir),
                                        "--input", str(p), "--out", str(out / "labelled.csv")], out,
    )  # fmt: skip


@FEW
@given(bad=yaml_broken())
def test_monitor_rejects_malformed_rules(tmp_path, bad, tiny_sentiment_dir):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["finance", "monitor", "--once", "--watch-dir", str(out),
                                        "--set", f"sentiment_model={tiny_sentiment_dir}",
                                        "--set", f"rules={p}"],
        out,
    )  # fmt: skip


# --- the cases of issue 12, one by one -----------------------------------------------------------


def test_classify_header_only_input_is_refused_and_writes_nothing(tmp_path, tiny_sentiment_dir):
    source = tmp_path / "news.csv"
    source.write_text("text\n")
    out = tmp_path / "labelled.csv"
    result = run_aigc("finance", "classify", "--model", str(tiny_sentiment_dir), "--input", str(source),
                      "--out", str(out))  # fmt: skip
    assert_one_line_error(result, str(source), "no rows")
    assert not out.exists()


def test_classify_bad_jsonl_names_the_row(tmp_path, tiny_sentiment_dir):
    source = tmp_path / "news.jsonl"
    source.write_text('{"text": "Shares rise"}\n{"text": "Shares fall",}\n')
    result = run_aigc("finance", "classify", "--model", str(tiny_sentiment_dir), "--input", str(source),
                      "--out", str(tmp_path / "o.csv"))  # fmt: skip
    line = assert_one_line_error(result, str(source), "row 2 (line 2)")
    assert "position" not in line


def test_three_training_rows_are_refused_before_training(tmp_path):
    data = tmp_path / "three.csv"
    data.write_text("text,label\nup,positive\ndown,negative\nflat,neutral\n")
    result = run_aigc(
        "finance", "train", "--task", "sentiment", "--data", str(data), "--out", str(tmp_path / "m")
    )
    assert_one_line_error(result, str(data), "validation split", "val_fraction=0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.csv"]


def test_a_bad_label_confidence_is_one_line_naming_file_row_and_field(tmp_path):
    rows = "".join(
        f"{t},{y},1\n" for t, y in (("up", "positive"), ("down", "negative"), ("flat", "neutral")) * 4
    )
    for bad, problem in (("0.2", "'0.2' is not a number from 1/3 to 1"), ("most", "'most' is not a number")):
        data = tmp_path / "votes.csv"
        data.write_text("text,label,agree\nShares jump,positive,0.6\nRates held,neutral," + bad + "\n" + rows)
        result = run_aigc(
            *TRAIN, "--data", str(data), "--out", str(tmp_path / "m"), "--confidence-column", "agree"
        )
        assert_one_line_error(result, str(data), "row 2 (line 3)", "field 'agree'", problem)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["votes.csv"]
    result = run_aigc(
        *TRAIN, "--data", SAMPLE_TRAIN, "--out", str(tmp_path / "m"), "--confidence-column", "agree"
    )
    assert_one_line_error(result, SAMPLE_TRAIN, "agree")


def test_folder_where_a_file_belongs_is_named_as_such(tmp_path):
    result = run_aigc(
        "finance", "train", "--task", "sentiment", "--data", str(tmp_path), "--out", str(tmp_path / "m")
    )
    assert_one_line_error(result, str(tmp_path), "is a folder, not a file")
    config = tmp_path / "cfg"
    config.mkdir()
    result = run_aigc(*TRAIN, "--data", SAMPLE_TRAIN,
                      "--out", str(tmp_path / "m"), "--config", str(config))  # fmt: skip
    assert_one_line_error(result, str(config), "is a folder, not a file")


def test_yaml_error_is_one_line_with_line_and_column(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("train:\n  epochs: [1,\n  lr: x\n")
    result = run_aigc(*TRAIN, "--data", SAMPLE_TRAIN,
                      "--out", str(tmp_path / "m"), "--config", str(config))  # fmt: skip
    line = assert_one_line_error(result, str(config), "line 4, column 1", "not valid YAML")
    assert "<unicode string>" not in line


def test_train_refuses_to_write_into_a_knowledge_base(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    files = {
        "manifest.json": json.dumps({"format": "aigc-support-kb", "format_version": 1}),
        "entries.jsonl": '{"id": "a"}\n',
        "calibration.json": '{"handoff_threshold": 0.4}',
    }
    for name, text in files.items():
        (kb / name).write_text(text)
    result = run_aigc(*TRAIN, "--data", SAMPLE_TRAIN,
                      "--out", str(kb))  # fmt: skip
    assert_one_line_error(result, str(kb), "aigc-support-kb", "refusing")
    assert {p.name: p.read_text() for p in kb.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_publish_prints_a_stream_name_with_brackets_as_given(tmp_path):
    """The messages were published, then a MarkupError traceback: a caller retrying published twice."""
    from tests.bus_harness import drop, fresh_url

    url = fresh_url("redis") + "[/b]"
    news = tmp_path / "news.jsonl"
    news.write_text(
        "".join(
            json.dumps(
                {"id": f"m{i}", "timestamp": "2026-03-02T09:00:00Z", "source": "Wire", "title": f"T {i}"}
            )
            + "\n"
            for i in range(2)
        ),
        encoding="utf-8",
    )
    try:
        result = run_aigc("finance", "publish", str(news), "--to", url)
        assert result.code == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert f"published 2 messages to {url}" in result.stderr
    finally:
        drop(url)


@pytest.mark.parametrize(
    "args",
    [
        ("digest", "--alert", "99999999999999999999"),
        ("entities", "--days", "nan"),
        ("entities", "--days", "inf"),
        ("entities", "--limit", "-2"),
        ("entities", "relink", "--batch-size", "0"),
        ("deliveries", "--retry", "99999999999999999999"),
    ],
)
def test_numbers_no_database_or_date_holds_are_refused_by_the_option(args):
    result = run_aigc("finance", *args)
    assert result.code == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Invalid value" in result.stderr and "Overflow" not in result.stderr

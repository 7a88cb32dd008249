"""One-line errors of the recommender commands, and the artifact guard of `aigc recommend train`.

The property tests feed generated malformed tables (see :mod:`tests.malformed`) to every recommender
command that reads one: exit 2, one line naming the file, nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

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
    parquet_truncated,
)

SAMPLE = Path(__file__).resolve().parents[4] / "apps" / "recommender" / "sample_data"
ITEMS, INTERACTIONS = str(SAMPLE / "items.csv"), str(SAMPLE / "interactions.csv")
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
ITEM_COLUMNS = ("item_id", "title")


def tables(columns):
    return st.one_of(
        csv_missing_column(columns),
        csv_header_only(columns),
        csv_not_utf8(columns),
        empty_file(".csv"),
        parquet_truncated(["a", "b"]),
    )


@FEW
@given(bad=tables(INTERACTION_COLUMNS))
def test_train_rejects_malformed_interactions(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["recommend", "train", "--items", ITEMS, "--interactions", str(p),
                                        "--out", str(out / "model")], out,
    )  # fmt: skip


@FEW
@given(bad=tables(ITEM_COLUMNS))
def test_eval_rejects_malformed_items(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["recommend", "eval", "--items", str(p),
                                        "--interactions", INTERACTIONS, "--out", str(out / "r.json")], out,
    )  # fmt: skip


@FEW
@given(bad=tables(("user_id",)))
def test_score_rejects_malformed_users(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["recommend", "score", "--model", str(tmp_path / "no-model"),
                                        "--users", str(p), "--out", str(out / "recs.csv")], out,
    )  # fmt: skip


def test_header_only_interactions_are_refused_in_one_line(tmp_path):
    interactions = tmp_path / "interactions.csv"
    interactions.write_text("user_id,item_id,timestamp\n")
    result = run_aigc("recommend", "train", "--items", ITEMS, "--interactions", str(interactions),
                      "--out", str(tmp_path / "model"))  # fmt: skip
    line = assert_one_line_error(result, str(interactions), "no interactions")
    assert "ambiguous" not in line and not (tmp_path / "model").exists()


def test_train_refuses_to_replace_a_knowledge_base(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "manifest.json").write_text(json.dumps({"format": "aigc-support-kb", "format_version": 1}))
    (kb / "calibration.json").write_text("{}")
    result = run_aigc(
        "recommend", "train", "--items", ITEMS, "--interactions", INTERACTIONS, "--out", str(kb)
    )
    assert_one_line_error(result, str(kb), "aigc-support-kb", "refusing")
    assert sorted(p.name for p in kb.iterdir()) == ["calibration.json", "manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_a_file_where_the_movielens_folder_belongs_is_named_as_such(tmp_path):
    result = run_aigc("recommend", "train", "--movielens", ITEMS, "--out", str(tmp_path / "model"))
    assert_one_line_error(result, ITEMS, "is a file, not a folder")

"""One-line errors of the support commands that read files, and the KB guard of `aigc support index`.

The property tests feed generated malformed files (see :mod:`tests.malformed`) to every support
command that reads one: exit 2, one line naming the file (and the row of a bad JSON line), nothing
written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.embeddings import Embedder
from tests.cli_run import assert_one_line_error, run_aigc
from tests.malformed import (
    FEW,
    check_rejected,
    csv_header_only,
    csv_missing_column,
    csv_not_utf8,
    empty_file,
    jsonl_broken_line,
)

SAMPLE = Path(__file__).resolve().parents[3] / "apps" / "customer_service" / "sample_data"


@pytest.fixture(scope="module")
def tiny_kb(tmp_path_factory, tiny_encoder_dir) -> Path:
    """The sample FAQ indexed with the tiny random encoder (fast; retrieval quality is irrelevant here)."""
    from apps.customer_service.knowledge_base import KnowledgeBase

    kb_dir = tmp_path_factory.mktemp("tiny-kb") / "kb"
    sources = [SAMPLE / "faq.csv", SAMPLE / "policies"]
    KnowledgeBase.build(sources, kb_dir, embedder=Embedder(str(tiny_encoder_dir)))
    return kb_dir


def files(columns, jsonl: bool = True):
    strategies = [
        csv_missing_column(columns),
        csv_not_utf8(columns),
        csv_header_only(columns),
        empty_file(".csv"),
    ]
    if jsonl:
        strategies.append(jsonl_broken_line(columns))
    return st.one_of(*strategies)


@FEW
@given(bad=files(("question", "answer")))
def test_index_rejects_malformed_faq(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in", bad, lambda p: ["support", "index", str(p), "--kb-dir", str(out / "kb")], out
    )


@FEW
@given(bad=files(("question",), jsonl=False))
def test_ask_rejects_malformed_questions(tmp_path, bad, tiny_kb):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in",
        bad,
        lambda p: ["support", "ask", "--kb-dir", str(tiny_kb), "--questions", str(p)],
        out,
    )


@FEW
@given(bad=files(("text", "label"), jsonl=False))
def test_train_intents_rejects_malformed_data(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in",
        bad,
        lambda p: ["support", "train-intents", "--data", str(p), "--out", str(out / "m")],
        out,
    )


@FEW
@given(bad=files(("question", "answer")))
def test_finetune_rejects_malformed_pairs(tmp_path, bad):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in",
        bad,
        lambda p: ["support", "finetune", "--pairs", str(p), "--out", str(out / "a")],
        out,
    )


@FEW
@given(bad=files(("query", "gold_ids"), jsonl=False))
def test_eval_rejects_malformed_queries(tmp_path, bad, tiny_kb):
    out = tmp_path / "out"
    check_rejected(
        tmp_path / "in",
        bad,
        lambda p: ["support", "eval", "--kb-dir", str(tiny_kb), "--queries", str(p)],
        out,
    )


@FEW
@given(bad=files(("query",), jsonl=False), which=st.sampled_from(["--queries", "--out-of-scope"]))
def test_calibrate_rejects_malformed_queries(tmp_path, bad, which, tiny_kb):
    from apps.customer_service.confidence import CALIBRATION_FILE

    out = tmp_path / "out"
    other = {"--queries": str(SAMPLE / "queries.csv"), "--out-of-scope": str(SAMPLE / "out_of_scope.csv")}
    check_rejected(
        tmp_path / "in", bad,
        lambda p: ["support", "calibrate", "--kb-dir", str(tiny_kb), *(x for k, v in other.items()
                   for x in (k, str(p) if k == which else v))], out,
    )  # fmt: skip
    assert not (tiny_kb / CALIBRATION_FILE).exists()


# --- the guard and the cases of issue 12 ---------------------------------------------------------


def test_index_refuses_a_folder_that_is_no_kb_and_a_model_directory(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep")
    result = run_aigc("support", "index", str(SAMPLE / "faq.csv"), "--kb-dir", str(precious))
    assert_one_line_error(result, str(precious), "holds no aigc artifact")
    model = tmp_path / "model"
    model.mkdir()
    (model / "artifact.json").write_text(json.dumps({"kind": "aigc-recommender", "files": {}}))
    result = run_aigc("support", "index", str(SAMPLE / "faq.csv"), "--kb-dir", str(model))
    assert_one_line_error(result, str(model), "'aigc-recommender'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "precious"]


def test_three_utterances_are_refused_before_training(tmp_path):
    data = tmp_path / "three.csv"
    data.write_text("text,label\nhi,greet\nbye,leave\nhelp,support\n")
    result = run_aigc("support", "train-intents", "--data", str(data), "--out", str(tmp_path / "m"))
    assert_one_line_error(result, str(data), "validation split")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["three.csv"]


@pytest.mark.parametrize(
    ("command", "data_option", "data"),
    [
        ("train-intents", "--data", SAMPLE / "intents.csv"),
        ("finetune", "--pairs", SAMPLE / "faq.csv"),
    ],
)
def test_model_commands_refuse_to_write_into_a_knowledge_base(tmp_path, tiny_kb, command, data_option, data):
    import shutil

    kb = shutil.copytree(tiny_kb, tmp_path / "kb")
    before = {p.relative_to(kb): p.read_bytes() for p in kb.rglob("*") if p.is_file()}
    result = run_aigc("support", command, data_option, str(data), "--out", str(kb))
    assert_one_line_error(result, str(kb), "'aigc-support-kb'", "refusing")
    assert {p.relative_to(kb): p.read_bytes() for p in kb.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]


def test_index_names_the_judge_file_row_whose_id_is_not_an_entry(tmp_path):
    judge = tmp_path / "judge.csv"
    judge.write_text("query,gold_ids\nhow do I track my order,order-01\nwhere is my parcel,faq.csv#9\n")
    out = tmp_path / "out"
    result = run_aigc(
        "support", "index", str(SAMPLE / "faq.csv"), "--kb-dir", str(out / "kb"), "--adapt",
        "--judge-questions", str(judge),
    )  # fmt: skip
    assert_one_line_error(result, "judge.csv", "row 1", "'gold_ids'", "faq.csv#9")
    assert not out.exists()  # refused before anything was written
    result = run_aigc(
        "support",
        "index",
        str(SAMPLE / "faq.csv"),
        "--kb-dir",
        str(out / "kb"),
        "--judge-questions",
        str(judge),
    )
    assert_one_line_error(result, "--judge-questions", "--adapt")
    assert not out.exists()

import json

import pytest
from typer.testing import CliRunner

from apps.customer_service.errors import SourceError
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval_eval import evaluate_retrieval, read_queries, score_rankings
from core.cli import app

from .conftest import SAMPLE_DIR

runner = CliRunner()
METRICS = {"recall@1", "recall@3", "recall@5", "recall@10", "mrr@10"}


def test_score_rankings_averages_over_queries(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("query,gold_ids\nfirst,a\nsecond,b;z\n", encoding="utf-8")
    queries = read_queries(path)
    assert queries[1].gold_ids == ("b", "z")
    metrics = score_rankings([["a", "b"], ["c", "b"]], queries)
    assert metrics["recall@1"] == 0.5  # (1 + 0) / 2
    assert metrics["recall@3"] == 0.75  # (1 + 1/2) / 2
    assert metrics["hit@3"] == 1.0
    assert metrics["mrr@10"] == 0.75  # (1 + 1/2) / 2
    assert metrics["hit@1"] == 0.5


@pytest.mark.parametrize(
    "content,match",
    [
        ("question,gold_ids\nq,a\n", r"line 1, field 'query': missing column"),
        ("query,gold_ids\n ,a\n", r"row 0 \(line 2\), field 'query': is empty"),
        ("query,gold_ids\nq, ; \n", r"row 0 \(line 2\), field 'gold_ids': is empty"),
        ("query,gold_ids\n", r"holds no queries"),
    ],
)
def test_bad_query_files(tmp_path, content, match):
    path = tmp_path / "q.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match=match):
        read_queries(path)


def test_evaluate_sample_kb_with_minilm(sample_kb_dir, minilm):
    kb = KnowledgeBase.load(sample_kb_dir)
    results = evaluate_retrieval(kb, SAMPLE_DIR / "queries.csv", embedder=minilm)
    assert set(results) == {"bm25", "dense", "hybrid"}
    for metrics in results.values():
        assert set(metrics) >= METRICS and metrics["queries"] == 38
        assert metrics["recall@1"] <= metrics["recall@3"] <= metrics["recall@5"] <= metrics["recall@10"]
    # Paraphrased queries: dense beats BM25 clearly and hybrid is at least as good as dense.
    assert results["dense"]["mrr@10"] > results["bm25"]["mrr@10"] + 0.2
    assert results["hybrid"]["mrr@10"] >= results["dense"]["mrr@10"]
    assert results["hybrid"]["hit@5"] == 1.0


def test_gold_ids_must_exist_in_the_kb(sample_kb_dir, tmp_path, minilm):
    path = tmp_path / "q.csv"
    path.write_text("query,gold_ids\nreset password,acct-01;acct-99\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"row 0 \(line 2\), field 'gold_ids': id\(s\) \['acct-99'\]"):
        evaluate_retrieval(sample_kb_dir, path, embedder=minilm)


# ---------------------------------------------------------------------------------- CLI
def test_cli_index_then_eval_json(tmp_path, tiny_encoder_dir):
    kb_dir = tmp_path / "kb"
    past = tmp_path / "past.jsonl"
    past.write_text('{"question": "Is the sofa in stock?", "answer": "Back next week."}\n', encoding="utf-8")
    model = f"embedding_model={tiny_encoder_dir}"
    args = [
        "support",
        "index",
        str(SAMPLE_DIR / "faq.csv"),
        str(SAMPLE_DIR / "policies"),
        "--dialogues",
        str(past),
    ]
    result = runner.invoke(app, [*args, "--kb-dir", str(kb_dir), "--set", model, "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["counts"]["faq"] >= 40 and stats["counts"]["doc"] >= 4 and stats["counts"]["dialogue"] == 1
    assert KnowledgeBase.load(kb_dir).get("past.jsonl#0").kind == "dialogue"
    assert stats["last_build"]["added"] == stats["entries"]
    again = runner.invoke(app, [*args, "--kb-dir", str(kb_dir), "--set", model, "--no-progress"])
    assert again.exit_code == 0 and "unchanged" in again.output

    result = runner.invoke(
        app,
        ["support", "eval", "--kb-dir", str(kb_dir), "--queries", str(SAMPLE_DIR / "queries.csv"), "--json"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert set(metrics) == {"bm25", "dense", "hybrid"}
    assert all(set(m) >= METRICS for m in metrics.values())
    table = runner.invoke(
        app, ["support", "eval", "--kb-dir", str(kb_dir), "--queries", str(SAMPLE_DIR / "queries.csv")]
    )
    assert table.exit_code == 0 and "mrr@10" in table.output


def test_cli_errors_exit_non_zero_with_a_clear_message(tmp_path):
    bad = tmp_path / "faq.csv"
    bad.write_text("question,answer\nQ,\n", encoding="utf-8")
    result = runner.invoke(app, ["support", "index", str(bad), "--kb-dir", str(tmp_path / "kb")])
    assert result.exit_code != 0
    assert "row 0 (line 2), field 'answer': is empty" in str(result.exception)
    assert not (tmp_path / "kb").exists()
    missing = runner.invoke(
        app, ["support", "eval", "--kb-dir", str(tmp_path / "nokb"), "--queries", str(bad)]
    )
    assert missing.exit_code != 0 and "does not exist" in str(missing.exception)
    bad_set = runner.invoke(app, ["support", "eval", "--queries", str(bad), "--set", "fusion=magic"])
    assert bad_set.exit_code != 0 and "fusion" in str(bad_set.exception)

"""The ``aigc bench`` harness: alternation, ratios, result files, CLI, and a small real index run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from core.bench import harness, run_bench
from core.bench.index import clustered_vectors, measure, measure_isolated
from core.cli import app


def test_alternate_interleaves_and_keeps_outputs():
    calls: list[str] = []
    contestants = {"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}
    timings = harness.alternate(contestants, reps=3, warmup=1)
    # warm-up a b, then a b / b a / a b: both sides alternate who goes first.
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert len(timings.runs["a"]) == len(timings.runs["b"]) == 3
    assert timings.outputs == {"a": 1, "b": 2}
    assert timings.median("a") >= 0


def test_ratio_and_markdown():
    assert harness.ratio(3.0, 2.0) == 1.5
    assert harness.ratio(1.0, None) is None and harness.ratio(1.0, 0) is None
    table = harness.markdown_table(["x", "y"], [["a|b", 0.123456], ["c", 12345.6]])
    assert table.splitlines()[:2] == ["| x | y |", "|---|---|"]
    assert "a\\|b" in table and "0.123" in table and "12,346" in table


def test_write_results_is_atomic_json_and_md(tmp_path):
    path = harness.write_results("demo", {"ratio": 1.2}, "### demo\n", tmp_path)
    assert json.loads(path.read_text()) == {"ratio": 1.2}
    assert (tmp_path / "demo.md").read_text() == "### demo\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "demo.md"]


def test_missing_shared_data_is_reported_as_skipped(tmp_path, monkeypatch):
    # Imported first: core.bench.data binds harness.shared_data_dir at import time.
    import core.bench.embeddings as emb

    monkeypatch.setattr(harness, "shared_data_dir", _raise_skip)
    monkeypatch.setattr(emb, "mixed_sentences", lambda n: _raise_skip())
    result = run_bench("embeddings", reps=1, quick=True, out=tmp_path)
    assert "skipped" in result and "shared data" in result["skipped"]
    assert json.loads((tmp_path / "embeddings.json").read_text())["skipped"] == result["skipped"]


def _raise_skip(*_args):
    raise harness.BenchSkipped("shared data not found (test)")


def test_cli_rejects_unknown_benchmark():
    result = CliRunner().invoke(app, ["bench", "nonsense"])
    assert result.exit_code == 2
    with pytest.raises(ValueError, match="Unknown benchmark"):
        run_bench("nonsense")


def test_finetune_bench_checks_its_task_and_reads_real_sft_pairs(tmp_path):
    from core.bench import finetune

    result = CliRunner().invoke(app, ["bench", "finetune", "--task", "dpo"])
    assert result.exit_code == 2 and "--task must be classifier, sft or all" in result.output
    with pytest.raises(ValueError, match="task must be one of"):
        finetune.run(task="dpo", out=tmp_path)
    try:
        pairs = finetune._sft_pairs(16)
    except harness.BenchSkipped as skip:
        pytest.skip(str(skip))
    assert len(pairs) == 16 and all(q and 0 < len(a.split()) <= finetune.SFT_MAX_WORDS for q, a in pairs)


def test_clustered_vectors_are_unit_and_clustered():
    vectors = clustered_vectors(2000, clusters=10)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors[:200] @ vectors[:200].T
    assert (sims > 0.5).mean() > 0.05  # same-cluster pairs are close; random 384-d pairs are not


def test_index_measure_on_a_small_exact_index():
    row = measure(3000)
    assert row["kind"] == "flat" and row["recall_at_10"] == 1.0  # exact below flat_threshold
    assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"] and row["build_s"] >= 0


def test_index_measure_isolated_counts_the_index_memory():
    # 20k float vectors are 29 MiB; a fresh process cannot hide them in memory freed earlier.
    row = measure_isolated(20_000)
    assert row["kind"] == "flat" and row["recall_at_10"] == 1.0
    assert row["rss_added_mb"] >= 0.8 * row["vectors_mb"]


def test_embeddings_bench_quick_run_on_real_text(tmp_path):
    pytest.importorskip("sentence_transformers")
    from tests.conftest import require_shared_data

    require_shared_data("support", "stackfaq")
    result = run_bench("embeddings", reps=1, quick=True, out=tmp_path)
    assert not result["skipped"], result
    assert result["texts"] == 250
    rates = result["sentences_per_s"]
    assert set(rates) == {"project", "project_fp32", "sentence_transformers"}
    assert all(rate > 0 for rate in rates.values())
    # Quality is asserted, speed only reported: bf16 (where the CPU has it) within the 0.99 bound,
    # fp32 the same vectors as sentence-transformers.
    assert result["cosine_min"] >= 0.99
    assert result["fp32_cosine_min"] >= 0.9999
    assert result["ratio_vs_sentence_transformers"] == pytest.approx(
        rates["project"] / rates["sentence_transformers"], rel=0.01
    )
    assert "project Embedder (fp32)" in (tmp_path / "embeddings.md").read_text()


def test_save_figure_writes_atomically_and_closes_the_figure(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = harness.save_figure(fig, tmp_path / "plots" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["curve.png"]  # no temporary left
    assert not plt.fignum_exists(fig.number)
    fig, _ = plt.subplots()
    assert harness.save_plot(fig, "demo", tmp_path) == "demo.png" and (tmp_path / "demo.png").is_file()

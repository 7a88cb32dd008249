"""Batch scoring: determinism, seen-item exclusion, resume after a real SIGKILL, DB rows, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from apps.recommender import storage
from apps.recommender.batch.job import BatchError, read_users, run_batch
from apps.recommender.batch.scorers import HybridChunkScorer, parse_synthetic
from apps.recommender.batch.synthetic import SyntheticCatalogue
from apps.recommender.cli import app
from apps.recommender.config import BatchConfig
from apps.recommender.errors import DataError
from core.storage import create_engine

ROOT = Path(__file__).resolve().parents[4]
SPEC = "synthetic:items=5000,users=800,dim=32,history=20"
SMALL = SyntheticCatalogue(n_items=500, n_users=60, dim=16, history=10)


def test_synthetic_batch_is_deterministic_and_excludes_seen(tmp_path):
    first = run_batch(
        SMALL, tmp_path / "a.parquet", config=BatchConfig(k=20, chunk_size=16), show_progress_bar=False
    )
    run_batch(SMALL, tmp_path / "b.parquet", config=BatchConfig(k=20, chunk_size=16), show_progress_bar=False)
    run_batch(SMALL, tmp_path / "a.csv", config=BatchConfig(k=20, chunk_size=16), show_progress_bar=False)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert (first.n_users, first.n_rows, first.n_chunks) == (60, 60 * 20, 4)
    assert not (tmp_path / "a.parquet.work").exists()  # cleaned up after success
    frame = pd.read_parquet(tmp_path / "a.parquet")
    assert list(frame.columns) == ["user_id", "rank", "item_id", "score", "reason"]
    assert frame["user_id"].unique().tolist() == SMALL().user_ids()
    assert (frame.groupby("user_id")["rank"].apply(list) == [list(range(1, 21))] * 60).all()
    assert (frame.groupby("user_id")["score"].apply(lambda s: bool(np.all(np.diff(s) <= 0)))).all()
    scorer = SMALL()
    for user, group in frame.groupby("user_id"):
        seen = {scorer.item_ids[i] for i in scorer.history(user)}
        assert not seen & set(group["item_id"]), user
    csv = pd.read_csv(tmp_path / "a.csv", dtype={"user_id": str, "item_id": str})
    pd.testing.assert_frame_equal(csv, frame, check_dtype=False)


def test_hybrid_scorer_batch_on_sample(tmp_path, sample_dataset, sample_minilm_vectors):
    from apps.recommender.hybrid import HybridScorer

    scorer = HybridChunkScorer(HybridScorer(sample_minilm_vectors[0]).fit(sample_dataset))

    class Factory:  # the fitted model itself (ModelDir loads a saved one the same way)
        def __call__(self) -> HybridChunkScorer:
            return scorer

        def fingerprint(self) -> str:
            return "sample-hybrid"

    users = [*sample_dataset.user_ids[:30].tolist(), "nobody"]
    run_batch(Factory(), tmp_path / "a.csv", users, BatchConfig(k=10, chunk_size=7), show_progress_bar=False)
    run_batch(Factory(), tmp_path / "b.csv", users, BatchConfig(k=10, chunk_size=7), show_progress_bar=False)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    # Chunks scored one at a time and three at once on threads sharing the model: the same bytes.
    for workers in (1, 3):
        out = tmp_path / f"workers-{workers}.csv"
        config = BatchConfig(k=10, chunk_size=7, local_workers=workers)
        run_batch(Factory(), out, users, config, show_progress_bar=False)
        assert out.read_bytes() == (tmp_path / "a.csv").read_bytes(), workers
    frame = pd.read_csv(tmp_path / "a.csv", dtype=str, keep_default_na=False)
    assert frame["user_id"].unique().tolist() == users
    seen = sample_dataset.interactions.groupby("user_id")["item_id"].apply(set)
    for user, group in frame.groupby("user_id"):
        assert len(group) == 10
        assert not seen.get(user, set()) & set(group["item_id"]), user
    assert frame["reason"].str.contains("similar to '").mean() > 0.5  # reasons name a history item
    assert frame.loc[frame["user_id"] == "nobody", "reason"].str.len().gt(0).all()  # popularity fallback


def test_db_rows_are_exactly_one_run_after_rerun(tmp_path):
    url = f"sqlite:///{tmp_path / 'rec.db'}"
    config = BatchConfig(k=5, chunk_size=25)
    first = run_batch(SMALL, tmp_path / "a.parquet", config=config, db=url, show_progress_bar=False)
    again = run_batch(SMALL, tmp_path / "a.parquet", config=config, db=url, show_progress_bar=False)
    assert first.run_id == again.run_id and again.n_rows == 60 * 5
    engine = create_engine(url)
    rows = storage.recommendations(engine, first.run_id)
    expected = pd.read_parquet(tmp_path / "a.parquet").sort_values(["user_id", "rank"], ignore_index=True)
    pd.testing.assert_frame_equal(rows, expected, check_dtype=False)
    run = storage.runs(engine).iloc[0]
    assert (run["status"], run["k"], run["n_users"]) == ("done", 5, 60)


def test_work_dir_of_another_job_is_refused(tmp_path):
    out = tmp_path / "a.parquet"
    work = out.with_name("a.parquet.work")
    config = BatchConfig(k=5, chunk_size=25, keep_work_dir=True)
    run_batch(SMALL, out, config=config, show_progress_bar=False)
    assert (work / "manifest.json").is_file() and len(list(work.glob("chunk-*.parquet"))) == 3
    with pytest.raises(BatchError, match="another job.*k"):
        run_batch(SMALL, out, config=BatchConfig(k=6, chunk_size=25), show_progress_bar=False)
    # Thread count sets the summation order, so chunks scored with another one are not mixed in.
    with pytest.raises(BatchError, match=r"another job \(differs in threads\)"):
        run_batch(SMALL, out, config=BatchConfig(k=5, chunk_size=25, threads=None), show_progress_bar=False)
    with pytest.raises(ValueError, match="threads"):
        BatchConfig(threads=0)
    result = run_batch(
        SMALL, out, config=BatchConfig(k=6, chunk_size=25), restart=True, show_progress_bar=False
    )
    assert result.chunks_resumed == 0 and pd.read_parquet(out).groupby("user_id").size().eq(6).all()
    with pytest.raises(BatchError, match="unsupported output"):
        run_batch(SMALL, tmp_path / "a.json", show_progress_bar=False)


def test_read_users_formats_and_errors(tmp_path):
    (tmp_path / "u.txt").write_text("u000003\nu000001\nu000003\n\n")
    assert read_users(tmp_path / "u.txt") == ["u000003", "u000001"]
    (tmp_path / "u.csv").write_text("user_id,x\nu1,1\n,2\n")
    with pytest.raises(DataError, match=r"u.csv: row 2, field 'user_id': empty user id"):
        read_users(tmp_path / "u.csv")
    (tmp_path / "v.csv").write_text("id\nu1\n")
    with pytest.raises(DataError, match="no 'user_id' column"):
        read_users(tmp_path / "v.csv")
    assert parse_synthetic("synthetic:items=100,users=5") == SyntheticCatalogue(n_items=100, n_users=5)
    auto = parse_synthetic("synthetic:items=100,users=5,index=auto")
    assert auto == SyntheticCatalogue(n_items=100, n_users=5, index="auto")
    assert auto.fingerprint().endswith(":index=auto:recall=0.95") and ":index" not in SMALL.fingerprint()
    with pytest.raises(BatchError, match="bad synthetic"):
        parse_synthetic("synthetic:index=annoy")
    with pytest.raises(BatchError, match="bad synthetic"):
        parse_synthetic("synthetic:items=x")


def test_cli_bad_input_exits_2_without_output(tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.parquet"
    result = runner.invoke(app, ["score", "--out", str(out), "--model", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "no model directory" in result.output and not out.exists()
    result = runner.invoke(app, ["score", "--out", str(tmp_path / "r.xlsx"), "--model", "synthetic:items=50"])
    assert result.exit_code == 2 and "unsupported output type" in result.output
    result = runner.invoke(
        app,
        ["score", "--out", str(out), "--users", str(tmp_path / "none.csv"), "--model", "synthetic:items=50"],
    )
    assert result.exit_code == 2 and "none.csv" in result.output and not out.exists()
    result = runner.invoke(app, ["score", "--model", "synthetic:items=50"])
    assert result.exit_code == 2 and "nothing to write" in result.output


def _score_cmd(out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core.cli",
        "recommend",
        "score",
        "--model",
        SPEC,
        "--users",
        "all",
        "--k",
        "50",
        "--chunk-size",
        "8",
        "--out",
        str(out),
        "--no-progress",
    ]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed" / "recs.parquet"
    out.parent.mkdir()
    work = out.with_name("recs.parquet.work")
    proc = subprocess.Popen(
        _score_cmd(out), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while len(list(work.glob("chunk-*.parquet"))) < 3:
        assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
        assert time.monotonic() < deadline, "no chunk written within 120 s"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(work.glob("chunk-*.parquet")))
    assert proc.returncode == -signal.SIGKILL and not out.exists() and 3 <= done_before < 100

    resumed = subprocess.run(_score_cmd(out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"({done_before} of 100 chunks resumed)" in " ".join(resumed.stderr.split())
    clean = tmp_path / "recs.parquet"  # the same job uninterrupted, in this process
    run_batch(parse_synthetic(SPEC), clean, config=BatchConfig(k=50, chunk_size=8), show_progress_bar=False)
    assert out.read_bytes() == clean.read_bytes()
    assert not work.exists()
    frame = pd.read_parquet(out)
    assert len(frame) == 800 * 50 and not frame.duplicated(["user_id", "rank"]).any()


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_kill_during_assembly_then_rerun_gives_identical_output(tmp_path, suffix):
    """``score.during_assembly``: killed with a half-written output; the rerun re-assembles it exactly."""
    spec = "synthetic:items=2000,users=96,dim=16,history=10"
    out = tmp_path / "killed" / f"recs{suffix}"
    out.parent.mkdir()
    cmd = _score_cmd(out)
    cmd[cmd.index(SPEC)] = spec
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AIGC_FAILPOINT": "score.during_assembly@3"}
    killed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    leftovers = list(out.parent.glob(f".{out.name}.*.tmp"))
    assert not out.exists() and len(leftovers) == 1 and leftovers[0].stat().st_size > 0
    env.pop("AIGC_FAILPOINT")
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "(12 of 12 chunks resumed)" in " ".join(rerun.stderr.split())
    clean = tmp_path / f"clean{suffix}"
    run_batch(parse_synthetic(spec), clean, config=BatchConfig(k=50, chunk_size=8), show_progress_bar=False)
    assert out.read_bytes() == clean.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # no temp file, no work dir


def test_local_workers_must_not_be_negative():
    with pytest.raises(ValueError, match="local_workers"):
        BatchConfig(local_workers=-1)

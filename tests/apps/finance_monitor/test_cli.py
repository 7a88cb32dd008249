"""`aigc finance train / eval / classify / monitor`: outputs, JSON, clean errors with exit status 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from typer.testing import CliRunner

from apps.finance_monitor.cli import app
from apps.finance_monitor.datasets import load_labelled
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR
from tests.apps.finance_monitor.model_fixtures import TINY, copy_model

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


def tiny_sets(encoder) -> list[str]:
    torch.set_num_threads(1)  # see model_fixtures.tiny_config
    sets = [f"model={encoder}"] + [f"{k}={v}" for k, v in TINY.items()]
    return [part for s in sets for part in ("--set", s)]


def test_train_eval_json(tmp_path, tiny_encoder_dir):
    out = tmp_path / "topic"
    args = ["train", "--task", "topic", "--data", str(SAMPLE_DATA_DIR / "train_topic.csv"), "--out", str(out)]
    result = runner.invoke(app, args + tiny_sets(tiny_encoder_dir))
    assert result.exit_code == 0, result.output
    assert (out / "calibration.json").is_file() and (out / "config.json").is_file()
    result = runner.invoke(
        app, ["eval", "--model", str(out), "--data", str(SAMPLE_DATA_DIR / "train_topic.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"accuracy", "macro_f1", "weighted_f1", "per_class", "confusion"}
    assert sum(c["support"] for c in report["per_class"].values()) == 300


def test_train_with_a_label_confidence_column(tmp_path, tiny_encoder_dir):
    """Annotator agreement per row (``--confidence-column``) trains; the column reaches the loader."""
    frame = pd.read_csv(SAMPLE_DATA_DIR / "train_sentiment.csv")
    frame["agree"] = [0.6 if i % 4 == 0 else 1.0 for i in range(len(frame))]
    data = tmp_path / "votes.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "m"
    args = [
        "train",
        "--task",
        "sentiment",
        "--data",
        str(data),
        "--out",
        str(out),
        "--confidence-column",
        "agree",
    ]
    result = runner.invoke(app, args + tiny_sets(tiny_encoder_dir))
    assert result.exit_code == 0, result.output
    assert (out / "calibration.json").is_file()
    loaded = load_labelled(data, confidence_column="agree", labels=["negative", "neutral", "positive"])
    assert loaded.confidence == frame["agree"].tolist()


def test_train_an_ensemble_refitted_and_score_with_it(tmp_path, tiny_encoder_dir):
    """``--ensemble-seeds`` and ``--refit``: a model per seed on every row; eval and classify use them all."""
    out = tmp_path / "m"
    args = ["train", "--task", "sentiment", "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv")]
    args += ["--out", str(out), "--ensemble-seeds", "3,4", "--refit"]
    result = runner.invoke(app, args + tiny_sets(tiny_encoder_dir))
    assert result.exit_code == 0, result.output
    assert "ensemble of 2 refitted" in result.output
    manifest = json.loads((out / "ensemble.json").read_text())
    assert [m["path"] for m in manifest["members"]] == ["members/s3", "members/s4"] and manifest["refit"]
    result = runner.invoke(
        app, ["eval", "--model", str(out), "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert sum(c["support"] for c in json.loads(result.stdout)["per_class"].values()) == 360
    labelled = tmp_path / "labelled.csv"
    src = tmp_path / "in.csv"
    src.write_text("text\nShares fall after warning\nProfit beats forecasts\n")
    result = runner.invoke(
        app, ["classify", "--model", str(out), "--input", str(src), "--out", str(labelled)]
    )
    assert result.exit_code == 0, result.output
    assert pd.read_csv(labelled)["sentiment_confidence"].between(1 / 3, 1).all()

    for bad, message in (("3,x", "comma-separated whole numbers"), ("3,3", "repeats a seed")):
        args[-2] = bad
        result = runner.invoke(app, args + tiny_sets(tiny_encoder_dir))
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_killed_ensemble_training_resumes_from_the_command_line(tmp_path, tiny_encoder_dir):
    """SIGKILL-like exit in the second member's first epoch; ``--resume`` keeps the first member."""
    out = tmp_path / "m"
    args = ["finance", "train", "--task", "sentiment", "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv")]
    args += ["--out", str(out), "--ensemble-seeds", "3,4", *tiny_sets(tiny_encoder_dir)]
    env = {**os.environ, "AIGC_FAILPOINT": "train.after_checkpoint@3", "PYTHONPATH": str(ROOT)}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", COLUMNS="60")
    cmd = [sys.executable, "-c", "from core.cli import main; main()", *args]
    killed = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert not out.exists()
    (build,) = tmp_path.glob(".m.tmp-*")
    stamp = (build / "members" / "s3" / "heads.safetensors").stat().st_mtime_ns
    assert (build / "members" / "s4" / "checkpoint").is_dir() and not (
        build / "members" / "s4" / "artifact.json"
    ).exists()
    result = runner.invoke(app, [*args[1:], "--resume"])
    assert result.exit_code == 0, result.output
    assert (out / "members" / "s3" / "heads.safetensors").stat().st_mtime_ns == stamp  # not retrained
    resumed = json.loads((out / "members" / "s4" / "report.json").read_text())
    assert resumed["resumed"] and [row["epoch"] for row in resumed["history"]] == [1, 2]
    assert json.loads((out / "ensemble.json").read_text())["seeds"] == [3, 4]
    assert not list(tmp_path.glob(".m.tmp-*"))


def test_classify_writes_labels_and_confidences(tmp_path, tiny_sentiment_dir):
    src = tmp_path / "in.csv"
    # CRLF records with a newline inside a quoted field, as in the twitter data
    src.write_bytes(
        b'id,text\r\n1,"Shares fall\nafter warning"\r\n2,Profit beats forecasts\r\n'
        b'3,"=HYPERLINK(""http://x.example"",""AGM on Friday"")"\r\n'
    )
    out = tmp_path / "out" / "labelled.csv"
    result = runner.invoke(
        app, ["classify", "--model", str(tiny_sentiment_dir), "--input", str(src), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "text", "sentiment", "sentiment_confidence"]
    assert frame["text"][0] == "Shares fall\nafter warning"
    assert set(frame["sentiment"]) <= {"negative", "neutral", "positive"}
    assert frame["sentiment_confidence"].between(1 / 3, 1).all()
    formula = '=HYPERLINK("http://x.example","AGM on Friday")'
    assert frame["text"][2] == "'" + formula  # a spreadsheet shows it as text, never runs it
    jsonl = tmp_path / "labelled.jsonl"
    result = runner.invoke(
        app, ["classify", "--model", str(tiny_sentiment_dir), "--input", str(src), "--out", str(jsonl)]
    )
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert result.exit_code == 0 and len(rows) == 3 and rows[2]["text"] == formula  # exact text


def test_bad_inputs_exit_2_with_one_clear_line(tmp_path, tiny_sentiment_dir):
    empty_text = tmp_path / "in.csv"
    empty_text.write_text("text,id\nfine headline,1\n   ,2\n")
    out = tmp_path / "out.csv"
    result = runner.invoke(
        app, ["classify", "--model", str(tiny_sentiment_dir), "--input", str(empty_text), "--out", str(out)]
    )
    assert result.exit_code == 2 and "row 2" in result.output and "'text'" in result.output
    assert not out.exists() and "Traceback" not in result.output

    broken = copy_model(tiny_sentiment_dir, tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    result = runner.invoke(
        app, ["eval", "--model", str(broken), "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv")]
    )
    assert result.exit_code == 2 and "config.json" in result.output

    no_label = tmp_path / "nolabel.csv"
    no_label.write_text("text,sentiment\nShares rise,positive\n")
    result = runner.invoke(
        app, ["train", "--task", "sentiment", "--data", str(no_label), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and "nolabel.csv" in result.output and "label" in result.output
    assert not (tmp_path / "m").exists()

    result = runner.invoke(
        app, ["train", "--task", "mood", "--data", str(no_label), "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2 and "mood" in result.output


def test_monitor_once_over_a_folder(tmp_path, tiny_sentiment_dir, tiny_topic_dir, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(SAMPLE_DATA_DIR / "news_stream.jsonl", inbox)
    os.utime(inbox / "news_stream.jsonl", (time.time() - 60, time.time() - 60))
    args = ["monitor", "--once", "--watch-dir", str(inbox), "--set", f"sentiment_model={tiny_sentiment_dir}"]
    args += ["--set", f"topic_model={tiny_topic_dir}"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "100 new items, 100 scored" in result.output
    result = runner.invoke(app, args)
    assert "0 new items, 0 scored" in result.output
    assert (
        runner.invoke(app, ["monitor", "--watch-dir", str(inbox)]).exit_code == 2
    )  # neither --once nor --follow


def test_follow_subprocess_picks_up_a_file_and_stops_cleanly_on_sigterm(tmp_path, tiny_sentiment_dir):
    inbox, data = tmp_path / "inbox", tmp_path / "data"
    inbox.mkdir()
    env = {
        **os.environ,
        "AIGC_DATA_DIR": str(data),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
    }
    env.pop("AIGC_DB_URL", None)
    cmd = [sys.executable, "-c", "from core.cli import main; main()", "finance", "monitor", "--follow"]
    cmd += ["--watch-dir", str(inbox), "--set", f"sentiment_model={tiny_sentiment_dir}"]
    cmd += ["--set", "poll_interval_s=0.2", "--set", "min_file_age_s=0"]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        db = data / "aigc.db"
        deadline = time.monotonic() + 120
        while not db.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        shutil.copy(SAMPLE_DATA_DIR / "news_stream.jsonl", inbox)  # arrives while the monitor runs

        def scored() -> int:
            try:
                with sqlite3.connect(db) as conn:
                    return conn.execute("select count(*) from finance_scores").fetchone()[0]
            except sqlite3.Error:
                return 0

        while scored() < 100 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert scored() == 100
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output and "Traceback" not in output
    with sqlite3.connect(data / "aigc.db") as conn:
        assert conn.execute("select count(*) from finance_items").fetchone()[0] == 100


def test_monitor_refuses_a_loopback_webhook_unless_allow_listed(tmp_path, tiny_sentiment_dir, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    args = ["monitor", "--once", "--watch-dir", str(inbox), "--set", f"sentiment_model={tiny_sentiment_dir}"]
    monkeypatch.setenv("AIGC_FINANCE_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=SECRET77")
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "loopback" in result.output and "token=***" in result.output
    assert "SECRET77" not in result.output and len(result.output.strip().splitlines()) == 1
    rules = tmp_path / "rules.yaml"
    rules.write_text((SAMPLE_DATA_DIR / "alert_rules.yaml").read_text() + "webhooks:\n  allow: [127.0.0.1]\n")
    result = runner.invoke(app, [*args, "--set", f"rules={rules}"])
    assert result.exit_code == 0, result.output
    assert "deliveries: 0 sent, 0 pending, 0 dead" in result.output


def test_train_a_student_distilled_from_a_teacher(tmp_path, tiny_encoder_dir, tiny_sentiment_dir):
    """``--teacher DIR``: trains towards the teacher's probabilities; a bad teacher is one line, exit 2."""
    out = tmp_path / "student"
    args = ["train", "--task", "sentiment", "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv")]
    args += ["--out", str(out), "--teacher", str(tiny_sentiment_dir), *tiny_sets(tiny_encoder_dir)]
    result = runner.invoke(app, [*args, "--set", "distill_weight=0.8"])
    assert result.exit_code == 0, result.output
    assert "distilled from sentiment-" in result.output
    meta = json.loads((out / "finance.json").read_text())
    assert meta["teacher"]["dir"] == str(tiny_sentiment_dir) and meta["teacher"]["distill_weight"] == 0.8
    args[args.index("--teacher") + 1] = str(tmp_path / "missing")
    args[args.index("--out") + 1] = str(tmp_path / "other")
    result = runner.invoke(app, args)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "not a trained finance model directory" in errors[0] and not (tmp_path / "other").exists()


def test_train_a_student_on_a_transfer_set(tmp_path, tiny_encoder_dir, tiny_sentiment_dir):
    """``--transfer FILE`` (here one text per line): unlabelled texts the teacher labels; without
    ``--teacher``, or with a missing file, one line, exit 2."""
    transfer = tmp_path / "headlines.txt"
    transfer.write_text("Shares of Acme jump after upbeat outlook\n\nLender cuts jobs as profit falls\n")
    out = tmp_path / "student"
    args = ["train", "--task", "sentiment", "--data", str(SAMPLE_DATA_DIR / "train_sentiment.csv")]
    args += ["--out", str(out), "--transfer", str(transfer), *tiny_sets(tiny_encoder_dir)]
    result = runner.invoke(app, [*args, "--teacher", str(tiny_sentiment_dir)])
    assert result.exit_code == 0, result.output
    assert "(+2 transfer texts)" in result.output
    assert json.loads((out / "finance.json").read_text())["teacher"]["transfer"]["rows"] == 2
    args[args.index("--out") + 1] = str(tmp_path / "other")
    result = runner.invoke(app, args)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "transfer needs a teacher" in errors[0] and not (tmp_path / "other").exists()
    args[args.index("--transfer") + 1] = str(tmp_path / "missing.csv")
    result = runner.invoke(app, [*args, "--teacher", str(tiny_sentiment_dir)])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "missing.csv" in errors[0] and not (tmp_path / "other").exists()

"""One encoder with two heads vs two models, on the shipped sample data.

Both set-ups train MiniLM + LoRA with the demo settings (``apps.finance_monitor.demo.DEMO_TRAINING``)
on ``train_sentiment.csv`` and ``train_topic.csv``; they are compared on the 506 headlines of the
sample stream, whose true labels are in ``news_truth.csv`` (other company names than the training
files): sentiment weighted F1, topic accuracy, and scoring throughput (items/s) of the monitor's
:class:`~apps.finance_monitor.scoring.Scorer`.

Run: ``.venv/bin/python -m bench.finance_heads [--separate DIR] [--threads 1]`` where ``DIR`` holds
``sentiment/`` and ``topic/`` models already trained with the demo settings (``aigc prepare-demo``
leaves them in ``$AIGC_DATA_DIR/finance/models``); without it they are trained here.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from pathlib import Path

from bench.finance_common import RESULTS, RUNS


def main() -> None:
    """Train what is missing, score the sample stream with both set-ups, write finance_heads.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--separate", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("FINANCE_BENCH_THREADS", "2")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(args.threads)
    from apps.finance_monitor.classifiers import train, train_multitask
    from apps.finance_monitor.datasets import load_labelled
    from apps.finance_monitor.demo import DEMO_TRAINING, TRAIN_FILES
    from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
    from apps.finance_monitor.scoring import Scorer
    from apps.finance_monitor.sources import read_news
    from core.metrics import classification_report

    timings: dict[str, float | None] = {}
    separate = args.separate or RUNS / "heads-separate"
    for task, name in TRAIN_FILES.items():
        if not (separate / task / "config.json").is_file():
            tick = time.perf_counter()
            train(task, SAMPLE_DATA_DIR / name, separate / task, config=DEMO_TRAINING)
            timings[f"train_{task}_s"] = round(time.perf_counter() - tick, 1)
    joint = RUNS / "heads-joint"
    if not (joint / "config.json").is_file():
        data = {task: load_labelled(SAMPLE_DATA_DIR / name) for task, name in TRAIN_FILES.items()}
        tick = time.perf_counter()
        train_multitask(data, joint, config=DEMO_TRAINING)
        timings["train_joint_s"] = round(time.perf_counter() - tick, 1)
    with (SAMPLE_DATA_DIR / "news_truth.csv").open(newline="", encoding="utf-8") as fh:
        truth = {row["id"]: row for row in csv.DictReader(fh)}
    items = [item for name in STREAM_FILES for item in read_news(SAMPLE_DATA_DIR / name)]
    titles = [item.title for item in items]
    test = "sample stream, 506 headlines, news_truth.csv labels"
    results = {"test": test, "timings": timings, "setups": {}}
    for setup, scorer in (
        ("two models", Scorer.from_dirs(separate / "sentiment", separate / "topic")),
        ("one encoder, two heads", Scorer.from_dirs(joint)),
    ):
        tick = time.perf_counter()
        labels = scorer.label(titles)
        seconds = time.perf_counter() - tick
        gold = [truth[i.id]["sentiment"] for i in items]
        sentiment = classification_report(gold, [x.sentiment for x in labels])
        topic = classification_report([truth[i.id]["topic"] for i in items], [x.topic for x in labels])
        results["setups"][setup] = {
            "sentiment_weighted_f1": sentiment["weighted_f1"],
            "sentiment_accuracy": sentiment["accuracy"],
            "topic_accuracy": topic["accuracy"],
            "topic_macro_f1": topic["macro_f1"],
            "score_items_per_s": round(len(titles) / seconds, 1),
        }
        print(setup, json.dumps(results["setups"][setup]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "finance_heads.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

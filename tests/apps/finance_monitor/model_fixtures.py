"""Tiny trained finance models (random 2-layer encoder) shared by the model, scoring and CLI tests.

Import the fixtures into a test module with ``from tests.apps.finance_monitor.model_fixtures import *``
style names (``tiny_sentiment_dir``, ``tiny_topic_dir``); each is trained once per session.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from apps.finance_monitor.classifiers import train, train_multitask
from apps.finance_monitor.config import FinanceTrainConfig
from apps.finance_monitor.datasets import load_labelled
from apps.finance_monitor.sample_data import SAMPLE_DATA_DIR, STREAM_FILES
from apps.finance_monitor.scoring import Label, Scorer
from apps.finance_monitor.sources import read_news

TINY = {"epochs": 2, "batch_size": 16, "max_length": 32, "show_progress_bar": False, "lr": 5e-3}


def tiny_config(encoder: Path) -> FinanceTrainConfig:
    """Quick training settings on the tiny encoder."""
    # One thread: on a busy 2-core machine a second (spinning) thread makes small models several
    # times slower, and a hidden-32 encoder gains nothing from it.
    torch.set_num_threads(1)
    return FinanceTrainConfig(model=str(encoder), **TINY)


@pytest.fixture(scope="session")
def tiny_sentiment_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A sentiment model trained on the shipped training file with the tiny encoder."""
    out = tmp_path_factory.mktemp("fin-models") / "sentiment"
    train("sentiment", SAMPLE_DATA_DIR / "train_sentiment.csv", out, config=tiny_config(tiny_encoder_dir))
    return out


@pytest.fixture(scope="session")
def tiny_topic_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """A topic model trained on the shipped training file with the tiny encoder."""
    out = tmp_path_factory.mktemp("fin-models") / "topic"
    train("topic", SAMPLE_DATA_DIR / "train_topic.csv", out, config=tiny_config(tiny_encoder_dir))
    return out


@pytest.fixture(scope="session")
def tiny_joint_dir(tiny_encoder_dir, tmp_path_factory) -> Path:
    """One tiny encoder with sentiment and topic heads, trained on both shipped files."""
    out = tmp_path_factory.mktemp("fin-models") / "news"
    data = {task: load_labelled(SAMPLE_DATA_DIR / f"train_{task}.csv") for task in ("sentiment", "topic")}
    train_multitask(data, out, config=tiny_config(tiny_encoder_dir))
    return out


def copy_model(src: Path, dst: Path) -> Path:
    """A copy of a model directory (tests that change or break a model work on a copy)."""
    shutil.copytree(src, dst)
    return dst


class TruthScorer(Scorer):
    """Labels the sample stream's headlines with the labels they were written with.

    The real model path is covered elsewhere; alert tests need labels known in advance so the
    built-in incident must fire. Everything but ``label`` is the real :class:`Scorer`.
    """

    def __init__(self, sentiment_model, version: str = "truth-v1") -> None:
        super().__init__(sentiment_model, None, version)
        with (SAMPLE_DATA_DIR / "news_truth.csv").open(newline="", encoding="utf-8") as fh:
            truth = {row["id"]: row for row in csv.DictReader(fh)}
        self.by_title = {}
        for name in STREAM_FILES:
            for item in read_news(SAMPLE_DATA_DIR / name):
                self.by_title[item.title] = truth[item.id]

    def label(self, texts, batch_size=64):
        out = []
        for text in texts:
            row = self.by_title[text]
            p = {"sentiment": {row["sentiment"]: 1.0}, "topic": {row["topic"]: 1.0}}
            out.append(Label(row["sentiment"], 1.0, row["topic"], 1.0, p))
        return out


class ConstantScorer(Scorer):
    """Labels every text neutral, with no model: for tests about what is stored and scored, not how.

    Only ``label`` (and ``label_titles`` over it) is used by scoring and the bus consumer; nothing is
    trained or loaded.
    """

    def __init__(self, version: str = "constant-v1") -> None:  # no super(): there is no model
        self.sentiment_model = self.topic_model = None
        self.sentiment_head, self.topic_head = "sentiment", None
        self.version = version

    def label(self, texts, batch_size=64):
        return [Label("neutral", 1.0, None, None, {"sentiment": {"neutral": 1.0}}) for _ in texts]

"""Real text for the benchmarks, read from ``../shared/data`` (never copied into the project)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.harness import BenchSkipped, shared_data_dir


def stackfaq(data: Path | None = None) -> list[dict[str, Any]]:
    """StackFAQ threads: dicts with ``rephr`` (paraphrases), ``question`` and ``answer``."""
    path = (data or shared_data_dir()) / "support" / "stackfaq" / "stackExchange-FAQ.json"
    if not path.is_file():
        raise BenchSkipped(f"{path} not found")
    raw = json.loads(path.read_text(encoding="utf-8"))
    return list(raw["root"]["qapair"])


def as_list(value: Any) -> list[str]:
    """A field that is a string, a list of strings or missing, as a list of strings."""
    if value is None:
        return []
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def phrasebank(data: Path | None = None, agree: str = "50Agree") -> tuple[list[str], list[str]]:
    """Financial PhraseBank sentences and labels (Latin-1, ``sentence@label``)."""
    path = (data or shared_data_dir()) / "finance" / "financial_phrasebank" / f"Sentences_{agree}.txt"
    if not path.is_file():
        raise BenchSkipped(f"{path} not found")
    texts, labels = [], []
    for line in path.read_text(encoding="latin-1").splitlines():
        if "@" in line:
            text, label = line.rsplit("@", 1)
            texts.append(text.strip())
            labels.append(label.strip())
    return texts, labels


def _csv_column(path: Path, column: str) -> list[str]:
    if not path.is_file():
        raise BenchSkipped(f"{path} not found")
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def mixed_sentences(n: int = 10_000, seed: int = 0) -> list[str]:
    """``n`` real texts of mixed length: support answers, finance news sentences, banking queries, tweets."""
    data = shared_data_dir()
    texts = [a for item in stackfaq(data) for a in as_list(item.get("answer"))]
    texts += phrasebank(data)[0]
    texts += _csv_column(data / "support" / "banking77" / "train.csv", "text")
    texts += _csv_column(data / "finance" / "twitter_financial_news_sentiment" / "sent_train.csv", "text")
    texts = [t for t in texts if t.strip()]
    if len(texts) < n:
        raise BenchSkipped(f"only {len(texts)} texts available, {n} requested")
    order = np.random.default_rng(seed).permutation(len(texts))[:n]
    return [texts[i] for i in order]

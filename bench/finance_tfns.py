"""twitter-financial-news-sentiment: train on sent_train.csv minus a stratified 20 % split carved
from it (seed 42); weighted F1 on that split (target 0.88).

Run: ``.venv/bin/python -m bench.finance_tfns [--threads 1]``.
"""

from __future__ import annotations

from bench.finance_common import DATA, run


def load():
    """sent_train.csv with the TFNS label map; stratified 80/20 split, seed 42."""
    from apps.finance_monitor.datasets import load_labelled
    from core.finetune import split_indices

    data = load_labelled(DATA / "twitter_financial_news_sentiment" / "sent_train.csv", label_map="tfns")
    train_idx, test_idx = split_indices(len(data), 0.2, 42, strata=data.labels)

    protocol = {
        "file": "sent_train.csv",
        "rows": len(data),
        "label_map": "0=negative (Bearish), 1=positive (Bullish), 2=neutral",
        "split": "core.finetune.split_indices(n, 0.2, seed=42, strata=label)",
    }
    return data.subset(train_idx), data.subset(test_idx), protocol


if __name__ == "__main__":
    run("tfns", __doc__, load, ("weighted_f1", 0.88))

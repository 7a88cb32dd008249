"""twitter-financial-news-topic: train on train.parquet, accuracy on validation.parquet (target 0.90).

Run: ``.venv/bin/python -m bench.finance_topic [--threads 1]``.
"""

from __future__ import annotations

from bench.finance_common import DATA, run


def load():
    """train.parquet / validation.parquet with classes.txt as the label map (20 topics)."""
    from apps.finance_monitor.datasets import load_labelled

    folder = DATA / "twitter_financial_news_topic"
    classes = folder / "classes.txt"
    train = load_labelled(folder / "train.parquet", label_map=classes)
    test = load_labelled(folder / "validation.parquet", label_map=classes)
    protocol = {
        "train": "train.parquet",
        "test": "validation.parquet",
        "train_rows": len(train),
        "classes": 20,
    }
    return train, test, protocol


if __name__ == "__main__":
    run("topic", __doc__, load, ("accuracy", 0.90))

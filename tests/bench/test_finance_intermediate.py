"""The intermediate-task bench's data: TFNS rows minus every PhraseBank benchmark text."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.finance_common import DATA
from bench.finance_intermediate import validation_row, write_intermediate


def test_the_intermediate_set_leaves_out_the_benchmarks_texts(tmp_path):
    source = DATA / "twitter_financial_news_sentiment" / "sent_train.csv"
    if not source.is_file():
        pytest.skip(f"{source} is absent (the shared data sets are not beside the checkout)")
    tfns = pd.read_csv(source)
    # two TFNS texts stand in for benchmark texts: one in the training part, one (spaced out) in test
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame({"text": [tfns.text[0], "an unrelated sentence"], "label": ["neutral"] * 2}).to_csv(train)
    pd.DataFrame({"text": ["  " + tfns.text[1].replace(" ", "  ")], "label": ["neutral"]}).to_csv(test)
    path, info = write_intermediate(tmp_path, train, test)
    kept = pd.read_csv(path)
    assert info["dropped_as_phrasebank_text"] == 2 and len(kept) == info["rows"] == len(tfns) - 2
    assert tfns.text[0] not in set(kept.text) and tfns.text[1] not in set(kept.text)
    assert set(kept.label) == {"negative", "neutral", "positive"}


def test_a_runs_validation_row_keeps_its_epochs():
    history = [
        {"epoch": 1, "val_macro_f1": 0.87071, "val_loss": 0.37662, "train_loss": 0.9},
        {"epoch": 2, "val_macro_f1": 0.87703, "val_loss": 0.36701, "train_loss": 0.8},
    ]
    report = {"best_metric": 0.87703, "best_epoch": 2, "wall_time_s": 720.15, "history": history}
    row = validation_row(report)
    assert (row["val_macro_f1"], row["best_epoch"], row["train_wall_s"]) == (0.877, 2, 720.1)
    assert row["epochs"][1] == {"epoch": 2, "val_macro_f1": 0.877, "val_loss": 0.367}

"""Contrastive training as a task of the shared loop: the loss by hand, a real run, resume = uninterrupted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from core.embeddings import Embedder
from core.finetune.contrastive import (
    ADAPTER_WEIGHTS,
    ContrastivePairs,
    ContrastiveTrainConfig,
    info_nce,
    train_contrastive,
)
from core.lora import LoraSettings

WORDS = {
    "sea": ["sailing boats", "ocean waves", "harbour lights", "coral reefs", "lighthouses", "tides"],
    "space": ["rocket launch", "moon landing", "space stations", "galaxies", "mars rovers", "comets"],
}


def test_info_nce_by_hand_duplicate_mask_and_log_q():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    c = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    items = torch.tensor([0, 1])
    loss = info_nce(q, c, items, items, temperature=1.0)
    expected = (-np.log(np.e / (np.e + np.exp(0.6))) - np.log(np.exp(0.8) / (1 + np.exp(0.8)))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # The same item twice in a batch is not its own negative: the loss is the one-item loss (0).
    same = torch.tensor([3, 3])
    assert float(info_nce(q[:1].repeat(2, 1), c[:1].repeat(2, 1), same, same, 1.0)) == pytest.approx(
        0, abs=1e-6
    )
    # log Q: a column's logit is lowered by its log sampling probability.
    log_q = torch.tensor([0.0, 0.6])
    corrected = info_nce(q, c, items, items, 1.0, log_q)
    row0 = -np.log(np.e / (np.e + np.exp(0.6 - 0.6)))
    row1 = -np.log(np.exp(0.8 - 0.6) / (np.exp(0.0) + np.exp(0.8 - 0.6)))
    assert float(corrected) == pytest.approx((row0 + row1) / 2, rel=1e-5)
    # A hard-negative column (item 2) enters every row's softmax.
    hard = info_nce(q, torch.cat([c, torch.tensor([[0.0, 1.0]])]), items, torch.tensor([0, 1, 2]), 1.0)
    assert float(hard) > float(loss)


def _pairs() -> ContrastivePairs:
    texts = [f"A book about {w}" for words in WORDS.values() for w in words]
    rng = np.random.default_rng(0)
    queries, items, negatives = [], [], []
    for i in range(96):
        topic = i % 2
        a, b = rng.choice(6, size=2, replace=False)
        queries.append(texts[6 * topic + a])
        items.append(6 * topic + b)
        negatives.append([6 * (1 - topic) + int(rng.integers(6))])
    items = np.asarray(items)
    log_q = np.log(np.bincount(items, minlength=12).clip(0.5) / len(items)).astype(np.float32)
    return ContrastivePairs(queries, items, texts, np.asarray(negatives), log_q)


def _config(**changes) -> ContrastiveTrainConfig:
    base = {
        "epochs": 3,
        "batch_size": 8,
        "lr": 2e-2,
        "patience": 0,
        "max_query_length": 16,
        "max_item_length": 16,
        "lora": LoraSettings(r=4, alpha=8, dropout=0.0),
        "precision": "fp32",
    }
    return ContrastiveTrainConfig(**{**base, **changes})


def _catalogue_loss(embedder: Embedder, pairs: ContrastivePairs) -> float:
    """Cross entropy of each query's positive against the whole catalogue (lower: better ranked)."""
    scores = torch.as_tensor(embedder.encode(pairs.queries) @ embedder.encode(list(pairs.item_texts)).T)
    return float(torch.nn.functional.cross_entropy(scores / 0.05, torch.as_tensor(pairs.items)))


def test_training_ranks_topic_items_higher_and_resume_matches(tiny_encoder_dir, tmp_path):
    pairs = _pairs()
    base = str(tiny_encoder_dir)
    full = train_contrastive(pairs, tmp_path / "full", base, _config())
    report = json.loads((tmp_path / "full" / "run" / "report.json").read_text())
    assert report["epochs_run"] == 3 and report["metric"] == "mrr" and report["val_size"] == 10
    losses = [row["train_loss"] for row in report["history"]]
    mrr = [row["val_mrr"] for row in report["history"]]
    assert losses[-1] < losses[0] and mrr[-1] > mrr[0]
    assert _catalogue_loss(full.embedder, pairs) < _catalogue_loss(Embedder(base, max_length=16), pairs)

    # Interrupted after two epochs, then resumed: the same adapter as three uninterrupted epochs.
    class Interrupted(Exception):
        pass

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_contrastive(pairs, tmp_path / "part", base, _config(), on_epoch_end=interrupt)
    resumed = train_contrastive(pairs, tmp_path / "part", base, _config(), resume_from=True)
    assert resumed.report["resumed"] and resumed.report["epochs_run"] == 3
    a = load_file(str(tmp_path / "full" / ADAPTER_WEIGHTS))
    b = load_file(str(tmp_path / "part" / ADAPTER_WEIGHTS))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6)


def test_config_checks_and_too_few_pairs(tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="batch_size"):
        ContrastiveTrainConfig(batch_size=1)
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveTrainConfig(temperature=0)
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_contrastive(_pairs(), tmp_path / "x", str(tiny_encoder_dir), _config(batch_size=200))


def test_items_of_one_group_are_not_each_others_negatives(tiny_encoder_dir):
    from core import models
    from core.finetune.contrastive import contrastive_task
    from core.lora import apply_lora

    base = str(tiny_encoder_dir)
    encoder, tokenizer = models.load_encoder(base, fresh=True)
    texts = ["refunds take five days", "refunds are paid by card", "we ship to France", "ships leave daily"]
    queries = ["when is my refund paid", "how do refunds work", "do you ship to Paris", "when do ships go"]
    config = _config(val_fraction=0.0)
    grouped = ContrastivePairs(queries, np.arange(4), texts, item_groups=np.asarray([7, 7, 9, 9]))
    model = apply_lora(encoder, config.lora)
    task = contrastive_task(model, tokenizer, ("mean",), grouped, config)
    batch = task.collate([0, 1, 2, 3])
    # the mask compares groups: rows 0 and 1 (group 7) never see each other's text as a negative
    assert sorted(batch["positives"].tolist()) == [7, 7, 9, 9]
    assert sorted(batch["columns"].tolist()) == [7, 7, 9, 9]
    ungrouped = contrastive_task(
        model, tokenizer, ("mean",), ContrastivePairs(queries, np.arange(4), texts), config
    )
    plain = ungrouped.collate([0, 1, 2, 3])
    assert sorted(plain["positives"].tolist()) == [0, 1, 2, 3]
    with torch.no_grad():  # masking siblings removes two negatives from every row: a lower loss
        assert float(task.loss(batch)) < float(ungrouped.loss(plain))

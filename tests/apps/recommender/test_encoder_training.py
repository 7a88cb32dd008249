"""Contrastive LoRA fine-tuning of the item encoder: pairs, InfoNCE, a real training run (tiny encoder)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from apps.recommender.data import build_dataset, clean_interactions, clean_items
from apps.recommender.encoder_training import (
    ADAPTER_WEIGHTS,
    ContrastiveConfig,
    info_nce,
    load_embedder,
    make_pairs,
    train_encoder,
)
from apps.recommender.text_vectors import embed_items
from core.lora import LoraSettings

TOPICS = {
    "sea": ["sailing boats", "ocean waves", "harbour lights", "coral reefs", "lighthouse keepers", "tides"],
    "space": [
        "rocket launch",
        "moon landing",
        "orbiting stations",
        "distant galaxies",
        "mars rovers",
        "comets",
    ],
}


@pytest.fixture
def topical():
    """Users who stay within one topic: the next item is predictable from the history text."""
    items, rows = [], []
    for topic, words in TOPICS.items():
        items += [{"item_id": f"{topic}{i}", "title": f"A book about {w}"} for i, w in enumerate(words)]
    rng = np.random.default_rng(0)
    for u in range(40):
        topic = list(TOPICS)[u % 2]
        for t, i in enumerate(rng.permutation(6)[:5]):
            rows.append((f"u{u}", f"{topic}{i}", 1000 * u + t))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = clean_items(pd.DataFrame(items))
    index = {item_id: i for i, item_id in enumerate(items["item_id"])}
    return build_dataset(items, clean_interactions(frame, index), "topical")


def test_make_pairs_newest_history_first(topical):
    pairs = make_pairs(topical, ContrastiveConfig(history_items=2, max_pairs=10**6))
    assert len(pairs) == 40 * 4  # five items per user: four (history, next) pairs
    history = topical.histories()[0]
    texts = topical.texts
    assert pairs.queries[0] == texts[history[0]]
    assert pairs.queries[1] == f"{texts[history[1]]} | {texts[history[0]]}"
    assert pairs.positives[1] == texts[history[2]] and pairs.items[1] == history[2]
    assert pairs.queries[2] == f"{texts[history[2]]} | {texts[history[1]]}"  # only the last two
    sampled = make_pairs(topical, ContrastiveConfig(max_pairs=7, seed=1))
    assert (
        len(sampled) == 7
        and make_pairs(topical, ContrastiveConfig(max_pairs=7, seed=1)).queries == sampled.queries
    )


def test_info_nce_hand_computed_and_duplicate_mask():
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    loss = info_nce(q, p, torch.tensor([0, 1]), temperature=1.0)
    expected = (-np.log(np.e / (np.e + np.exp(0.6))) - np.log(np.exp(0.8) / (1 + np.exp(0.8)))) / 2
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # The same item twice in a batch is not its own negative: the loss is the one-item loss (0).
    same = info_nce(q[:1].repeat(2, 1), p[:1].repeat(2, 1), torch.tensor([3, 3]), temperature=1.0)
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def _pair_loss(embedder, pairs) -> float:
    """InfoNCE over all pairs at once: lower when histories land nearer their next items."""
    q = torch.as_tensor(embedder.encode(pairs.queries))
    p = torch.as_tensor(embedder.encode(pairs.positives))
    return float(info_nce(q, p, torch.as_tensor(pairs.items), temperature=0.05))


def test_contrastive_training_lowers_loss_and_round_trips(topical, tiny_encoder_dir, tmp_path):
    config = ContrastiveConfig(
        steps=25,
        batch_size=16,
        lr=2e-2,
        max_query_length=32,
        max_item_length=16,
        history_items=2,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
    )
    base = str(tiny_encoder_dir)
    result = train_encoder(topical, tmp_path / "adapter", base, config)
    assert (tmp_path / "adapter" / ADAPTER_WEIGHTS).is_file()
    assert json.loads((tmp_path / "adapter" / "training.json").read_text())["base"] == base
    assert result.model_id.startswith(f"{base}+lora:") and len(result.losses) == 25
    pairs = make_pairs(topical, config)
    frozen = load_embedder(base, None, 16)
    assert _pair_loss(result.embedder, pairs) < _pair_loss(frozen, pairs) - 0.05
    reloaded = load_embedder(base, tmp_path / "adapter", 16)
    assert reloaded.model_id == result.model_id
    tuned = embed_items(topical, result.embedder)
    np.testing.assert_allclose(embed_items(topical, reloaded), tuned, atol=1e-5)


def test_too_few_pairs_is_a_clear_error(topical, tiny_encoder_dir, tmp_path):
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_encoder(topical, tmp_path / "a", str(tiny_encoder_dir), ContrastiveConfig(batch_size=10**4))
    with pytest.raises(ValueError, match="batch_size"):
        ContrastiveConfig(batch_size=1)

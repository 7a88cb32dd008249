"""Contrastive LoRA fine-tuning of the item encoder: pairs, mined negatives, a real run (tiny encoder)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from apps.recommender.config import ContrastiveConfig
from apps.recommender.encoder_training import (
    ADAPTER_WEIGHTS,
    item_log_q,
    load_embedder,
    make_pairs,
    mine_negatives,
    train_encoder,
)
from apps.recommender.interactions import build_dataset, clean_interactions, clean_items
from apps.recommender.text_vectors import embed_items
from core.finetune.contrastive import info_nce
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


def test_mined_negatives_are_near_but_never_seen(topical):
    vectors = np.eye(topical.n_items, dtype=np.float32)
    vectors[:, 0] += 0.5  # every item leans towards item 0
    pairs = make_pairs(topical, ContrastiveConfig(history_items=2))
    config = ContrastiveConfig(hard_negatives=2, hard_skip=0, hard_pool=3)
    negatives = mine_negatives(topical, pairs, vectors, config)
    assert negatives.shape == (len(pairs), 2)
    seen = topical.user_item_matrix().toarray() > 0
    for r in range(len(pairs)):
        picked = negatives[r][negatives[r] >= 0]
        assert len(picked) and not seen[pairs.users[r], picked].any() and pairs.items[r] not in picked
    assert (negatives == mine_negatives(topical, pairs, vectors, config)).all()  # seeded
    log_q = item_log_q(np.array([0, 0, 1]), 3)
    np.testing.assert_allclose(np.exp(log_q), [2 / 3, 1 / 3, 0.5 / 3], rtol=1e-6)


def _pair_loss(embedder, pairs) -> float:
    """InfoNCE over all pairs at once: lower when histories land nearer their next items."""
    q = torch.as_tensor(embedder.encode(pairs.queries))
    p = torch.as_tensor(embedder.encode(pairs.positives))
    items = torch.as_tensor(pairs.items)
    return float(info_nce(q, p, items, items, temperature=0.05))


def test_contrastive_training_lowers_loss_and_round_trips(topical, tiny_encoder_dir, tmp_path):
    config = ContrastiveConfig(
        method="lora",
        epochs=4,
        batch_size=8,
        patience=0,
        lr=2e-2,
        max_query_length=32,
        max_item_length=16,
        history_items=2,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
    )
    base = str(tiny_encoder_dir)
    result = train_encoder(topical, tmp_path / "adapter", base, config)
    assert (tmp_path / "adapter" / ADAPTER_WEIGHTS).is_file()
    training = json.loads((tmp_path / "adapter" / "training.json").read_text())
    assert training["base"] == base and training["report"]["epochs_run"] == 4
    assert result.model_id.startswith(f"{base}+lora:") and len(result.losses) == 4
    assert result.summary()["val_mrr"][0] is not None  # validation split scored every epoch
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


def test_head_method_trains_a_projection_over_frozen_vectors(topical, tiny_encoder_dir, tmp_path):
    base = str(tiny_encoder_dir)
    config = ContrastiveConfig(
        method="head",
        head_epochs=6,
        head_batch_size=16,
        head_lr=0.05,
        patience=0,
        history_items=2,
        max_item_length=16,
        hard_negatives=1,
        hard_skip=0,
        hard_pool=4,
    )
    frozen = embed_items(topical, load_embedder(base, None, 16))
    result = train_encoder(topical, tmp_path / "head", base, config, item_vectors=frozen)
    assert (tmp_path / "head" / "projection.safetensors").is_file()
    assert not (tmp_path / "head" / ADAPTER_WEIGHTS).exists()
    training = json.loads((tmp_path / "head" / "training.json").read_text())
    assert training["method"] == "head" and training["report"]["epochs_run"] == 6
    assert result.model_id.startswith(f"{base}+head:") and result.item_vectors is not None

    # The loss falls (that the head learns behaviour the frozen vectors miss is shown on synthetic
    # data in tests/core/test_finetune_projection.py; this tiny random encoder's vectors barely differ).
    assert result.losses[-1] < result.losses[0]
    assert not np.allclose(result.item_vectors, frozen / np.linalg.norm(frozen, axis=1, keepdims=True))
    # A saved head reloads as the base encoder plus the projection: the same vectors from text.
    reloaded = load_embedder(base, tmp_path / "head", 16)
    assert reloaded.model_id == result.model_id
    np.testing.assert_allclose(embed_items(topical, reloaded), result.item_vectors, atol=1e-5)
    np.testing.assert_allclose(embed_items(topical, result.embedder), result.item_vectors, atol=1e-5)

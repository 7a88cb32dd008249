"""The cold-item path: reserved slots, the cold ranker, and cold items reaching hybrid lists."""

from __future__ import annotations

import numpy as np
import pytest

from apps.recommender.cold import ColdRanker, merge_slots, merge_slots_batch
from apps.recommender.config import ColdSlots


def test_slot_positions():
    assert ColdSlots().slots(20).tolist() == [10, 14, 18]  # positions 11, 15, 19 (1-based)
    assert ColdSlots(first_slot=2, every=3, last_slot=8).slots(100).tolist() == [1, 4, 7]
    assert ColdSlots(first_slot=0).n_slots(100) == 0 and not ColdSlots(first_slot=0).enabled
    with pytest.raises(ValueError, match="every"):
        ColdSlots(every=0)


def test_merge_interleaves_without_duplicates():
    slots = ColdSlots(first_slot=2, every=2, last_slot=10)
    items, flags = merge_slots(np.array([5, 6, 9, 7, 8]), np.array([9, 1, -1]), 6, slots)
    # Slot 2 takes cold 9, slot 4 takes cold 1; 9 is skipped when the warm list reaches it.
    assert items.tolist() == [5, 9, 6, 1, 7, 8]
    assert flags.tolist() == [False, True, False, True, False, False]
    # No cold items left: the warm list fills the reserved slots; short lists stay short.
    items, flags = merge_slots(np.array([3, 4]), np.array([], dtype=int), 5, slots)
    assert items.tolist() == [3, 4] and not flags.any()


def test_cold_ranker_orders_cold_items_by_similarity():
    vectors = np.array([[1, 0], [0.8, 0.6], [0, 1], [0.6, 0.8]], dtype=np.float32)
    ranker = ColdRanker(vectors, item_counts=np.array([3, 0, 5, 0]))
    assert ranker.cold_items.tolist() == [1, 3]
    items, sims = ranker.top(np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32), 5)
    assert items[0].tolist() == [1, 3] and sims[0] == pytest.approx([0.8, 0.6])
    assert items[1].tolist() == [-1, -1]  # no history: no cold items


def test_hybrid_finds_cold_items_better_than_text_only(sample_dataset, sample_minilm_vectors):
    from apps.recommender.baselines import TextScorer
    from apps.recommender.config import RankerConfig
    from apps.recommender.evaluation import evaluate_cold_start
    from apps.recommender.hybrid import HybridScorer
    from apps.recommender.splits import cold_start_split

    vectors, _ = sample_minilm_vectors
    split = cold_start_split(sample_dataset)
    hybrid = HybridScorer(vectors).fit(split.train)
    ours = evaluate_cold_start(hybrid, split)["recall@50"]
    text = evaluate_cold_start(TextScorer(item_vectors=vectors).fit(split.train), split)["recall@50"]
    off = HybridScorer(vectors, RankerConfig(cold=ColdSlots(first_slot=0)), ranker=hybrid.ranker)
    without = evaluate_cold_start(off.fit(split.train), split)["recall@50"]
    assert ours > text > without
    recs = hybrid.recommend_with_reasons([split.train.user_ids[split.test_users[0]]], k=20)
    cold = set(split.train.item_ids[split.cold_items])
    slot_rows = recs.loc[recs["cold_slot"]]
    assert set(slot_rows["item_id"]) <= cold and slot_rows["rank"].tolist() == [11, 15, 19]
    assert slot_rows["reason"].str.contains("new item").all() and recs["score"].is_monotonic_decreasing


def test_freshness_bonus_prefers_newer_cold_items():
    vectors = np.array([[1, 0], [1, 0], [1, 0]], dtype=np.float32)
    day = 86400.0
    start = np.array([0.0, 1000 * day, np.nan])  # old, new, unknown age
    ranker = ColdRanker(vectors, np.zeros(3), start, now=1000 * day, slots=ColdSlots())
    assert ranker.bonus == pytest.approx([0.2 * 0.5 ** (1000 / 730), 0.2, 0.0])
    items, _ = ranker.top(np.array([[1.0, 0.0]], dtype=np.float32), 3)
    assert items[0].tolist() == [1, 0, 2]


def test_movielens_release_year_becomes_item_timestamp(ml_latest_dir):
    from apps.recommender.public_datasets import load_movielens

    items = load_movielens(ml_latest_dir).items
    assert items["timestamp"].tolist()[:2] == [788918400, 788918400]  # 1995-01-01
    assert items["timestamp"].isna().tolist() == [False, False, True, False]  # "Silent Reel" has no year


def _merge_one_by_one(warm, cold, length, slots):
    """The per-list merge the batch version replaced (the reference)."""
    reserved = set(slots.slots(length).tolist())
    warm_list, cold_list = [int(i) for i in warm if i >= 0], [int(i) for i in cold if i >= 0]
    out, flags, placed, w, c = [], [], set(), 0, 0
    while len(out) < length:
        item = None
        if len(out) in reserved:
            while c < len(cold_list) and cold_list[c] in placed:
                c += 1
            if c < len(cold_list):
                item, c = cold_list[c], c + 1
                flags.append(True)
        if item is None:
            while w < len(warm_list) and warm_list[w] in placed:
                w += 1
            if w == len(warm_list):
                break
            item, w = warm_list[w], w + 1
            flags.append(False)
        placed.add(item)
        out.append(item)
    return out, flags


def test_batch_merge_equals_one_list_at_a_time():
    """Random lists with repeats, shared warm/cold items, -1 gaps and short warm lists."""
    rng = np.random.default_rng(0)
    slots = ColdSlots(first_slot=3, every=2, last_slot=30)
    for n_warm, n_cold, length in ((40, 12, 30), (8, 12, 30), (25, 0, 20), (30, 5, 12)):
        warm = rng.integers(-1, 45, (200, n_warm))
        cold = np.stack([rng.permutation(np.arange(30, 60))[:n_cold] for _ in range(200)])
        cold[rng.random(cold.shape) < 0.1] = -1
        cold[:10] = -1  # users without history: no cold items at all
        items, flags = merge_slots_batch(warm, cold, length, slots)
        for r in range(200):
            expected, expected_flags = _merge_one_by_one(warm[r], cold[r], length, slots)
            n = len(expected)
            assert items[r, :n].tolist() == expected and (items[r, n:] == -1).all()
            assert flags[r, :n].tolist() == expected_flags and not flags[r, n:].any()

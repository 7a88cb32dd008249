"""The hybrid scorer: better than the baselines, with reasons; chunked reasons equal per-user ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.recommender.baselines import ItemKNNScorer, PopularityScorer
from apps.recommender.config import CandidateConfig, GBDTConfig, RankerConfig
from apps.recommender.evaluation import evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.ranker import GBDTRanker, LinearRanker, load_ranker
from apps.recommender.splits import leave_last_out


def test_hybrid_beats_baselines_and_explains(sample_dataset, sample_minilm_vectors, tmp_path):
    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    config = RankerConfig(candidates=CandidateConfig(n_text=50, n_cf=50, n_popular=20))
    hybrid = HybridScorer(vectors, config).fit(split.train)
    ours = evaluate_next_item(hybrid, split)
    itemknn = evaluate_next_item(ItemKNNScorer().fit(split.train), split)
    assert ours["ndcg@10"] > itemknn["ndcg@10"]
    recs = hybrid.recommend_with_reasons(["U0001", "nobody"], k=5)
    mine = recs.loc[recs["user_id"] == "U0001"]
    assert mine["rank"].tolist() == [1, 2, 3, 4, 5] and mine["score"].is_monotonic_decreasing
    history = set(split.train.interactions.loc[split.train.interactions["user_id"] == "U0001", "item_id"])
    assert not set(mine["item_id"]) & history
    assert set(mine["similar_item_id"]) <= history and mine["reason"].str.startswith("similar to '").all()
    assert recs.loc[recs["user_id"] == "nobody", "similar_item_id"].isna().all()
    # A saved ranker serves the same scores without retraining.
    hybrid.save_ranker(tmp_path / "ranker")
    again = HybridScorer(vectors, config, ranker=LinearRanker.load(tmp_path / "ranker")).fit(split.train)
    np.testing.assert_allclose(again.score(["U0001"]), hybrid.score(["U0001"]))


def test_reasons_for_a_chunk_equal_reasons_one_user_at_a_time(sample_dataset, sample_minilm_vectors):
    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    hybrid = HybridScorer(vectors, RankerConfig(candidates=CandidateConfig(n_text=30, n_cf=30))).fit(
        split.train
    )
    users = [*split.train.user_ids[:6].tolist(), "nobody"]
    together = hybrid.recommend_with_reasons([*users, users[0]], k=12)
    alone = pd.concat(
        [hybrid.recommend_with_reasons([u], k=12) for u in [*users, users[0]]], ignore_index=True
    )
    # Equal up to float rounding (BLAS blocks a 7-row product differently from a 1-row one).
    numbers = r"[-+]?\d+\.\d\d"
    for frame in (together, alone):
        frame["reason"] = frame["reason"].str.replace(numbers, "#", regex=True)
    pd.testing.assert_frame_equal(together, alone, check_exact=False, atol=1e-4)
    assert len(together) == 12 * 8 and together["reason"].str.len().gt(0).all()
    cold = together.loc[together["cold_slot"]]
    assert cold["reason"].str.contains("new item, no interactions yet").all()


def _reloaded(hybrid, vectors, config, split, tmp_path):
    """The hybrid again, its ranker saved and loaded back."""
    hybrid.save_ranker(tmp_path / "ranker")
    return HybridScorer(vectors, config, ranker=load_ranker(tmp_path / "ranker")).fit(split.train)


def test_lambdarank_hybrid_serves_and_explains_from_its_saved_trees(
    sample_dataset, sample_minilm_vectors, tmp_path
):
    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    config = RankerConfig(
        candidates=CandidateConfig(n_text=50, n_cf=50, n_popular=20),
        model="lambdarank",
        gbdt=GBDTConfig(num_leaves=7, min_child_samples=5, max_rounds=40, patience=10),
    )
    hybrid = HybridScorer(vectors, config).fit(split.train)
    assert isinstance(hybrid.ranker, GBDTRanker) and hybrid.ranker.rounds >= 1
    ours = evaluate_next_item(hybrid, split)
    popularity = evaluate_next_item(PopularityScorer().fit(split.train), split)
    assert ours["ndcg@10"] > popularity["ndcg@10"]
    recs = hybrid.recommend_with_reasons(["U0001", "U0002"], k=8)
    assert recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    warm = recs.loc[~recs["cold_slot"]]
    assert warm["reason"].str.contains(r"\+\d\.\d\d", regex=True).any()  # named features with lifts
    again = _reloaded(hybrid, vectors, config, split, tmp_path)
    np.testing.assert_array_equal(again.score(["U0001", "U0002"]), hybrid.score(["U0001", "U0002"]))
    pd.testing.assert_frame_equal(again.recommend_with_reasons(["U0001", "U0002"], k=8), recs)


def test_the_ranker_learns_from_row_vectors_and_serves_item_vectors(sample_dataset, sample_minilm_vectors):
    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    config = RankerConfig(candidates=CandidateConfig(n_text=30, n_cf=30, n_popular=10))
    rows = np.roll(vectors, 1, axis=0)  # other vectors of the same items: other text features
    hybrid = HybridScorer(vectors, config, row_vectors=rows).fit(split.train)
    from_rows = HybridScorer(rows, config).fit(split.train)
    plain = HybridScorer(vectors, config).fit(split.train)
    # The ranker is the one fit on the row vectors' training rows ...
    np.testing.assert_array_equal(hybrid.ranker.coef, from_rows.ranker.coef)
    assert not np.array_equal(hybrid.ranker.coef, plain.ranker.coef)
    # ... and it scores candidates from the item vectors: with the plain hybrid's ranker, the same lists.
    served = HybridScorer(vectors, config, ranker=hybrid.ranker).fit(split.train)
    np.testing.assert_array_equal(hybrid.score(["U0001", "U0002"]), served.score(["U0001", "U0002"]))
    with pytest.raises(ValueError, match="row vectors"):
        HybridScorer(vectors, config, row_vectors=vectors[:3])


def test_listwise_hybrid_with_activity_interactions_serves_and_reloads(
    sample_dataset, sample_minilm_vectors, tmp_path
):
    from apps.recommender.features import INTERACTION_FEATURES

    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    config = RankerConfig(
        candidates=CandidateConfig(n_text=50, n_cf=50, n_popular=20),
        model="listwise",
        activity_interactions=True,
    )
    hybrid = HybridScorer(vectors, config).fit(split.train)
    assert isinstance(hybrid.ranker, LinearRanker) and hybrid.ranker.intercept == 0
    assert hybrid.ranker.feature_names[-len(INTERACTION_FEATURES) :] == list(INTERACTION_FEATURES)
    ours = evaluate_next_item(hybrid, split)
    assert ours["ndcg@10"] > evaluate_next_item(PopularityScorer().fit(split.train), split)["ndcg@10"]
    recs = hybrid.recommend_with_reasons(["U0001", "nobody"], k=5)
    assert recs.loc[recs["user_id"] == "U0001", "score"].is_monotonic_decreasing
    again = _reloaded(hybrid, vectors, config, split, tmp_path)
    np.testing.assert_allclose(again.score(["U0001"]), hybrid.score(["U0001"]))

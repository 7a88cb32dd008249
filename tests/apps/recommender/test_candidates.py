"""Candidate union: text ANN, co-occurrence and popular items, de-duplicated, seen items excluded."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.recommender import candidates as candidates_module
from apps.recommender.baselines import EASEScorer, ItemKNNScorer
from apps.recommender.candidates import CandidateGenerator, build_item_index
from apps.recommender.config import CandidateConfig
from apps.recommender.interactions import build_dataset, clean_interactions, clean_items
from apps.recommender.splits import cold_start_split, leave_last_out

# u1 {A, B}, u2 {B, C}, u3 {A}, u4 {D}; E and F have text but no interactions.
TRAIN = [("u1", "A", 1), ("u1", "B", 2), ("u2", "B", 1), ("u2", "C", 2), ("u3", "A", 1), ("u4", "D", 6)]
VECTORS = np.array(
    [[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0, 1], [0.95, 0, 0.05], [0, 0.2, 1]], dtype=np.float32
)


@pytest.fixture
def train():
    items = clean_items(pd.DataFrame({"item_id": list("ABCDEF"), "title": [f"Item {c}" for c in "ABCDEF"]}))
    frame = pd.DataFrame(TRAIN, columns=["user_id", "item_id", "timestamp"])
    return build_dataset(items, clean_interactions(frame, {c: i for i, c in enumerate("ABCDEF")}), "train")


def _by_user(frame: pd.DataFrame, user: str) -> pd.DataFrame:
    return frame.loc[frame["user_id"] == user].set_index("item_id")


def test_union_sources_and_exclusion(train):
    config = CandidateConfig(n_text=1, n_cf=1, n_popular=1, half_life=None)
    gen = CandidateGenerator(train, VECTORS, config=config, embedding_model="hand-made")
    frame = gen.generate(["u3", "u1"])
    u3 = _by_user(frame, "u3")
    # Text: nearest unseen to A is E; CF: B (cos(A,B) = 0.5); popular: B (A is seen). B appears once.
    assert u3.index.tolist() == ["B", "E"]
    assert u3.loc["B", ["from_text", "from_cf", "from_popular"]].tolist() == [False, True, True]
    assert u3.loc["E", ["from_text", "from_cf", "from_popular"]].tolist() == [True, False, False]
    assert u3.loc["B", "cf_score"] == pytest.approx(0.5) and u3.loc["E", "cf_score"] == 0
    assert u3.loc["E", "text_score"] == pytest.approx(0.95 / np.linalg.norm([0.95, 0, 0.05]), rel=1e-5)
    assert u3.loc["B", "popularity"] == 2
    u1 = _by_user(frame, "u1")
    assert "A" not in u1.index and "B" not in u1.index  # seen in training
    assert u1.loc["C", "from_cf"] and u1.loc["C", "from_popular"]
    assert frame["user_id"].tolist()[:2] == ["u3", "u3"]  # grouped by user in input order
    assert not frame.duplicated(["user_id", "item_id"]).any()


def test_unknown_user_gets_popular_only(train):
    gen = CandidateGenerator(train, VECTORS, config=CandidateConfig(n_popular=2), embedding_model="hand-made")
    frame = gen.generate(["nobody"])
    assert frame["item_id"].tolist() == ["A", "B"]
    assert frame["from_popular"].all() and not frame["from_text"].any() and not frame["from_cf"].any()
    assert frame["text_score"].isna().all() and (frame["cf_score"] == 0).all()
    assert gen.generate([]).empty


def test_shared_index_and_cf_must_match(train):
    index = build_item_index(train, VECTORS, "hand-made")
    cf = ItemKNNScorer().fit(train)
    gen = CandidateGenerator(train, VECTORS, index=index, cf=cf)
    assert gen.index is index and gen.cf is cf
    with pytest.raises(ValueError, match="6 items"):
        build_item_index(train, VECTORS[:3], "hand-made")
    with pytest.raises(ValueError, match="must be >= 0"):
        CandidateConfig(n_text=-1)


def test_candidates_on_sample_data_reach_targets_and_cold_items(sample_dataset, sample_minilm_vectors):
    vectors, model_id = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    gen = CandidateGenerator(split.train, vectors, config=CandidateConfig(n_text=30, n_cf=30, n_popular=10))
    users = split.train.user_ids[split.test_users].tolist()
    frame = gen.generate(users, show_progress_bar=False)
    targets = pd.DataFrame({"user_id": users, "item_idx": [t[0] for t in split.test_items]})
    recall = len(frame.merge(targets, on=["user_id", "item_idx"])) / len(users)
    assert recall > 0.6  # the union finds most next items among ~50 of 208
    seen = split.train.interactions[["user_id", "item_idx"]]
    assert frame.merge(seen, on=["user_id", "item_idx"]).empty
    cold = cold_start_split(sample_dataset)
    cold_gen = CandidateGenerator(cold.train, vectors, embedding_model=model_id)
    cold_frame = cold_gen.generate(cold.train.user_ids[cold.test_users].tolist())
    cold_rows = cold_frame.loc[cold_frame["item_idx"].isin(cold.cold_items)]
    assert len(cold_rows) and cold_rows["from_text"].all() and not cold_rows["from_cf"].any()


def test_index_path_matches_dense_path(sample_dataset, sample_minilm_vectors, monkeypatch):
    """Large catalogues search the vector index and keep sparse CF rows; the result is the same."""
    vectors, _ = sample_minilm_vectors
    split = leave_last_out(sample_dataset)
    config = CandidateConfig(n_text=20, n_cf=20, n_popular=5, n_ease=10)
    ease = EASEScorer(l2=10.0).fit(split.train)
    users = [*split.train.user_ids[:40].tolist(), "nobody"]
    dense = CandidateGenerator(split.train, vectors, config=config, ease=ease).generate(users)
    monkeypatch.setattr(candidates_module, "DENSE_ITEMS", 0)
    indexed = CandidateGenerator(split.train, vectors, config=config, ease=ease).generate(users)
    pd.testing.assert_frame_equal(dense, indexed, check_exact=False, atol=1e-5)


def test_ease_source_and_score(train):
    ease = EASEScorer(l2=0.5).fit(train)
    config = CandidateConfig(n_text=0, n_cf=0, n_popular=0, n_ease=1)
    frame = CandidateGenerator(train, VECTORS, config=config, ease=ease, embedding_model="m").generate(["u3"])
    # u3 saw A only: EASE ranks B (co-occurs with A) first; E and F are outside the EASE model.
    assert frame["item_id"].tolist() == ["B"] and frame["from_ease"].all()
    expected = ease.score(["u3"], exclude_seen=False)[0][1]
    assert frame["ease_score"].iloc[0] == pytest.approx(expected) and expected > 0
    items = clean_items(pd.DataFrame({"item_id": list("AB"), "title": ["Item A", "Item B"]}))
    frame = pd.DataFrame([("u1", "A", 1), ("u1", "B", 2)], columns=["user_id", "item_id", "timestamp"])
    small = build_dataset(items, clean_interactions(frame, {"A": 0, "B": 1}), "small")
    with pytest.raises(ValueError, match="another catalogue"):
        CandidateGenerator(train, VECTORS, ease=EASEScorer().fit(small))

"""Popularity, ItemKNN, BPR-MF and text scorers: hand-checked scores, seen exclusion, fallbacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from apps.recommender.baselines import (
    BPRScorer,
    EASEScorer,
    ItemKNNScorer,
    PopularityScorer,
    TextScorer,
    _mirror_upper,
    bpr_available,
    ease_weights,
)
from apps.recommender.config import EvalConfig
from apps.recommender.evaluation import evaluate, evaluate_next_item
from apps.recommender.interactions import build_dataset, clean_interactions, clean_items
from apps.recommender.scorer import Scorer
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import embed_items, recency_weights, user_vectors
from core.embeddings import Embedder

# Training data: u1 {A, B}, u2 {B, C}, u3 {A}, u4 {D}; E has no interactions.
TRAIN = [("u1", "A", 1), ("u1", "B", 2), ("u2", "B", 1), ("u2", "C", 2), ("u3", "A", 1), ("u4", "D", 6)]


@pytest.fixture
def train():
    items = clean_items(pd.DataFrame({"item_id": list("ABCDE"), "title": [f"Item {c}" for c in "ABCDE"]}))
    frame = pd.DataFrame(TRAIN, columns=["user_id", "item_id", "timestamp"])
    return build_dataset(items, clean_interactions(frame, {c: i for i, c in enumerate("ABCDE")}), "train")


def test_popularity_scores_and_seen_exclusion(train):
    scorer = PopularityScorer().fit(train)
    scores = scorer.score(["u1", "u3"])
    assert scores[0].tolist() == [-np.inf, -np.inf, 1, 1, 0]
    assert scores[1].tolist() == [-np.inf, 2, 1, 1, 0]
    assert scorer.score(["u1"], exclude_seen=False)[0].tolist() == [2, 2, 1, 1, 0]
    ids, values = scorer.recommend(["u3"], k=2)
    assert ids == [["B", "C"]] and values[0].tolist() == [2, 1]


def test_unknown_users_fall_back_to_popularity(train, caplog):
    scorer = ItemKNNScorer().fit(train)
    with caplog.at_level("INFO"):
        scores = scorer.score(["stranger"])
    assert scores[0].tolist() == [2, 2, 1, 1, 0]
    assert "Unknown users get popularity scores" in caplog.text
    assert scorer.recommend(["stranger"], k=1)[0] == [["A"]]


def test_itemknn_cosine_by_hand(train):
    """cos(A,B) = 1/(sqrt2*sqrt2) = 0.5; cos(B,C) = 1/(sqrt2*1); A-C, D and E share no users."""
    scorer = ItemKNNScorer().fit(train)
    sim = scorer.similarity.toarray()
    expected = np.zeros((5, 5))
    expected[0, 1] = expected[1, 0] = 0.5
    expected[1, 2] = expected[2, 1] = 1 / np.sqrt(2)
    np.testing.assert_allclose(sim, expected, rtol=1e-6)
    scores = scorer.score(["u3", "u1"])
    np.testing.assert_allclose(scores[0], [-np.inf, 0.5, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(scores[1], [-np.inf, -np.inf, 1 / np.sqrt(2), 0, 0], rtol=1e-6)
    idx, vals = scorer.similar_items(1, k=5)
    assert idx.tolist() == [2, 0] and vals.tolist() == pytest.approx([1 / np.sqrt(2), 0.5])


def test_itemknn_pruning_shrink_and_blocks(train):
    full = ItemKNNScorer(block_size=2).fit(train).similarity.toarray()
    np.testing.assert_allclose(full, ItemKNNScorer().fit(train).similarity.toarray())
    pruned = ItemKNNScorer(neighbours=1).fit(train).similarity.toarray()
    assert (pruned > 0).sum(axis=1).tolist() == [1, 1, 1, 0, 0]
    assert pruned[1, 2] == pytest.approx(1 / np.sqrt(2))  # B keeps its nearest neighbour, C
    assert ItemKNNScorer(shrink=2.0).fit(train).similarity[0, 1] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="neighbours >= 1"):
        ItemKNNScorer(neighbours=0)


def test_unfitted_scorer_raises():
    with pytest.raises(RuntimeError, match="not fitted"):
        PopularityScorer().score(["u1"])


def test_nan_scores_are_an_error(train):
    class Broken(PopularityScorer):
        def _score_users(self, user_idx):
            return np.full((len(user_idx), 5), np.nan, dtype=np.float32)

    with pytest.raises(ValueError, match="NaN scores"):
        Broken().fit(train).score(["u1"])


def test_recency_weights_and_user_vectors():
    assert recency_weights(3, half_life=1.0, max_history=None).tolist() == [0.25, 0.5, 1.0]
    assert recency_weights(3, half_life=None, max_history=2).tolist() == [0.0, 1.0, 1.0]
    vectors = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    got = user_vectors([np.array([0, 1]), np.array([], dtype=int)], vectors, half_life=1.0, max_history=None)
    expected = np.array([0.5, 1.0]) / np.linalg.norm([0.5, 1.0])
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    assert got[1].tolist() == [0, 0]
    with pytest.raises(ValueError, match="half_life"):
        recency_weights(2, half_life=0, max_history=None)


def test_text_scorer_with_given_vectors(train):
    vectors = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1], [1, 1]], dtype=np.float32)
    scorer = TextScorer(item_vectors=vectors, half_life=None).fit(train)
    scores = scorer.score(["u3"])[0]  # history A = [1, 0]: C is the nearest unseen item
    assert scores[0] == -np.inf and np.argmax(scores) == 2
    assert scorer.score(["u4"])[0].argmax() == 1  # history D = [0.1, 1]: B is nearest
    with pytest.raises(ValueError, match="has 5 items"):
        TextScorer(item_vectors=vectors[:3]).fit(train)
    with pytest.raises(ValueError, match="needs an encoder"):
        TextScorer()


def test_text_scorer_with_tiny_encoder(train, tiny_encoder_dir):
    embedder = Embedder(str(tiny_encoder_dir))
    vectors = embed_items(train, embedder)
    assert vectors.shape == (5, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    scores = TextScorer(encoder=embedder).fit(train).score(["u1", "u2"])
    assert scores.shape == (2, 5)
    assert np.isfinite(scores[0, 2:]).all() and np.isinf(scores[0, :2]).all()


@pytest.mark.skipif(not bpr_available(), reason="the 'implicit' package is not installed")
def test_bpr_is_deterministic_and_excludes_seen(train):
    first = BPRScorer(factors=8, iterations=20, seed=1).fit(train).score(["u1", "u2"])
    again = BPRScorer(factors=8, iterations=20, seed=1).fit(train).score(["u1", "u2"])
    np.testing.assert_array_equal(first, again)
    assert np.isinf(first[0, :2]).all() and np.isfinite(first[0, 2:]).all()


@pytest.mark.skipif(not bpr_available(), reason="the 'implicit' package is not installed")
def test_bpr_learns_sample_data(sample_dataset):
    split = leave_last_out(sample_dataset)
    bpr = evaluate_next_item(BPRScorer(iterations=50).fit(split.train), split)
    popular = evaluate_next_item(PopularityScorer().fit(split.train), split)
    assert bpr["ndcg@10"] > 1.3 * popular["ndcg@10"]


def test_frozen_minilm_text_scorer_on_sample_data(sample_dataset, sample_minilm_vectors):
    """The real encoder: beats popularity on next-item NDCG and finds cold items CF cannot."""
    dataset, (vectors, _) = sample_dataset, sample_minilm_vectors
    factories: dict[str, type[Scorer] | object] = {
        "popularity": PopularityScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
    }
    report = evaluate(dataset, factories, EvalConfig())
    assert report["models"]["text"]["ndcg@10"] > 1.5 * report["models"]["popularity"]["ndcg@10"]
    cold = report["cold_start"]["models"]
    assert cold["popularity"]["recall@50"] == 0.0 and cold["text"]["recall@50"] > 0.25


def test_ease_matches_per_item_ridge_regression(train):
    """Each column of B is the ridge regression of that item on the others (Steck 2019, eq. 1)."""
    l2 = 0.5
    scorer = EASEScorer(l2=l2).fit(train)
    assert scorer.items.tolist() == [0, 1, 2, 3]  # E has no interactions: not in the model
    x = train.user_item_matrix(binary=True).toarray()[:, :4].astype(float)
    expected = np.zeros((4, 4))
    for j in range(4):
        others = [i for i in range(4) if i != j]
        a = x[:, others]
        expected[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(3), a.T @ x[:, j])
    np.testing.assert_allclose(scorer.weights, expected, atol=1e-5)
    scores = scorer.score(["u3"], exclude_seen=False)[0]
    np.testing.assert_allclose(scores, [*expected[0], 0.0], atol=1e-5)
    assert scorer.score(["u3"])[0][0] == -np.inf
    with pytest.raises(ValueError, match="l2 > 0"):
        EASEScorer(l2=0)


def test_ease_max_items_keeps_the_most_popular(train):
    scorer = EASEScorer(l2=1.0, max_items=2).fit(train)
    assert scorer.items.tolist() == [0, 1]  # A and B have two users each
    assert scorer.score(["u4"], exclude_seen=False)[0][2:].tolist() == [0, 0, 0]


def test_ease_weights_from_the_cholesky_factor_equal_the_lu_inverse():
    """The float32 Cholesky inverse (potrf + potri, mirrored in blocks) gives numpy's weights."""
    rng = np.random.default_rng(0)
    x = (rng.random((300, 40)) < 0.2).astype(np.float32)
    gram = x.T @ x + 5.0 * np.eye(40, dtype=np.float32)
    inverse = np.linalg.inv(gram.astype(np.float64))
    expected = inverse / -np.diag(inverse)
    np.fill_diagonal(expected, 0.0)
    weights = ease_weights(gram.copy())
    assert weights.dtype == np.float32 and weights.flags.c_contiguous
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    # Blocks smaller than the matrix: the mirrored lower triangle still equals the upper one.
    square = np.triu(rng.random((10, 10)))
    _mirror_upper(square, block=3)
    np.testing.assert_array_equal(square, square.T)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        ease_weights(-np.eye(3, dtype=np.float32))


def test_ease_min_support_leaves_rare_items_out(train):
    scorer = EASEScorer(l2=1.0, min_support=2).fit(train)
    assert scorer.items.tolist() == [0, 1]  # only A and B have two users
    with pytest.raises(ValueError, match="min_support >= 1"):
        EASEScorer(min_support=0)

"""Ranker features, the rankers' round trips and their training rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from apps.recommender.candidates import CandidateGenerator
from apps.recommender.config import CandidateConfig, GBDTConfig, RankerConfig
from apps.recommender.features import FEATURES, FeatureBuilder
from apps.recommender.interactions import build_dataset, clean_interactions, clean_items
from apps.recommender.ranker import GBDTRanker, LinearRanker, fit_ranker, load_ranker, training_rows

DAY = 86400
# u1 {A@day0, B@day10}, u2 {B@day1, C@day40}; D published on day 35; E unknown age.
ROWS = [("u1", "A", 0), ("u1", "B", 10 * DAY), ("u2", "B", 1 * DAY), ("u2", "C", 40 * DAY)]
VECTORS = np.array([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1], [0.6, 0, 0.8]], dtype=np.float32)


@pytest.fixture
def train():
    items = pd.DataFrame(
        {"item_id": list("ABCDE"), "title": list("ABCDE"), "timestamp": ["", "", "", str(35 * DAY), ""]}
    )
    frame = pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"])
    items = clean_items(items)
    return build_dataset(items, clean_interactions(frame, {c: i for i, c in enumerate("ABCDE")}), "toy")


def test_features_by_hand(train):
    gen = CandidateGenerator(
        train, VECTORS, config=CandidateConfig(n_text=5, n_cf=5, n_popular=5, half_life=None)
    )
    candidates = gen.generate(["u1"])
    assert candidates["item_id"].tolist() == ["C", "D", "E"]
    features = FeatureBuilder(train, VECTORS, recent_days=30).build(candidates)
    assert list(features.columns[: len(FEATURES)]) == list(FEATURES)
    # u1's reference time is day 10; within (day -20, day 10]: C has no interactions yet.
    assert features["recent_popularity"].tolist() == [0, 0, 0]
    assert features["popularity"].tolist() == pytest.approx(np.log1p([1, 0, 0]).tolist())
    assert features["user_activity"].tolist() == pytest.approx([np.log1p(2)] * 3)
    # C starts at its first interaction (day 40, after t_ref: age 0); D is published on day 35; E unknown.
    assert features["item_age"].tolist() == [0, 0, 0]
    # Most similar history item: C is closest to B (0.6), E to A (0.6); D ties at 0 (first: A).
    assert features["similar_item_idx"].tolist() == [1, 0, 0]
    assert features["text_sim_max"].tolist() == pytest.approx([0.6, 0.0, 0.6])
    u2 = FeatureBuilder(train, VECTORS, recent_days=30).build(gen.generate(["u2"]))
    # u2's reference is day 40: A (day 0) is 40 days old and had no interactions in (day 10, day 40].
    a = gen.generate(["u2"])["item_id"].tolist().index("A")
    assert u2["item_age"].iloc[a] == pytest.approx(np.log1p(40)) and u2["recent_popularity"].iloc[a] == 0
    with pytest.raises(ValueError, match="recent_days"):
        FeatureBuilder(train, VECTORS, recent_days=0)


def test_linear_ranker_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"])
    y = (x["a"] - x["b"] + rng.normal(scale=0.1, size=200) > 0).astype(int).to_numpy()
    ranker = LinearRanker(["a", "b"]).fit(x, y)
    assert ranker.coef[0] > 0 > ranker.coef[1]
    path = ranker.save(tmp_path / "model", note="test")
    assert json.loads(path.read_text())["note"] == "test"
    loaded = LinearRanker.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.decision(x), ranker.decision(x))
    np.testing.assert_allclose(ranker.contributions(x).sum(axis=1) + ranker.intercept, ranker.decision(x))
    with pytest.raises(ValueError, match="positive and negative"):
        LinearRanker(["a", "b"]).fit(x, np.zeros(200))
    with pytest.raises(ValueError, match="missing feature"):
        ranker.decision(x[["a"]])
    path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt ranker file"):
        LinearRanker.load(tmp_path / "model")
    with pytest.raises(FileNotFoundError):
        LinearRanker.load(tmp_path / "nowhere")


def test_rank_within_groups():
    from apps.recommender.features import _rank_within

    group = np.array([0, 0, 0, 1, 1])
    assert _rank_within(group, np.array([0.1, 0.5, 0.5, 2.0, 3.0])).tolist() == [2, 0, 1, 1, 0]
    assert _rank_within(group[:0], np.array([])).tolist() == []


def _ranking_data(
    seed: int, users: int = 120, per_user: int = 20
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Groups of candidates whose target is the one with ``a`` closest to 0 (not linear in ``a``)
    plus a noisy signal ``b`` that also helps; ``c`` is noise."""
    rng = np.random.default_rng(seed)
    n = users * per_user
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.normal(size=n)})
    score = -np.abs(x["a"].to_numpy()) + 0.3 * x["b"].to_numpy()
    groups = np.repeat(np.arange(users), per_user)
    labels = np.zeros(n, dtype=int)
    labels[np.array([g * per_user + np.argmax(score[groups == g]) for g in range(users)])] = 1
    return x, labels, groups


def _mean_reciprocal_rank(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    ranks = []
    for g in np.unique(groups):
        s, y = scores[groups == g], labels[groups == g]
        ranks.append(1 + int((s > s[y == 1][0]).sum()))
    return float(np.mean(1 / np.asarray(ranks)))


def test_lambdarank_ranker_learns_a_non_linear_ranking_and_round_trips(tmp_path):
    x, y, g = _ranking_data(0)
    config = GBDTConfig(num_leaves=7, min_child_samples=10, max_rounds=60, patience=20)
    ranker = GBDTRanker(["a", "b", "c"], config).fit(x, y, g)
    assert ranker.fitted and 1 <= ranker.rounds <= 60 and ranker.report["positives"] == 120
    test_x, test_y, test_g = _ranking_data(1)
    trees = _mean_reciprocal_rank(ranker.decision(test_x), test_y, test_g)
    linear = _mean_reciprocal_rank(LinearRanker(["a", "b", "c"]).fit(x, y).decision(test_x), test_y, test_g)
    # The target is "a near 0": trees find it, a linear score in a cannot.
    assert trees > 0.5 and trees > 1.5 * linear
    # TreeSHAP contributions plus the expected value give the raw score; b pushes the score up.
    full = ranker.booster.predict(test_x.to_numpy(), pred_contrib=True)
    np.testing.assert_allclose(full.sum(axis=1), ranker.decision(test_x), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ranker.contributions(test_x), full[:, :-1])
    assert ranker.direction("b") > 0.5
    # Saved as LightGBM's text model + JSON manifest; loading gives identical scores.
    path = ranker.save(tmp_path / "model", note="test")
    manifest = json.loads(path.read_text())
    assert manifest["model"] == "lambdarank" and manifest["note"] == "test"
    assert (tmp_path / "model" / "ranker.txt").read_text().startswith("tree")
    loaded = load_ranker(tmp_path / "model")
    assert isinstance(loaded, GBDTRanker) and loaded.rounds == ranker.rounds
    np.testing.assert_array_equal(loaded.decision(test_x), ranker.decision(test_x))
    assert loaded.direction("b") == ranker.direction("b")
    # Deterministic: the same data and settings give the same trees.
    again = GBDTRanker(["a", "b", "c"], config).fit(x, y, g)
    assert again.booster.model_to_string() == ranker.booster.model_to_string()
    # A linear ranker's file is not read as trees, and an altered tree file is refused.
    with pytest.raises(ValueError, match="not a logistic"):
        LinearRanker.load(tmp_path / "model")
    (tmp_path / "model" / "ranker.txt").write_text("tree\nversion=v4\n")
    with pytest.raises(ValueError, match="sha256"):
        load_ranker(tmp_path / "model")
    with pytest.raises(ValueError, match="at least one user"):
        GBDTRanker(["a", "b", "c"], config).fit(x, np.zeros(len(x)), g)
    with pytest.raises(RuntimeError, match="not fitted"):
        GBDTRanker(["a"]).decision(x)


def test_training_rows_of_two_rounds_label_earlier_targets_from_earlier_data():
    # u1 A,B,C; u2 B,C,D; u3 A,D (one day apart). Round 0 targets: C, D, D; round 1: B, C (u3 has
    # a single interaction left and only trains).
    rows = [
        ("u1", "A", 0), ("u1", "B", DAY), ("u1", "C", 2 * DAY),
        ("u2", "B", 0), ("u2", "C", DAY), ("u2", "D", 2 * DAY),
        ("u3", "A", 0), ("u3", "D", DAY),
    ]  # fmt: skip
    items = clean_items(pd.DataFrame({"item_id": list("ABCDE"), "title": list("ABCDE")}))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    data = build_dataset(items, clean_interactions(frame, {c: i for i, c in enumerate("ABCDE")}), "toy")
    every = CandidateConfig(n_text=5, n_cf=5, n_popular=5, n_ease=5)
    one = training_rows(data, VECTORS, RankerConfig(candidates=every))
    two_features, two_labels = training_rows(data, VECTORS, RankerConfig(candidates=every, train_rounds=2))
    positives = two_features.loc[two_labels == 1]
    found = dict(zip(positives["query"], data.item_ids[positives["item_idx"]], strict=True))
    assert found == {"0:u1": "C", "0:u2": "D", "0:u3": "D", "1:u1": "B", "1:u2": "C"}
    # Round 0 is the single-round set of rows; round 1 only sees the interactions before its targets:
    # there C has no interactions (u2's C is its target) and u2 has seen B only.
    first = two_features["query"].str.startswith("0:").to_numpy()
    assert two_labels[first].tolist() == one[1].tolist()
    np.testing.assert_array_equal(two_features.loc[first, list(FEATURES)], one[0][list(FEATURES)])
    u2 = two_features.loc[two_features["query"] == "1:u2"]
    assert sorted(data.item_ids[u2["item_idx"]]) == ["A", "C", "D", "E"]
    assert u2.loc[data.item_ids[u2["item_idx"]] == "C", "popularity"].item() == 0
    with pytest.raises(ValueError, match="train_rounds"):
        RankerConfig(train_rounds=0)


def test_listwise_ranker_learns_within_query_order_and_round_trips(tmp_path):
    # Target: the candidate with the highest b - 0.5 c among its query's rows; "u" is constant in a
    # query (like user_activity) and so tells a listwise model nothing.
    rng = np.random.default_rng(0)
    queries, per_query = 150, 15
    n = queries * per_query
    groups = np.repeat(np.arange(queries), per_query)
    x = pd.DataFrame(
        {
            "b": rng.normal(size=n),
            "c": rng.normal(size=n),
            "u": np.repeat(rng.normal(size=queries), per_query),
        }
    )
    score = x["b"].to_numpy() - 0.5 * x["c"].to_numpy() + rng.normal(scale=0.3, size=n)
    labels = np.zeros(n, dtype=int)
    labels[[g * per_query + int(np.argmax(score[groups == g])) for g in range(queries)]] = 1
    # Queries whose target is not among their rows are dropped (here: one with no positive at all).
    labels[groups == 0] = 0
    ranker = LinearRanker(["b", "c", "u"]).fit_listwise(x, labels, groups, c=1.0)
    assert ranker.coef[0] > 0 > ranker.coef[1] and abs(ranker.coef[2]) < 1e-6 and ranker.intercept == 0
    assert _mean_reciprocal_rank(ranker.decision(x)[groups > 0], labels[groups > 0], groups[groups > 0]) > 0.5
    # Same JSON format as the logistic ranker.
    ranker.save(tmp_path)
    loaded = load_ranker(tmp_path)
    assert isinstance(loaded, LinearRanker)
    np.testing.assert_allclose(loaded.decision(x), ranker.decision(x))
    # A stronger penalty shrinks the coefficients.
    strong = LinearRanker(["b", "c", "u"]).fit_listwise(x, labels, groups, c=0.01)
    assert np.abs(strong.coef).sum() < np.abs(ranker.coef).sum()
    with pytest.raises(ValueError, match="at least one query"):
        LinearRanker(["b"]).fit_listwise(x, np.zeros(n), groups)


def test_blend_ranker_is_the_weighted_mean_of_the_logistic_and_listwise_fits(tmp_path):
    # The ranker's own feature columns: the target follows text_sim - 0.5 ease_rank, the rest is noise.
    rng = np.random.default_rng(1)
    queries, per_query = 120, 12
    n = queries * per_query
    groups = np.repeat(np.arange(queries), per_query)
    x = pd.DataFrame({name: rng.normal(size=n) for name in FEATURES})
    score = x["text_sim"].to_numpy() - 0.5 * x["ease_rank"].to_numpy() + rng.normal(scale=0.3, size=n)
    labels = np.zeros(n, dtype=int)
    labels[[g * per_query + int(np.argmax(score[groups == g])) for g in range(queries)]] = 1
    x["user_id"] = groups
    pointwise = LinearRanker().fit(x, labels)
    listwise = LinearRanker().fit_listwise(x, labels, groups)
    blended = fit_ranker(x, labels, RankerConfig(model="blend", listwise_weight=0.25))
    assert isinstance(blended, LinearRanker)
    np.testing.assert_allclose(blended.coef, 0.75 * pointwise.coef + 0.25 * listwise.coef, rtol=1e-6)
    assert blended.intercept == pytest.approx(0.75 * pointwise.intercept)
    assert _mean_reciprocal_rank(blended.decision(x), labels, groups) > 0.5
    # Weights 0 and 1 give the two fits; the blend saves as a plain linear ranker.
    np.testing.assert_allclose(LinearRanker.blend(pointwise, listwise, 0.0).coef, pointwise.coef)
    np.testing.assert_allclose(LinearRanker.blend(pointwise, listwise, 1.0).coef, listwise.coef)
    blended.save(tmp_path)
    np.testing.assert_allclose(load_ranker(tmp_path).decision(x), blended.decision(x))
    with pytest.raises(ValueError, match="same rows"):
        LinearRanker.blend(pointwise, LinearRanker().fit(x.iloc[:600], labels[:600]), 0.5)
    with pytest.raises(ValueError, match="listwise_weight"):
        RankerConfig(listwise_weight=1.5)

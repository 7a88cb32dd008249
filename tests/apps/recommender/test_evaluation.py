"""The evaluation protocol against hand-computed toy cases, and the top-k / rank helpers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apps.recommender.baselines import ItemKNNScorer, PopularityScorer
from apps.recommender.config import EvalConfig
from apps.recommender.evaluation import evaluate, evaluate_cold_start, evaluate_next_item
from apps.recommender.interactions import build_dataset, clean_interactions, clean_items
from apps.recommender.public_datasets import load_folder
from apps.recommender.scorer import rank_of, top_k
from apps.recommender.splits import cold_start_split, leave_last_out, time_cut
from tests.apps.recommender.conftest import SAMPLE_DIR

# user, item, time. Items A..E; u4 has one interaction (train only).
TOY = [
    ("u1", "A", 1),
    ("u1", "B", 2),
    ("u1", "C", 3),
    ("u2", "B", 1),
    ("u2", "C", 2),
    ("u2", "D", 4),
    ("u3", "A", 1),
    ("u3", "E", 5),
    ("u4", "D", 6),
]


@pytest.fixture
def toy():
    items = clean_items(pd.DataFrame({"item_id": list("ABCDE"), "title": [f"Item {c}" for c in "ABCDE"]}))
    frame = pd.DataFrame(TOY, columns=["user_id", "item_id", "timestamp"])
    index = {c: i for i, c in enumerate("ABCDE")}
    return build_dataset(items, clean_interactions(frame, index), "toy")


def test_top_k_and_rank_agree_with_ties_by_index():
    scores = np.array([[1.0, 3.0, 3.0, -np.inf, 2.0], [0.0, 0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    idx, val = top_k(scores, 3)
    assert idx.tolist() == [[1, 2, 4], [0, 1, 2]]
    assert val[0].tolist() == [3.0, 3.0, 2.0]
    assert rank_of(scores, np.array([2, 3])).tolist() == [2, 4]
    assert rank_of(scores, np.array([3, 0])).tolist() == [5, 1]  # -inf ranks after every finite item
    idx, val = top_k(scores[:1], 10)  # fewer finite items than k: padded
    assert idx.tolist() == [[1, 2, 4, 0, -1]] and val[0, -1] == -np.inf
    with pytest.raises(ValueError, match="k must be positive"):
        top_k(scores, 0)


def test_leave_last_out_split(toy):
    split = leave_last_out(toy)
    assert split.test_users.tolist() == [0, 1, 2]
    assert [t.tolist() for t in split.test_items] == [[2], [3], [4]]  # C, D, E
    assert split.info["train_only_users"] == 1 and split.info["test_users"] == 3
    assert split.train.user_item_matrix().toarray().tolist() == [
        [1, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [1, 0, 0, 0, 0],
        [0, 0, 0, 1, 0],
    ]


def test_next_item_metrics_hand_computed(toy):
    """Popularity in train: A=2, B=2, C=1, D=1, E=0, so the ranks are u1: C->1, u2: D->2, u3: E->4."""
    split = leave_last_out(toy)
    config = EvalConfig(hr_k=1, ndcg_k=2, recall_k=3, coverage_k=1, few_history=1)
    result = evaluate_next_item(PopularityScorer().fit(split.train), split, config)
    assert result["hr@1"] == pytest.approx(1 / 3)
    assert result["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert result["recall@3"] == pytest.approx(2 / 3)
    assert result["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    assert result["coverage"] == pytest.approx(3 / 5)  # top-1 lists: C, A, B
    assert result["n_users"] == 3
    few = result["few_history"]  # only u3 has <= 1 training item
    assert few["n_users"] == 1 and few["hr@1"] == 0 and few["mrr"] == pytest.approx(1 / 4)


def test_cold_start_hand_computed(toy):
    """Cut at t=3: D (first at t=4) and E (t=5) are cold; u2 should find D, u3 E; u4 has no history."""
    split = cold_start_split(toy, split_time=3)
    assert split.cold_items.tolist() == [3, 4]
    assert split.test_users.tolist() == [1, 2]
    assert [t.tolist() for t in split.test_items] == [[3], [4]]
    assert split.info["test_interactions"] == 2 and split.info["cold_items"] == 2
    assert split.train.item_counts().tolist() == [2, 2, 2, 0, 0]
    scorer = PopularityScorer().fit(split.train)
    # All items: u2 ranks A, D, E (D 2nd); u3 ranks B, C, D, E (E 4th).
    result = evaluate_cold_start(scorer, split, EvalConfig(recall_k=3, hr_k=2))
    assert result == {"recall@3": 0.5, "hr@2": 0.5, "n_users": 2}
    # Cold items only: u2 ranks D, E; u3 ranks D, E.
    result = evaluate_cold_start(scorer, split, EvalConfig(recall_k=3, hr_k=1, cold_candidates="cold"))
    assert result == {"recall@3": 1.0, "hr@1": 0.5, "n_users": 2}


def test_time_cut_quantile_and_errors(toy):
    assert time_cut(toy, 0.5) == 2
    assert time_cut(toy, None, split_time=7) == 7
    with pytest.raises(ValueError, match="quantile must be in"):
        time_cut(toy, 1.5)


def test_evaluate_report_shape_and_sampled_users(toy):
    report = evaluate(
        toy, {"popularity": PopularityScorer, "itemknn": ItemKNNScorer}, EvalConfig(cold_split_time=3)
    )
    assert set(report) == {"protocol", "models", "cold_start"}
    assert report["protocol"]["test_users"] == 3
    for name in ("popularity", "itemknn"):
        assert {"hr@10", "ndcg@10", "recall@50", "mrr", "coverage"} <= set(report["models"][name])
    assert report["cold_start"]["models"]["popularity"]["n_users"] == 2
    timings = ("fit_seconds", "eval_seconds", "fit_cpu_seconds", "eval_cpu_seconds")
    assert all(report["models"]["itemknn"][key] >= 0 for key in timings)
    assert report["cold_start"]["models"]["itemknn"]["fit_cpu_seconds"] >= 0
    sampled = evaluate_next_item(
        PopularityScorer().fit(leave_last_out(toy).train), leave_last_out(toy), EvalConfig(max_users=2)
    )
    assert sampled["n_users"] == 2


def test_protocol_excludes_seen_items_even_if_a_scorer_does_not(toy):
    class Leaky(PopularityScorer):
        def score_indices(self, user_idx, exclude_seen=True):
            return super().score_indices(user_idx, exclude_seen=False)

    split = leave_last_out(toy)
    leaky = evaluate_next_item(Leaky().fit(split.train), split, EvalConfig())
    honest = evaluate_next_item(PopularityScorer().fit(split.train), split, EvalConfig())
    assert leaky == honest


def test_errors_on_unusable_splits(toy):
    split = leave_last_out(toy)
    with pytest.raises(ValueError, match="exactly one target"):
        evaluate_next_item(PopularityScorer().fit(split.train), cold_start_split(toy, split_time=3))
    with pytest.raises(ValueError, match="needs a split from cold_start_split"):
        evaluate_cold_start(PopularityScorer().fit(split.train), split)
    with pytest.raises(ValueError, match="max_users"):
        EvalConfig(max_users=0)


def test_sample_data_has_learnable_structure():
    report = evaluate(load_folder(SAMPLE_DIR), {"popularity": PopularityScorer, "itemknn": ItemKNNScorer})
    models = report["models"]
    assert models["itemknn"]["ndcg@10"] > 2 * models["popularity"]["ndcg@10"]
    assert report["cold_start"]["cold_items"] >= 5
    assert report["cold_start"]["models"]["itemknn"]["recall@50"] == 0.0  # CF cannot reach cold items


def test_real_ml_latest_small_protocol():
    """Split statistics agree with the data README (1,857 items first rated after the 80 % cut)."""
    from apps.recommender.public_datasets import load_movielens
    from tests.conftest import require_shared_data

    dataset = load_movielens(require_shared_data("recsys", "ml-latest-small"))
    report = evaluate(dataset, {"popularity": PopularityScorer})
    assert report["protocol"]["test_users"] == 610
    assert report["cold_start"]["cold_items"] == 1857
    assert report["cold_start"]["split_time_iso"].startswith("2016-03-22")
    popularity = report["models"]["popularity"]
    assert 0.02 < popularity["hr@10"] < 0.1 and popularity["hr@10"] <= popularity["recall@50"]
    assert report["cold_start"]["models"]["popularity"]["recall@50"] == 0.0

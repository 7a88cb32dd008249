import math

import numpy as np
import pytest

from apps.customer_service.fusion import combine_fields, normalize, reciprocal_rank_fusion, score_fusion


def test_rrf_matches_hand_computed_scores():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=60)
    expected = {"a": 1 / 61 + 1 / 62, "c": 1 / 63 + 1 / 61, "b": 1 / 62, "d": 1 / 63}
    assert list(fused) == ["a", "c", "b", "d"]
    for id_, value in expected.items():
        assert fused[id_] == pytest.approx(value)


def test_rrf_weights_and_k():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "a", "d"]], k=1, weights=[2.0, 0.0])
    assert fused == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 0.5, "d": 0.0})
    assert list(fused) == ["a", "b", "c", "d"]
    # A small k sharpens the top: with k=1 rank 1 in one list beats rank 2 in both.
    sharp = reciprocal_rank_fusion([["x", "y"], ["z", "y"]], k=1)
    assert sharp["x"] == pytest.approx(0.5) and sharp["y"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"rankings": [["a"]], "k": 0}, "k must be"),
        ({"rankings": [["a"]], "weights": [1, 2]}, "weights"),
        ({"rankings": [["a", "a"]]}, "twice"),
    ],
)
def test_rrf_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        reciprocal_rank_fusion(**kwargs)


def test_minmax_and_zscore():
    assert normalize({"x": 1.0, "y": 3.0, "z": 5.0}) == pytest.approx({"x": 0.0, "y": 0.5, "z": 1.0})
    z = normalize({"x": 1.0, "y": 3.0, "z": 5.0}, "zscore")
    sd = math.sqrt(8 / 3)
    assert z == pytest.approx({"x": -2 / sd, "y": 0.0, "z": 2 / sd})
    # No spread: a retriever that matched nothing (all 0) contributes nothing; equal positives count fully.
    assert normalize({"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}
    assert normalize({"a": 0.7}) == {"a": 1.0}
    assert normalize({"a": 2.0, "b": 2.0}, "zscore") == {"a": 0.0, "b": 0.0}
    assert normalize({}) == {}
    with pytest.raises(ValueError, match="non-finite"):
        normalize({"a": float("nan")})
    with pytest.raises(ValueError, match="normalization"):
        normalize({"a": 1.0}, "rank")


def test_score_fusion_matches_hand_computed_scores():
    bm25 = {"a": 10.0, "b": 5.0, "c": 0.0}
    dense = {"a": 0.2, "c": 0.6, "d": 0.4}
    fused = score_fusion([bm25, dense], weights=[0.2, 0.8])
    # minmax: bm25 a=1 b=.5 c=0 (d missing -> floor 0); dense a=0 c=1 d=.5 (b missing -> floor 0)
    assert fused == pytest.approx({"c": 0.8, "d": 0.4, "a": 0.2, "b": 0.1})
    assert list(fused) == ["c", "d", "a", "b"]
    equal = score_fusion([bm25, dense])
    assert equal == pytest.approx({"a": 1.0, "b": 0.5, "c": 1.0, "d": 0.5})


def test_score_fusion_zscore_uses_each_lists_floor_for_missing_ids():
    fused = score_fusion([{"a": 1.0, "b": 3.0}, {"a": 2.0, "c": 4.0}], method="zscore")
    # each list normalises to -1/+1; missing ids take the list's minimum (-1)
    assert fused == pytest.approx({"a": -2.0, "b": 0.0, "c": 0.0})
    with pytest.raises(ValueError, match="weights"):
        score_fusion([{"a": 1.0}], weights=[0.5, 0.5])


def test_combine_fields():
    q = np.array([1.0, 0.2])
    c = np.array([0.5, 0.9])
    assert combine_fields(q, c).tolist() == pytest.approx([1.0, 0.9])
    assert combine_fields(q, c, "weighted", 0.25).tolist() == pytest.approx([0.625, 0.725])
    with pytest.raises(ValueError, match="shapes"):
        combine_fields(q, c[:1])
    with pytest.raises(ValueError, match="question_weight"):
        combine_fields(q, c, "weighted", 1.5)
    with pytest.raises(ValueError, match="max"):
        combine_fields(q, c, "sum")

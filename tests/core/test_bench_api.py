"""The API load benchmark's pure parts: client steps of the curve and the target check."""

from __future__ import annotations

import pytest

from core.bench.api import check_targets, client_steps


def test_client_steps() -> None:
    assert client_steps(20) == [1, 5, 10, 20]
    assert client_steps(5) == [1, 5]
    assert client_steps(1) == [1]
    with pytest.raises(ValueError):
        client_steps(0)


def test_targets_met_and_missed() -> None:
    step = {
        "errors": 0,
        "endpoints": {
            "finance/classify": {"items_per_s": 250.0},
            "recommend/users": {"p95_ms": 80.0},
            "support/ask": {"p95_ms": 900.0},
        },
    }
    targets = check_targets(step)
    assert targets["errors"]["met"] and targets["classify_texts_per_s"]["met"]
    assert targets["recommend_users_p95_ms"] == {"value": 80.0, "target": 50.0, "met": False}
    assert targets["support_ask_p95_ms"]["met"]
    assert check_targets({"errors": 2, "endpoints": {}})["support_ask_p95_ms"]["met"] is None

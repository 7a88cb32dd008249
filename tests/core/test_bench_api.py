"""The API load benchmark's pure parts: client steps of the curve and the target check."""

from __future__ import annotations

import pytest

from core.bench.api import check_targets, client_steps, cpu_bound_capacity


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


def test_quoted_answers_target_takes_the_larger_p95_of_faq_and_extract() -> None:
    step = {
        "errors": 0,
        "endpoints": {
            "support/ask (faq)": {"p95_ms": 300.0},
            "support/ask (extract)": {"p95_ms": 1200.0},
            "support/ask (generate)": {"p95_ms": 9000.0},
        },
    }
    assert check_targets(step)["support_ask_p95_ms"] == {"value": 1200.0, "target": 1000.0, "met": False}


def test_cpu_bound_capacity_of_the_mix() -> None:
    from core.api import BenchRequest

    mix = [
        [BenchRequest("finance/classify", "POST", "/c", {}, items=32)],
        [BenchRequest("recommend/users", "GET", "/u")],
        [BenchRequest("support/ask", "POST", "/a", {}, label_field="route")],
    ]
    profile = {
        "endpoints": {
            "finance/classify": {"requests": 10, "server_cpu_ms": 99.0, "client_cpu_ms": 1.0},
            "recommend/users": {"requests": 10, "server_cpu_ms": 4.0, "client_cpu_ms": 1.0},
            "support/ask (faq)": {"requests": 3, "server_cpu_ms": 20.0, "client_cpu_ms": 1.0},
            "support/ask (extract)": {"requests": 1, "server_cpu_ms": 60.0, "client_cpu_ms": 1.0},
            "support/ask [503]": {"requests": 1, "server_cpu_ms": 1.0, "client_cpu_ms": 1.0},
        }
    }
    capacity = cpu_bound_capacity(profile, mix, cores=2.0)
    # One round: 100 + 5 + (3 * 21 + 61) / 4 = 136 ms of CPU; two cores: 14.7 rounds/s of 32 texts.
    assert capacity["round_cpu_ms"] == 136.0
    assert capacity["rounds_per_s"] == 14.71 and capacity["classify_texts_per_s"] == 470.6

"""Fast checks of the injection-screen benchmark helpers (no ../shared data, no models)."""

from __future__ import annotations

import numpy as np

from bench.support_injection import OLD_REGEX, _faq_row, choose_threshold, prf, redteam_rows


def test_prf_counts_and_rates():
    assert prf([True, True, False, False], [1, 0, 1, 0]) == {
        "precision": 0.5,
        "recall": 0.5,
        "f1": 0.5,
        "fpr": 0.5,
    }


def test_threshold_is_the_smallest_grid_value_under_the_fpr_bound():
    scores = np.array([0.9, 0.8, 0.66, 0.55, 0.1])
    labels = np.array([1, 1, 0, 0, 0])
    assert choose_threshold(scores, labels, max_fpr=0.0) == 0.7
    assert choose_threshold(scores, labels, max_fpr=0.34) == 0.6


def test_red_team_cases_are_planted_where_they_say():
    cases = redteam_rows()
    title = next(c for c in cases if c["where"] == "faq_title")
    assert _faq_row(title)["title"] == title["injection"]
    answer = next(c for c in cases if c["where"] == "faq_answer")
    assert _faq_row(answer)["answer"].endswith(answer["injection"])
    # The baseline regex of before issue 12 misses most of the set: the reason for this work.
    assert sum(bool(OLD_REGEX.search(c["injection"])) for c in cases) < len(cases) / 4

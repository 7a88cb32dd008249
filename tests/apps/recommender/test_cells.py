"""Cell checks of input tables: timestamps."""

from __future__ import annotations

import pandas as pd

from apps.recommender.cells import parse_timestamps


def test_parse_timestamps_flags_bad_and_out_of_range():
    seconds, ok = parse_timestamps(
        pd.Series(["1700000000", "2024-02-30", "", "1700000000000", "2001-09-09T01:46:40Z"])
    )
    assert ok.tolist() == [True, False, False, False, True]
    assert seconds[[0, 4]].tolist() == [1700000000, 1000000000]

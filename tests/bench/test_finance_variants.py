"""``bench.finance_variants``: variants of a finance bench compared seed by seed."""

from __future__ import annotations

import pytest

from bench.finance_variants import collect, plot


def _row(tag: str, val: float | None, test: float | None) -> dict:
    return {"tag": tag, "val_macro_f1": val, "weighted_f1": test, "test_scored": test is not None}


def test_means_per_variant_use_the_latest_row_of_each_seed_and_skip_missing_scores(tmp_path):
    rows = [
        _row("base-s1", 0.80, None),  # an earlier validation-only row, replaced by the next one
        _row("base-s1", 0.84, 0.86),
        _row("base-s2", 0.86, 0.88),
        _row("ls-s1", 0.88, None),  # its test part never scored
        _row("other-s1", 0.99, 0.99),
    ]
    summary = collect(rows, ["base", "ls"], [1, 2])
    assert summary["base"]["mean_val_macro_f1"] == pytest.approx(0.85)
    assert summary["base"]["mean_test_weighted_f1"] == pytest.approx(0.87)
    assert summary["ls"]["seeds"] == {"1": {"val_macro_f1": 0.88, "test_weighted_f1": None}}
    assert summary["ls"]["mean_test_weighted_f1"] is None
    png = tmp_path / "v.png"
    plot(summary, [1, 2], "t", str(png), target=0.88)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="missing-s<seed>"):
        collect(rows, ["missing"], [1, 2])

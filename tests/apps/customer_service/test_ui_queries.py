"""Admin helpers: validated uploads beside the KB, and KB statistics."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.customer_service.errors import SourceError
from apps.customer_service.ui.queries import kb_statistics, save_uploads, source_files, sources_dir
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir  # noqa: F401


def test_uploads_are_checked_before_they_are_saved(tmp_path):
    folder = sources_dir(tmp_path / "kb")
    assert folder == tmp_path / "kb_sources"
    good = ("faq.csv", b"question,answer\nDo you sell plants?,Yes.\n")
    [saved] = save_uploads(folder, [good])
    assert saved.read_bytes() == good[1] and source_files(folder) == [saved]
    with pytest.raises(SourceError, match=r"bad\.csv: row 0 \(line 2\), field 'answer': is empty"):
        save_uploads(folder, [("bad.csv", b"question,answer\nHello?,\n")])
    with pytest.raises(SourceError, match="unsupported file type"):
        save_uploads(folder, [("run.exe", b"MZ")])
    with pytest.raises(SourceError, match="not valid UTF-8"):
        save_uploads(folder, [("latin.md", "# Café\n\nCrème".encode("latin-1"))])
    assert [p.name for p in source_files(folder)] == ["faq.csv"]


def test_statistics_count_kinds_categories_and_show_the_gate(calibrated_kb_dir: Path):  # noqa: F811
    stats = kb_statistics(calibrated_kb_dir)
    assert (
        stats["counts"]["faq"] == 46
        and stats["entries"] == stats["counts"]["faq"] + stats["counts"]["doc"] == 66
    )
    assert sum(row["entries"] for row in stats["by_category"]) == stats["entries"]
    assert stats["gate"]["calibrated"] and stats["gate"]["in_scope"] == 38


def test_queue_helpers_caption_agent_and_chart():
    from datetime import UTC, date, datetime, timedelta

    import pandas as pd

    from apps.customer_service.handoff_queue import Case
    from apps.customer_service.ui.queries import (
        RESOLVE_LABEL,
        TAKE_LABEL,
        agent_name,
        case_caption,
        handoff_times_chart,
    )

    t0 = datetime(2026, 12, 2, 9, tzinfo=UTC)
    case = Case(1, "c", "t", None, "q", "out_of_scope", "waiting", t0, None, None, None, None, "",
                [{"id": "a"}, {"id": "b"}])  # fmt: skip
    assert case_caption(case, t0 + timedelta(minutes=12)) == "out of scope · waiting 12 min · 2 sources"
    taken = Case(
        1, "c", "t", None, "q", "deadline", "taken", t0, t0 + timedelta(seconds=40), "ana", None, None, ""
    )
    assert case_caption(taken) == "answer model busy (deadline) · taken by ana after 40 s · 0 sources"
    assert agent_name(None) == "local" and agent_name("ana") == "ana"
    metrics = pd.DataFrame(
        {"day": [date(2026, 12, 1)], "handed_off": [3], "taken": [3], "resolved": [2],
         "median_take_min": [4.0], "median_resolve_min": [15.0]}
    )  # fmt: skip
    chart = handoff_times_chart(metrics)
    assert list(chart.columns) == ["day", TAKE_LABEL, RESOLVE_LABEL] and chart[TAKE_LABEL].tolist() == [4.0]
    assert chart["day"].tolist() == ["2026-12-01"]


def test_the_queue_dashboard_shows_each_days_cases_still_waiting():
    """A day whose one taken case was quick but whose other three still wait: the backlog chart and the
    table show the three beside the flattering median."""
    from datetime import UTC, datetime, timedelta

    from apps.customer_service.handoff_queue import daily_metrics
    from apps.customer_service.ui.queries import (
        TAKE_LABEL,
        TAKEN_LABEL,
        WAITING_LABEL,
        handoff_backlog_chart,
        handoff_days_table,
    )

    t0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
    quick = (t0, t0 + timedelta(minutes=2), None, "taken")
    metrics = daily_metrics([quick] + [(t0, None, None, "waiting")] * 3)
    chart = handoff_backlog_chart(metrics)
    assert chart.to_dict("records") == [{"day": "2026-12-01", TAKEN_LABEL: 1, WAITING_LABEL: 3}]
    assert handoff_days_table(metrics) == [
        {"day": "2026-12-01", "handed off": 4, TAKEN_LABEL: 1, WAITING_LABEL: 3, "taken %": 25,
         "resolved": 0, TAKE_LABEL: 2.0, "median minutes to resolve": None}
    ]  # fmt: skip


def test_the_adaptation_summary_shows_the_decision_and_its_evidence():
    from apps.customer_service.adaptation import AdaptationReport
    from apps.customer_service.ui.queries import adaptation_summary

    report = AdaptationReport(
        kept=False,
        reason="held-out recall@1 0.086 -> 0.092 (+0.6 points; 18 questions won, 13 lost) ...",
        base="minilm-l6",
        heldout="generated",
        heldout_queries=867,
        frozen={"recall@1": 0.0865},
        adapted={"recall@1": 0.0923},
        significance={"wins": 18, "losses": 13, "p_value": 0.2366},
        pairs=1428,
    ).to_dict()
    assert adaptation_summary(report) == {
        "adapter": "discarded",
        "judge": "867 generated questions",
        "recall@1 frozen": 0.0865,
        "recall@1 adapted": 0.0923,
        "won / lost": "18 / 13",
        "p": 0.2366,
        "training pairs": 1428,
    }
    assert adaptation_summary(None) is None  # a KB built without --adapt shows nothing
    older = {k: v for k, v in report.items() if k != "significance"}  # a report from before the sign test
    assert adaptation_summary(older)["won / lost"] == "-"

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

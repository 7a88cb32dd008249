"""Streamlit pages of the Finance monitor app (shown by ``aigc ui`` and ``aigc finance ui``)."""

from __future__ import annotations

from pathlib import Path

from core.plugins import AppPages

PAGES_DIR = Path(__file__).with_name("pages")
PAGES: tuple[tuple[str, str, str], ...] = (
    ("overview.py", "Sentiment trend", ":material/monitoring:"),
    ("topics.py", "Topic breakdown", ":material/bar_chart:"),
    ("entities.py", "Entities", ":material/domain:"),
    ("items.py", "News items", ":material/newspaper:"),
    ("alerts.py", "Alerts", ":material/notifications:"),
)


def pages() -> AppPages:
    """This app's contribution to the suite (entry point `aigc.ui`)."""
    return AppPages(
        name="finance",
        title="Finance monitor",
        description=(
            "Financial news sentiment and topic monitor: fine-tuned classifiers score incoming "
            "headlines, trends per topic, and alerts when negative news surges."
        ),
        pages=[(str(PAGES_DIR / name), title, icon) for name, title, icon in PAGES],
        permission="finance.view",
    )

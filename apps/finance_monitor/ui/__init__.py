"""Streamlit pages of the Finance monitor app."""

from __future__ import annotations

from pathlib import Path

from core.plugins import AppPages

PAGES_DIR = Path(__file__).with_name("pages")


def pages() -> AppPages:
    """This app's contribution to the suite (entry point `aigc.ui`)."""
    return AppPages(
        name="finance",
        title="Finance monitor",
        description=(
            "Financial news sentiment and topic monitor: fine-tuned classifiers score incoming "
            "headlines, trends per topic, and alerts when negative news surges."
        ),
        pages=[],
    )

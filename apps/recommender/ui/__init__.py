"""Streamlit pages of the Recommender app."""

from __future__ import annotations

from pathlib import Path

from core.plugins import AppPages

PAGES_DIR = Path(__file__).with_name("pages")


def pages() -> AppPages:
    """This app's contribution to the suite (entry point `aigc.ui`)."""
    return AppPages(
        name="recommend",
        title="Recommender",
        description=(
            "Text-embedding recommender: a behaviour-tuned encoder, FAISS candidates and a learned "
            "ranker score top-k items per user in batch jobs."
        ),
        pages=[],
    )

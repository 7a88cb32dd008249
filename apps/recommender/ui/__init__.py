"""Streamlit pages of the Recommender app (shown by ``aigc ui`` and ``aigc recommend ui``)."""

from __future__ import annotations

from pathlib import Path

from core.plugins import AppPages

PAGES_DIR = Path(__file__).with_name("pages")
PAGES: tuple[tuple[str, str, str], ...] = (
    ("user.py", "User recommendations", ":material/person_search:"),
    ("similar.py", "Similar items", ":material/join_inner:"),
    ("evaluation.py", "Model evaluation", ":material/leaderboard:"),
)


def pages() -> AppPages:
    """This app's contribution to the suite (entry point `aigc.ui`)."""
    return AppPages(
        name="recommend",
        title="Recommender",
        description=(
            "Text-embedding recommender: a behaviour-tuned encoder, FAISS candidates and a learned "
            "ranker score top-k items per user in batch jobs."
        ),
        pages=[(str(PAGES_DIR / name), title, icon) for name, title, icon in PAGES],
        permission="recommend.view",
    )

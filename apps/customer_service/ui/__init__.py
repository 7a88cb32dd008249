"""Streamlit pages of the Customer service app (shown by ``aigc ui`` and ``aigc support ui``)."""

from __future__ import annotations

from pathlib import Path

from core.plugins import AppPages

PAGES_DIR = Path(__file__).with_name("pages")
PAGES: tuple[tuple[str, str, str], ...] = (
    ("chat.py", "Agent chat", ":material/support_agent:"),
    ("queue.py", "Hand-off queue", ":material/inbox:"),
    ("admin.py", "Knowledge base", ":material/library_books:"),
    ("gaps.py", "Knowledge gaps", ":material/live_help:"),
    ("models.py", "Model versions", ":material/model_training:"),
)


def pages() -> AppPages:
    """This app's contribution to the suite (entry point `aigc.ui`)."""
    return AppPages(
        name="support",
        title="Customer service",
        description=(
            "A retrieval-augmented support bot that answers agents' questions from the knowledge "
            "base, cites its sources and hands off to a human when unsure."
        ),
        pages=[(str(PAGES_DIR / name), title, icon) for name, title, icon in PAGES],
        permission="chat",
        page_permissions={
            "admin.py": "kb.admin",
            "gaps.py": "kb.admin",
            "models.py": "models.manage",
            "queue.py": "handoffs",
        },
    )

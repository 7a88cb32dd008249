"""Shared pieces of the support pages: cached bot and store, the KB picker. Layout only."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from apps.customer_service.answering import highlight_spans
from apps.customer_service.bot import SupportBot
from apps.customer_service.config import load_bot_config
from apps.customer_service.handoff_notify import notifying_store
from apps.customer_service.knowledge_base import MANIFEST_FILE, default_kb_dir
from apps.customer_service.served_models import active_version, answer_adapter_path
from apps.customer_service.storage import SupportStore
from core.auth import Permission
from core.control_chars import has_control
from core.generation import GenerationWorker, shared_worker
from core.paths import data_dir
from core.storage import get_db_url
from core.ui import auth
from core.ui.markdown import SAFE_URL, escape_markdown

KB_KEY = "support_kb_dir"


@st.cache_resource(show_spinner="Loading the answer model…")
def _generation_worker(model: str | None, adapter: str | None, backend: str | None) -> GenerationWorker:
    """The process's one generation worker: every session's generated answers queue here (FIFO)."""
    from core.generation import Generator

    return shared_worker(Generator(model, adapter, backend=backend))  # type: ignore[arg-type]


@st.cache_resource(show_spinner="Loading the knowledge base and models…")
def _bot(kb_dir: str, built_at: str, models: str | None) -> SupportBot:
    """One bot per KB directory, build and served model version (a re-index, recalibration, promotion
    or rollback changes the key and reloads it)."""
    del built_at, models  # only part of the cache key
    config = load_bot_config()
    answer = config.answer
    adapter = answer_adapter_path(answer.adapter, answer.model)
    worker = _generation_worker(answer.model, adapter, answer.backend)
    return SupportBot.from_dir(kb_dir, config, generator=worker)


def bot(kb_dir: Path) -> SupportBot:
    """The bot over ``kb_dir`` (cached; reloaded after the KB is rebuilt or recalibrated, and after
    ``aigc support refresh`` promotes or rolls back a model version)."""
    manifest = kb_dir / MANIFEST_FILE
    calibration = kb_dir / "calibration.json"
    stamp = f"{manifest.stat().st_mtime_ns}-{calibration.stat().st_mtime_ns if calibration.exists() else 0}"
    return _bot(str(kb_dir), stamp, active_version())


@st.cache_resource(show_spinner=False)
def _store(url: str) -> SupportStore:
    # One per server process: with a webhook configured, it also runs the sender of hand-off
    # notifications in a background thread (apps.customer_service.handoff_notify).
    return notifying_store(url)


def store() -> SupportStore:
    """The conversation store of ``AIGC_DB_URL`` (or the local SQLite file); tables created on first use.

    New hand-offs are announced to the webhook of the ``queue:`` settings; when those are wrong, the
    page says so and stops (a hand-off must not go unannounced).
    """
    try:
        return _store(get_db_url())
    except ValueError as err:
        st.error(
            f"Hand-off notifications are misconfigured (queue: settings): {err}", icon=":material/error:"
        )
        st.stop()
        raise  # not reached: st.stop() ends the run


def data_kbs() -> list[Path]:
    """Knowledge bases under ``$AIGC_DATA_DIR/support`` (the default first, built or not)."""
    found = [default_kb_dir()]
    root = data_dir() / "support"
    if root.is_dir():
        found += sorted(p.parent for p in root.glob("*/" + MANIFEST_FILE))
    return list(dict.fromkeys(found))


def known_kbs() -> list[Path]:
    """The KBs under the data directory, plus (for roles that may type a path) the one picked last."""
    found = data_kbs()
    if KB_KEY in st.session_state and auth.viewer().can(Permission.KB_ANY_PATH):
        found.append(Path(st.session_state[KB_KEY]))
    return list(dict.fromkeys(found))


def kb_picker(label: str = "Knowledge base") -> Path:
    """Sidebar selector of a KB directory; remembered across pages.

    Only the KBs under the data directory are offered; typing another directory (where the
    server would then write uploads and build a KB) is for admins only.
    """
    options = [str(p) for p in known_kbs()]
    current = st.session_state.get(KB_KEY, options[0])
    typed = ""
    with st.sidebar:
        choice = st.selectbox(label, options, index=options.index(current) if current in options else 0)
        if auth.viewer().can(Permission.KB_ANY_PATH):
            typed = st.text_input(
                "…or another KB directory", value="", placeholder="/path/to/kb", key="support_kb_typed"
            )
    if has_control(typed):  # a NUL makes every file call fail ("embedded null byte"): no such path
        st.sidebar.error("A KB directory cannot contain control characters; the list's choice is used.")
        typed = ""
    picked = typed.strip() or choice
    st.session_state[KB_KEY] = picked
    return Path(picked)


def confidence_level(confidence: float, handoff_threshold: float) -> tuple[str, str]:
    """``(label, badge colour)`` of an answer's confidence: high at 0.8 and above, low under the
    KB's hand-off threshold, medium in between."""
    if confidence >= max(0.8, handoff_threshold):
        return "high", "green"
    if confidence >= handoff_threshold:
        return "medium", "orange"
    return "low", "red"


def highlighted_markdown(passage: str, answer: str) -> str:
    """``passage`` as Markdown with the sentences that ``answer`` quotes highlighted.

    Markdown control characters inside the passage are escaped, so KB text cannot change the
    page's layout or add links that the KB does not show as text.
    """
    out, last = [], 0
    for start, end in highlight_spans(answer, passage):
        out.append(escape_markdown(passage[last:start]))
        out.append(f":orange-background[{escape_markdown(passage[start:end])}]")
        last = end
    out.append(escape_markdown(passage[last:]))
    return "".join(out)


def link_markdown(url: str) -> str:
    """``url`` as a Markdown link when it is a plain http(s) URL, else as escaped text."""
    return f"[{escape_markdown(url)}]({url})" if SAFE_URL.fullmatch(url) else escape_markdown(url)


def source_label(source: dict[str, object]) -> str:
    """An expander label for a retrieved KB entry: its id and title as text, never as Markdown."""
    name = escape_markdown(f"[{source['id']}] {source['title']}")
    return f"Source {name} · score {float(source['score']):.3f}"


def kb_ready(kb_dir: Path) -> bool:
    """Whether ``kb_dir`` holds a knowledge base; explains what to run when not."""
    if (kb_dir / MANIFEST_FILE).is_file():
        return True
    st.info(
        f"No knowledge base at `{kb_dir}` yet. Build one on the **Knowledge base** page, or run "
        f"`aigc support index FAQ.csv policies/ --kb-dir {kb_dir}` (or `aigc prepare-demo --app support`)."
    )
    return False

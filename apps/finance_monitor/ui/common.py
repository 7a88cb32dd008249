"""Widgets shared by the finance dashboard pages: the database engine, status, filters, refresh.

Layout only; every query is in :mod:`apps.finance_monitor.ui.queries`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from apps.finance_monitor.digests import Digester
from apps.finance_monitor.ui import queries
from core.console import one_line
from core.storage import StorageError, create_engine, get_db_url, mask_url

PAGES_DIR = Path(__file__).with_name("pages")
ALERTS_PAGE = str(PAGES_DIR / "alerts.py")
REFRESH_CHOICES = {"10 s": 10, "30 s": 30, "1 min": 60, "5 min": 300}
SENTIMENT_COLOURS = {"negative": "#d62728", "neutral": "#9e9e9e", "positive": "#2ca02c"}


@st.cache_resource(show_spinner=False)
def get_engine(url: str) -> Engine:
    """One engine per database URL for the whole server (cached across reruns and sessions)."""
    import apps.finance_monitor.storage  # noqa: F401 - registers the finance tables

    return create_engine(url)


def engine() -> Engine:
    """The engine of ``AIGC_DB_URL`` (or the default SQLite file in ``AIGC_DATA_DIR``)."""
    return get_engine(get_db_url())


@st.cache_resource(show_spinner="Loading the digest models…")
def digest_settings() -> tuple[Digester, str]:
    """A digester with the ``monitor: digest:`` settings (models load once per server) and the rules file."""
    from apps.finance_monitor.config import CONFIG_FILE, MonitorConfig
    from core.config import load_config

    cfg = load_config(MonitorConfig, CONFIG_FILE if CONFIG_FILE.is_file() else None, section="monitor")
    return Digester(cfg.digest), cfg.rules


def compute_digest(db: Engine, alert_id: int) -> bool:
    """Compute (again) and store an alert's digest; when it cannot be computed, say why in one line.

    The settings are the shipped ``configs/finance_monitor.yaml`` (:func:`digest_settings`), not the
    monitor's ``--config``; the baseline is still the rule's the alert was raised under once the
    monitor has stored a digest (see :func:`apps.finance_monitor.digests.get_digest`).

    Returns:
        Whether the digest was computed and stored.
    """
    try:
        digester, rules = digest_settings()
        with st.spinner("Summarising the alert's stories…"):
            queries.compute_alert_digest(db, alert_id, digester, rules)
    except (ImportError, OSError, RuntimeError, ValueError) as err:  # what a model or a settings file raises
        st.error(f"The digest could not be computed: {one_line(err)}", icon=":material/error:")
        return False
    return True


def status_or_stop(db: Engine) -> queries.MonitorStatus:
    """The monitor's status; explains what to run and stops the page when there is nothing to show."""
    try:
        status = queries.monitor_status(db)
    except (StorageError, OperationalError) as err:
        # StorageError already names the (masked) URL and what to do; a failing query does not.
        problem = (
            str(err) if isinstance(err, StorageError) else f"{mask_url(db.url)} cannot be read: {err.orig}"
        )
        st.error(problem, icon=":material/error:")
        st.caption("The page retries on the next refresh; check the server or AIGC_DB_URL.")
        st.stop()
    if not status.ready:
        st.info(
            f"The finance tables do not exist yet in {mask_url(db.url)}. Run `aigc db upgrade`, then "
            "`aigc finance monitor --once` (or `aigc prepare-demo --app finance`)."
        )
        st.stop()
    if status.scored == 0:
        st.info(
            f"No scored news yet ({status.items} items stored). Run `aigc finance monitor --once` "
            "or `--follow` to ingest and score the feed; this page refreshes while it runs."
        )
        st.stop()
    return status


def model_version_choice(db: Engine) -> str | None:
    """Sidebar picker of the model version to show when items were scored by several; ``None``: latest."""
    versions = queries.model_versions(db)
    if len(versions) < 2:
        return None
    latest = "Latest per item"
    choice = st.sidebar.selectbox(
        "Model version",
        [latest, *versions],
        key="finance_model_version",
        help="Re-scoring with a new model keeps the old scores; pick one version to compare.",
    )
    return None if choice == latest else choice


def refresh_interval() -> int | None:
    """Sidebar toggle for auto-refresh; the interval in seconds, or ``None`` when off."""
    with st.sidebar:
        on = st.toggle(
            "Auto-refresh", value=True, key="finance_refresh", help="Reload the data while the monitor runs."
        )
        choice = st.selectbox(
            "Every", list(REFRESH_CHOICES), index=1, key="finance_refresh_every", disabled=not on
        )
    return REFRESH_CHOICES[choice] if on else None


def time_range_choice(default: str = "Last 7 days") -> str:
    """Sidebar picker of a :data:`~apps.finance_monitor.ui.queries.TIME_RANGES` label."""
    names = list(queries.TIME_RANGES)
    return st.sidebar.selectbox("Time range", names, index=names.index(default), key="finance_range")


def range_caption(status: queries.MonitorStatus, start: datetime | None, end: datetime | None) -> None:
    """One line: the shown period, and how fresh the data is."""
    period = "all items" if start is None else f"{_fmt(start)} – {_fmt(end)} UTC"
    fresh = f"newest item {_fmt(status.newest_item)} UTC" if status.newest_item else "no items"
    versions = ", ".join(status.model_versions[:2]) or "none"
    live = " · monitor active" if status.active() else ""
    st.caption(f"{period} · {fresh} · {status.scored} scored items · model {versions}{live}")


def alerts_banner(status: queries.MonitorStatus) -> None:
    """A warning with a link to the alert list when alerts are open or deliveries are dead."""
    dead = queries.delivery_counts(engine())["dead"]
    if dead:
        st.error(f"{dead} alert deliveries failed for good (dead letters)", icon=":material/outbox:")
    if status.open_alerts:
        st.warning(f"{status.open_alerts} open alert(s)", icon=":material/notifications_active:")
    if status.open_alerts or dead:
        st.page_link(ALERTS_PAGE, label="Review alerts", icon=":material/arrow_forward:")


def items_table(frame: pd.DataFrame, key: str, height: int | str = "auto") -> None:
    """Scored items with their labels and confidences as bars."""
    st.dataframe(
        frame,
        key=key,
        hide_index=True,
        height=height,
        column_order=[
            "timestamp",
            "sentiment",
            "sentiment_confidence",
            "title",
            "topic",
            "topic_confidence",
            "entities",
            "source",
            "copies",
        ],  # fmt: skip
        column_config={
            "timestamp": st.column_config.DatetimeColumn("Published (UTC)", format="YYYY-MM-DD HH:mm"),
            "sentiment": st.column_config.TextColumn("Sentiment"),
            "sentiment_confidence": st.column_config.ProgressColumn(
                "Confidence", min_value=0.0, max_value=1.0, format="percent"
            ),
            "title": st.column_config.TextColumn("Headline", width="large"),
            "topic": st.column_config.TextColumn("Topic"),
            "topic_confidence": st.column_config.ProgressColumn(
                "Topic conf.", min_value=0.0, max_value=1.0, format="percent"
            ),
            "entities": st.column_config.ListColumn("Entities", help="Companies the story mentions"),
            "source": st.column_config.TextColumn("Source"),
            "copies": st.column_config.NumberColumn("Copies", help="Syndicated copies of this story"),
        },
    )


def _fmt(when: datetime | None) -> str:
    return "–" if when is None else f"{when:%Y-%m-%d %H:%M}"

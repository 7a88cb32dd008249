"""What people read about an alert in Slack, Teams or an e-mail: a title and a plain-text body.

The text is built from the alert's payload (:func:`apps.finance_monitor.alerts.alert_payload`), so a
delivery retried a day later says exactly what the first attempt said. News titles and sources are
data: each shown on one line and cut short, links only when they are http(s); the channel's
library escapes the rest for its service (Slack's ``<!channel>`` arrives as text, not a mention).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

#: The Alerts page's path in the Streamlit suite (``<app>-<page>``, see ``core.ui.shell.page_plan``).
ALERTS_PAGE = "finance-alerts"
#: Stories listed in a message (the payload carries at most this many).
MAX_STORIES = 5
_TITLE_CHARS = 160
_SOURCE_CHARS = 60
_URL_CHARS = 500
_SUMMARY_CHARS = 900


def alert_message(
    payload: Mapping[str, Any], *, dashboard_url: str = "", reference: str = ""
) -> tuple[str, str]:
    """The title and body of an alert's message.

    The body states the rule, the window, the value against its threshold and baseline, the
    volume, the digest's cited summary when the alert has one, up to :data:`MAX_STORIES` stories with
    their links, and a link to the alert on the dashboard.

    Args:
        payload: The alert's payload as queued in the outbox.
        dashboard_url: Base URL of the Streamlit suite (``https://monitor.example.com``); empty: no link.
        reference: The delivery's idempotency key, so that a repeated message can be recognised.

    Returns:
        ``(title, body)``.
    """
    metric = str(payload.get("metric", ""))
    value = _number(metric, payload.get("value"))
    what = f"{metric.replace('_', ' ')} {value} for {payload.get('scope')} {payload.get('key')!r}"
    title = f"Finance alert #{payload.get('id')}: {what}"
    fired = "above its baseline" if payload.get("reason") == "baseline" else "at or above its threshold"
    baseline = (
        f", baseline {_number(metric, payload.get('baseline_mean'))} ± "
        f"{_number(metric, payload.get('baseline_std'))}"
        if payload.get("baseline_mean") is not None
        else ""
    )
    lines = [
        f"Rule: {payload.get('rule')} ({fired})",
        f"Window: {_when(payload.get('window_start'))} to {_when(payload.get('window_end'))} "
        f"({payload.get('window')} buckets)",
        f"Value: {value} (threshold {_number(metric, payload.get('threshold'))}{baseline})",
        f"Items: {payload.get('volume')}",
    ]
    lines += _summary(payload)
    lines += _stories(payload)
    footer = []
    if dashboard_url:
        footer.append(f"Dashboard: {dashboard_url.rstrip('/')}/{ALERTS_PAGE}?alert={payload.get('id')}")
    if reference:
        footer.append(f"Reference: {reference}")
    if footer:
        lines += ["", *footer]
    return title, "\n".join(lines)


def _summary(payload: Mapping[str, Any]) -> list[str]:
    """The digest's cited summary (:mod:`apps.finance_monitor.digests`) and the items ``[n]`` cites."""
    digest = payload.get("digest")
    if not isinstance(digest, Mapping) or not digest.get("summary_text"):
        return []
    how = "written by the answer model, checked" if digest.get("mode") == "generated" else "quoted headlines"
    lines = ["", f"Summary ({how}): {_one_line(digest['summary_text'], _SUMMARY_CHARS)}"]
    for n, ref in enumerate(list(digest.get("refs") or [])[:MAX_STORIES], 1):
        if isinstance(ref, Mapping):
            source, title = (
                _one_line(ref.get("source"), _SOURCE_CHARS),
                _one_line(ref.get("title"), _TITLE_CHARS),
            )
            lines.append(f"[{n}] {source} · {title}")
    return lines


def _stories(payload: Mapping[str, Any]) -> list[str]:
    stories = list(payload.get("stories") or [])[:MAX_STORIES]
    if not stories:
        return []
    lines = ["", "Stories:"]
    for story in stories:
        lines.append(
            f"- {_when(story.get('timestamp'))} · {_one_line(story.get('source'), _SOURCE_CHARS)} · "
            f"{story.get('sentiment') or 'unscored'} · {_one_line(story.get('title'), _TITLE_CHARS)}"
        )
        link = _link(story.get("url"))
        if link:
            lines.append(f"  {link}")
    more = len(payload.get("item_ids") or []) - len(stories)
    if more > 0:
        lines.append(f"… and {more} more on the dashboard")
    return lines


def _number(metric: str, value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):.0%}" if metric != "volume" else f"{float(value):.1f}"


def _when(value: Any) -> str:
    try:
        return f"{datetime.fromisoformat(str(value)):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return "?"


def _one_line(text: Any, limit: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _link(url: Any) -> str:
    text = str(url or "").strip()
    if not text or len(text) > _URL_CHARS or any(c.isspace() for c in text):
        return ""
    try:
        scheme = urlsplit(text).scheme
    except ValueError:
        return ""
    return text if scheme in ("http", "https") else ""

"""Altair chart specs of the finance dashboard (layout only: the data comes from ``queries``)."""

from __future__ import annotations

import altair as alt
import pandas as pd

ALERT_COLOUR = "#d62728"
TIME_AXIS = alt.Axis(title="UTC", format="%a %d %b %H:%M", labelAngle=0, labelOverlap=True)


def _shade(windows: pd.DataFrame) -> alt.Chart | None:
    """Alert windows as translucent red bands with a tooltip."""
    if windows.empty:
        return None
    return (
        alt.Chart(windows)
        .mark_rect(color=ALERT_COLOUR, opacity=0.2)
        .encode(
            x="window_start:T",
            x2="window_end:T",
            tooltip=[
                alt.Tooltip("id:Q", title="alert"),
                alt.Tooltip("rule:N"),
                alt.Tooltip("key:N"),
                alt.Tooltip("status:N"),
            ],
        )
    )


def trend_lines(long: pd.DataFrame, y_title: str, windows: pd.DataFrame, percent: bool) -> alt.LayerChart:
    """One line with points per key over time, alert windows shaded behind.

    Args:
        long: ``bucket_start``, ``key``, ``value`` (see ``queries.trend_chart``).
        y_title: Axis title.
        windows: Alert windows (``queries.alert_windows``).
        percent: Format the axis as percentages.
    """
    fmt = ".0%" if percent else ".2f"
    lines = (
        alt.Chart(long)
        .mark_line(point=alt.OverlayMarkDef(size=12), strokeWidth=1.8)
        .encode(
            x=alt.X("bucket_start:T", axis=TIME_AXIS),
            y=alt.Y("value:Q", title=y_title, axis=alt.Axis(format=fmt)),
            color=alt.Color("key:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[
                alt.Tooltip("bucket_start:T", title="bucket (UTC)", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("key:N"),
                alt.Tooltip("value:Q", format=fmt, title=y_title),
            ],
        )
    )
    shade = _shade(windows)
    layers = [shade, lines] if shade is not None else [lines]
    return alt.layer(*layers).properties(height=320)


def volume_bars(long: pd.DataFrame) -> alt.Chart:
    """Stories per bucket, stacked by key."""
    return (
        alt.Chart(long[long["value"] > 0])
        .mark_bar()
        .encode(
            x=alt.X("bucket_start:T", axis=TIME_AXIS),
            y=alt.Y("sum(value):Q", title="stories per bucket"),
            color=alt.Color("key:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=[
                alt.Tooltip("bucket_start:T", title="bucket (UTC)", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("key:N"),
                alt.Tooltip("value:Q", title="stories"),
            ],
        )
        .properties(height=260)
    )


def incident(context: pd.DataFrame, windows: pd.DataFrame, y_title: str, percent: bool) -> alt.LayerChart:
    """An alert's metric (points and line), its rolling baseline (dashed) and threshold (red rule).

    Args:
        context: ``queries.alert_context``: indexed by bucket start, ``value``, ``baseline``, ``threshold``.
        windows: The alert's own window (one row of ``queries.alert_windows``).
        y_title: Axis title.
        percent: Format the axis as percentages.
    """
    fmt = ".0%" if percent else ".1f"
    long = (
        context[["value", "baseline"]]
        .reset_index()
        .melt("bucket_start", var_name="series", value_name="y")
        .dropna(subset=["y"])
    )
    x = alt.X("bucket_start:T", axis=TIME_AXIS)
    series = (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=x,
            y=alt.Y("y:Q", title=y_title, axis=alt.Axis(format=fmt)),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=["value", "baseline"], range=["#1f77b4", "#7f7f7f"]),
                legend=alt.Legend(orient="bottom"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N", scale=alt.Scale(domain=["value", "baseline"], range=[[1, 0], [4, 3]]), legend=None
            ),
            tooltip=[
                alt.Tooltip("bucket_start:T", title="bucket (UTC)", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("series:N"),
                alt.Tooltip("y:Q", format=fmt, title=y_title),
            ],
        )
    )
    threshold = float(context["threshold"].iloc[0]) if len(context) else None
    layers: list[alt.Chart] = []
    shade = _shade(windows)
    if shade is not None:
        layers.append(shade)
    layers.append(series)
    if threshold is not None:
        rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(
            color=ALERT_COLOUR, strokeDash=[2, 2]
        )
        layers.append(rule.encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", format=fmt)]))
    return alt.layer(*layers).properties(height=280)


def digest_shares(shares: pd.DataFrame) -> alt.Chart:
    """Negative and positive shares, alert window beside baseline (``queries.digest_shares``)."""
    return (
        alt.Chart(shares)
        .mark_bar()
        .encode(
            x=alt.X("sentiment:N", title=None, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("period:N", sort=["baseline", "alert window"]),
            y=alt.Y(
                "share:Q",
                title="share of stories",
                axis=alt.Axis(format=".0%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            color=alt.Color(
                "period:N",
                title=None,
                scale=alt.Scale(domain=["baseline", "alert window"], range=["#9e9e9e", ALERT_COLOUR]),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                alt.Tooltip("period:N"),
                alt.Tooltip("sentiment:N"),
                alt.Tooltip("share:Q", format=".0%"),
                alt.Tooltip("stories:Q"),
            ],
        )
        .properties(height=220)
    )


def digest_entities(entities: pd.DataFrame) -> alt.Chart:
    """Stories mentioning each entity, most mentioned on top (``queries.digest_entities``)."""
    return (
        alt.Chart(entities)
        .mark_bar()
        .encode(
            x=alt.X("stories:Q", title="stories", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("entity:N", title=None, sort="-x", axis=alt.Axis(labelOverlap=False, labelLimit=220)),
            tooltip=[alt.Tooltip("entity:N"), alt.Tooltip("stories:Q")],
        )
        .properties(height=max(120, 24 * len(entities)))  # one readable row per entity
    )

"""Sentiment trend: negative share, mean sentiment and volume per topic or ticker over time."""

import streamlit as st

from apps.finance_monitor.ui import charts, common, queries
from core.auth import Permission
from core.ui import auth

BUCKETS: dict[str, str | None] = {
    "Auto": None,
    "5 minutes": "5min",
    "15 minutes": "15min",
    "Hour": "hour",
    "6 hours": "6h",
    "Day": "day",
}
BUCKET_NAMES = {bucket: label.lower() for label, bucket in BUCKETS.items() if bucket}
SCOPES = {"Topic": "topic", "Ticker": "entity", "Source": "source"}
SMOOTHING = {"Off": 1, "3 buckets": 3, "6 buckets": 6, "12 buckets": 12}

auth.require(Permission.FINANCE_VIEW, "Sentiment trend")
st.title("Sentiment trend")
db = common.engine()
range_choice = common.time_range_choice()
scope_label = st.sidebar.radio("Group by", list(SCOPES), horizontal=True, key="trend_scope")
bucket_label = st.sidebar.selectbox(
    "Bucket",
    list(BUCKETS),
    index=0,
    key="trend_bucket",
    help=f"Auto: the finest bucket whose points hold about {queries.AUTO_MIN_STORIES} stories of a typical "
    f"shown {scope_label.lower()} (with the smoothing), keeping at least {queries.AUTO_MIN_POINTS} points.",
)
metric = st.sidebar.selectbox(
    "Metric", list(queries.TREND_METRICS), format_func=queries.TREND_METRICS.get, key="trend_metric"
)
smooth_label = st.sidebar.selectbox(
    "Smooth over",
    list(SMOOTHING),
    index=1,
    key="trend_smooth",
    help="Shares and mean sentiment pooled over this many trailing buckets; volume is per bucket.",
)
version = common.model_version_choice(db)
run_every = common.refresh_interval()
by = SCOPES[scope_label]


@st.fragment(run_every=run_every)
def trend_view() -> None:
    status = common.status_or_stop(db)
    start, end = queries.resolve_range(range_choice, status.newest_item, status.oldest_item)
    common.range_caption(status, start, end)
    common.alerts_banner(status)
    scored = queries.load_scored(db, start, end, version)
    options = queries.key_options(scored, by, limit=50)
    keys = st.multiselect(
        f"{scope_label}s", options, default=options[: 6 if by != "entity" else 5], key=f"trend_keys_{by}"
    )
    bucket = BUCKETS[bucket_label]
    if bucket is None:
        bucket, per_point = queries.auto_bucket(
            scored, by=by, keys=keys, start=start, end=end, smooth=SMOOTHING[smooth_label]
        )
        thin = " — few stories per point, so shares jump; smooth over more buckets" if per_point < 3 else ""
        st.caption(
            f"Bucket: {BUCKET_NAMES[bucket]} (auto; about {per_point:.0f} stories per point for the "
            f"median {scope_label.lower()}{thin})"
        )
    table = queries.trend(
        scored,
        by=by,
        bucket=bucket,
        keys=keys,
        start=start,
        end=end,
        smooth=SMOOTHING[smooth_label],
    )
    if not keys or table.empty:
        st.info(f"Pick at least one {scope_label.lower()} with items in this period.")
        return
    stories = table.groupby("key")["volume"].sum()
    cols = st.columns(3)
    cols[0].metric("Stories" if by != "entity" else "Ticker mentions", int(stories.sum()))
    negative = table["negative"].sum() / max(int(table["volume"].sum()), 1)
    cols[1].metric("Negative share", f"{negative:.0%}")
    cols[2].metric("Open alerts", status.open_alerts)
    windows = queries.alert_windows(db, by, keys, start, end)
    st.subheader(queries.TREND_METRICS[metric])
    percent = metric.startswith("share")
    chart = charts.trend_lines(
        queries.trend_chart(table, metric), queries.TREND_METRICS[metric], windows, percent
    )
    st.altair_chart(chart, width="stretch")
    if not windows.empty:
        st.caption(f"Shaded: {len(windows)} alert window(s) on the shown {scope_label.lower()}s.")
    st.subheader("Volume")
    st.altair_chart(charts.volume_bars(queries.trend_chart(table, "volume")), width="stretch")


trend_view()

"""Topic breakdown: stories and sentiment mix per topic (or ticker, source) in the chosen period."""

import streamlit as st

from apps.finance_monitor.ui import common, queries
from core.auth import Permission
from core.ui import auth

SCOPES = {"Topic": "topic", "Ticker": "entity", "Source": "source"}

auth.require(Permission.FINANCE_VIEW, "Topic breakdown")
st.title("Topic breakdown")
db = common.engine()
range_choice = common.time_range_choice()
scope_label = st.sidebar.radio("Break down by", list(SCOPES), horizontal=True, key="breakdown_scope")
version = common.model_version_choice(db)
run_every = common.refresh_interval()


@st.fragment(run_every=run_every)
def breakdown_view() -> None:
    status = common.status_or_stop(db)
    start, end = queries.resolve_range(range_choice, status.newest_item, status.oldest_item)
    common.range_caption(status, start, end)
    table = queries.topic_breakdown(queries.load_scored(db, start, end, version), by=SCOPES[scope_label])
    if table.empty:
        st.info("No scored items in this period.")
        return
    st.subheader(f"Sentiment mix per {scope_label.lower()}")
    st.bar_chart(
        table.head(25),
        x="key",
        y=["negative", "neutral", "positive"],
        color=list(common.SENTIMENT_COLOURS.values()),
        horizontal=True,
        x_label=scope_label.lower(),
        y_label="stories",
    )
    st.subheader("Table")
    st.dataframe(
        table,
        hide_index=True,
        column_config={
            "key": st.column_config.TextColumn(scope_label),
            "stories": st.column_config.NumberColumn("Stories"),
            "share_negative": st.column_config.ProgressColumn(
                "Negative", format="percent", max_value=1.0, color="red"
            ),
            "share_positive": st.column_config.ProgressColumn(
                "Positive", format="percent", max_value=1.0, color="green"
            ),
            "mean_sentiment": st.column_config.NumberColumn("Mean sentiment", format="%+.2f"),
            "mean_confidence": st.column_config.NumberColumn("Mean confidence", format="%.2f"),
        },
    )


breakdown_view()

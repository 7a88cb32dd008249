"""Latest items with their labels and confidence, and the most negative / most positive stories."""

import streamlit as st

from apps.finance_monitor.ui import common, queries
from core.auth import Permission
from core.ui import auth

auth.require(Permission.FINANCE_VIEW, "News items")
st.title("News items")
db = common.engine()
range_choice = common.time_range_choice()
limit = st.sidebar.slider("Rows", 10, 500, 50, step=10, key="items_limit")
version = common.model_version_choice(db)
run_every = common.refresh_interval()


@st.fragment(run_every=run_every)
def items_view() -> None:
    status = common.status_or_stop(db)
    start, end = queries.resolve_range(range_choice, status.newest_item, status.oldest_item)
    common.range_caption(status, start, end)
    scored = queries.load_scored(db, start, end, version)
    left, middle, right = st.columns([2, 2, 3])
    topics = left.multiselect("Topics", queries.key_options(scored, "topic"), key="items_topics")
    sentiments = middle.multiselect("Sentiment", ["negative", "neutral", "positive"], key="items_sentiments")
    search = right.text_input("Headline contains", key="items_search")
    latest, negative, positive = st.tabs(["Latest", "Most negative", "Most positive"])
    with latest:
        frame = queries.latest_items(scored, limit=limit, topics=topics, sentiments=sentiments, search=search)
        st.caption(f"{len(frame)} newest stories (syndicated copies shown once)")
        common.items_table(frame, key="items_latest", height=600)
    with negative:
        common.items_table(queries.extreme_items(scored, "negative", limit=limit, topics=topics), "items_neg")
    with positive:
        common.items_table(queries.extreme_items(scored, "positive", limit=limit, topics=topics), "items_pos")


items_view()

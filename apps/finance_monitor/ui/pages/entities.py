"""Entities: companies in the news with their volume and net sentiment, a trend per company, its stories."""

import streamlit as st

from apps.finance_monitor.ui import charts, common, queries
from core.auth import Permission
from core.ui import auth

BUCKETS = {"Hour": "hour", "Day": "day"}
TOP = 20

auth.require(Permission.FINANCE_VIEW, "Entities")
st.title("Entities")
db = common.engine()
range_choice = common.time_range_choice()
bucket_label = st.sidebar.radio("Bucket", list(BUCKETS), index=1, horizontal=True, key="entities_bucket")
version = common.model_version_choice(db)
run_every = common.refresh_interval()


@st.fragment(run_every=run_every)
def entities_view() -> None:
    status = common.status_or_stop(db)
    start, end = queries.resolve_range(range_choice, status.newest_item, status.oldest_item)
    common.range_caption(status, start, end)
    scored = queries.load_scored(db, start, end, version)
    table = queries.entity_table(scored, queries.company_names(db))
    if table.empty:
        st.info(
            "No story in this period mentions a company. Cashtags ($AAPL) always link; set "
            "`monitor.watchlist` to a watch list CSV (ticker,name,aliases) to link names too, then run "
            "`aigc finance entities relink`."
        )
        return
    st.subheader("Stories and sentiment mix per entity")
    st.bar_chart(
        table.head(TOP),
        x="entity",
        y=["negative", "neutral", "positive"],
        color=list(common.SENTIMENT_COLOURS.values()),
        horizontal=True,
        sort=False,  # most stories first, as in the table
        x_label="entity",
        y_label="stories",
    )
    entity_table(table)
    options = table["entity"].tolist()
    wanted = st.query_params.get("entity")
    index = options.index(wanted) if wanted in options else 0
    names = dict(zip(table["entity"], table["name"], strict=True))
    chosen = st.selectbox(
        "Entity",
        options,
        index=index,
        format_func=lambda e: f"{e} · {names[e]}" if names.get(e) else e,
        key="entities_chosen",
    )
    st.query_params["entity"] = chosen
    entity_detail(scored, chosen, start, end)


def entity_table(table) -> None:  # noqa: ANN001 - a DataFrame from queries.entity_table
    st.dataframe(
        table.assign(share_negative=table["share_negative"] * 100),  # shown as whole percents
        hide_index=True,
        key="entities_table",
        column_config={
            "entity": st.column_config.TextColumn("Entity"),
            "name": st.column_config.TextColumn("Company"),
            "stories": st.column_config.NumberColumn("Stories"),
            "net_sentiment": st.column_config.NumberColumn(
                "Net sentiment", format="%+.2f", help="(positive - negative) / stories"
            ),
            "mean_sentiment": st.column_config.NumberColumn("Mean sentiment", format="%+.2f"),
            "share_negative": st.column_config.ProgressColumn(
                "Negative", format="%.0f%%", min_value=0.0, max_value=100.0, color="red"
            ),
            "last_seen": st.column_config.DatetimeColumn("Last story (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )


def entity_detail(scored, entity: str, start, end) -> None:  # noqa: ANN001 - frame and datetimes
    trend = queries.trend(
        scored, by="entity", bucket=BUCKETS[bucket_label], keys=[entity], start=start, end=end
    )
    windows = queries.alert_windows(db, "entity", [entity], start, end)
    st.subheader(f"{entity}: mean sentiment per {bucket_label.lower()}")
    chart = charts.trend_lines(queries.trend_chart(trend, "mean_sentiment"), "mean sentiment", windows, False)
    st.altair_chart(chart, width="stretch")
    if not windows.empty:
        st.caption(f"Shaded: {len(windows)} alert window(s) on {entity}.")
    st.altair_chart(charts.volume_bars(queries.trend_chart(trend, "volume")), width="stretch")
    st.subheader(f"Stories mentioning {entity}")
    common.items_table(queries.entity_items(scored, entity), key="entity_items", height=400)


entities_view()

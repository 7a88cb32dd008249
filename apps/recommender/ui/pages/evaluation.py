"""Evaluation charts: the hybrid model against its baselines, next-item and cold-start protocols."""

from pathlib import Path

import streamlit as st

from apps.recommender.ui import queries
from core.auth import Permission
from core.ui import auth

auth.require(Permission.RECOMMEND_VIEW, "Model evaluation")
st.title("Model evaluation")
default = queries.data_root() / "eval.json"
chosen = st.sidebar.text_input("Evaluation JSON", value=str(default), key="recommend_eval_path")


@st.cache_data(show_spinner="Evaluating on the shipped sample (about 30 s)...")
def _sample_report() -> dict:
    return queries.sample_report()


try:
    report = queries.load_eval(Path(chosen).expanduser())
except ValueError as err:
    st.error(str(err))
    st.stop()
if report is None:
    st.caption(
        f"No report at `{chosen}` (write one with `aigc recommend eval --json`); computed on the sample."
    )
    report = _sample_report()
protocol = report.get("protocol", {})
dataset = protocol.get("dataset", {})
st.caption(
    f"{protocol.get('split', 'leave-last-out')} on {dataset.get('name', '?')}: "
    f"{dataset.get('users', '?')} users, {dataset.get('items', '?')} items; "
    f"{protocol.get('ranking', '')}"
)
table = queries.metrics_table(report)
st.subheader("Next item")
st.altair_chart(queries.metric_chart(table), width="stretch")
st.table(table)
cold = queries.cold_table(report)
if cold is not None:
    st.subheader("Cold-start items")
    st.caption(
        f"{report['cold_start'].get('cold_items', '?')} items first seen after "
        f"{report['cold_start'].get('split_time_iso', 'the split time')}; "
        "popularity and CF cannot reach them."
    )
    st.altair_chart(queries.metric_chart(cold), width="stretch")
    st.table(cold)

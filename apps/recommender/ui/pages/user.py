"""Pick a user: their history, the model's recommendations with scores and reasons, and the
rows the last batch job wrote for them."""

from pathlib import Path

import streamlit as st

from apps.recommender.ui import common, queries
from core.auth import Permission
from core.ui import auth
from core.ui.markdown import escaped_table

auth.require(Permission.RECOMMEND_VIEW, "User recommendations")
st.title("User recommendations")
model = common.model_or_stop()
batch_path = Path(
    st.sidebar.text_input(
        "Batch output (.parquet/.csv)",
        value=str(queries.data_root() / "recommendations.parquet"),
        key="recommend_batch_path",
    )
).expanduser()
users = model.user_ids()
left, right = st.columns([3, 1])
if len(users) <= 5000:
    user = left.selectbox("User", users, key="recommend_user")
else:
    user = left.text_input("User id", value=users[0], key="recommend_user").strip()
k = right.slider("Recommendations", 5, 50, 10, key="recommend_k")
history = queries.history_table(model, user)
if history.empty:
    st.caption(f"`{user}` has no history in the training data: popular items are recommended.")
hist_col, rec_col = st.columns([2, 3])
with hist_col:
    st.subheader("History")
    st.caption(f"{len(model.history(user))} interactions; newest {len(history)} shown, newest first")
    st.table(escaped_table(history))  # titles are catalogue text: shown as written
with rec_col:
    st.subheader("Recommendations")
    st.caption(
        "Unseen items ranked by the learned ranker; the reason names the features that lifted each one."
    )
    st.table(escaped_table(queries.recommendation_table(model, user, k)))

st.subheader("In the batch output")
try:
    summary = queries.batch_summary(batch_path)
    rows = queries.batch_rows(batch_path, model, user) if summary is not None else None
except ValueError as err:  # not a batch output: one line naming the file and column
    st.error(str(err), icon=":material/error:")
    st.stop()
if summary is None:
    st.caption(f"No batch output at `{batch_path}` (write one with `aigc recommend score --out PATH`).")
else:
    st.caption(
        f"`{batch_path}` ({summary['modified']}): {summary['rows']} rows for {summary['users']} users, "
        f"{summary['items']} distinct items."
    )
    if rows is None or rows.empty:
        st.caption(f"`{user}` is not in this batch output.")
    else:
        st.table(escaped_table(rows))

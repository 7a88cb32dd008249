"""An item's most similar items by (fine-tuned) text vector."""

import streamlit as st

from apps.recommender.ui import common, queries
from core.auth import Permission
from core.ui import auth
from core.ui.markdown import escape_markdown, escaped_table

auth.require(Permission.RECOMMEND_VIEW, "Similar items")
st.title("Similar items")
model = common.model_or_stop()
labels = queries.item_labels(model)
left, right = st.columns([3, 1])
item = left.selectbox("Item", list(labels), format_func=labels.get, key="recommend_item")
k = right.slider("Neighbours", 5, 30, 10, key="recommend_similar_k")
text = model.items.set_index(model.items["item_id"].astype(str)).loc[item, "text"]
st.markdown(f"**{escape_markdown(labels[item])}**")  # catalogue text: shown as written
st.caption(escape_markdown(text))
st.table(escaped_table(queries.similar_table(model, item, k)))

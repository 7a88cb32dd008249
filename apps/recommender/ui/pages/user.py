"""Pick a user: their history, and the model's recommendations with scores and reasons."""

import streamlit as st

from apps.recommender.ui import common, views

st.title("User recommendations")
model = common.model_or_stop()
users = model.user_ids()
left, right = st.columns([3, 1])
if len(users) <= 5000:
    user = left.selectbox("User", users, key="recommend_user")
else:
    user = left.text_input("User id", value=users[0], key="recommend_user").strip()
k = right.slider("Recommendations", 5, 50, 10, key="recommend_k")
history = views.history_table(model, user)
if history.empty:
    st.caption(f"`{user}` has no history in the training data: popular items are recommended.")
hist_col, rec_col = st.columns([2, 3])
with hist_col:
    st.subheader("History")
    st.caption(f"{len(model.history(user))} interactions; newest {len(history)} shown, newest first")
    st.table(history)
with rec_col:
    st.subheader("Recommendations")
    st.caption(
        "Unseen items ranked by the learned ranker; the reason names the features that lifted each one."
    )
    st.table(views.recommendation_table(model, user, k))

"""Model versions (admins): held-out scores of each refresh (served before vs new), promote and roll back."""

import pandas as pd
import streamlit as st

from apps.customer_service.ui import queries
from core.auth import AuditAction, Permission
from core.model_versions import RegistryError
from core.ui import auth

who = auth.require(Permission.MODELS_MANAGE, "Model versions")
st.title("Model versions")
st.caption(
    "Each `aigc support refresh` trains a version of the intent model and the answer adapter and scores "
    "it against the models served before, on a held-out set frozen at the first refresh. A version "
    "becomes active only if it is not worse on any score."
)
try:
    rows = queries.model_versions()
except RegistryError as err:  # a record.json edited by hand: one line naming the file and key
    st.error(f"The model versions cannot be listed: {err}", icon=":material/error:")
    st.stop()
if not rows:
    st.info("No model versions yet: run `aigc support refresh` (try `--dry-run` first).")
    st.stop()

st.dataframe(pd.DataFrame(queries.versions_table(rows)).set_index("version"), width="stretch")

metric = st.segmented_control(
    "Score",
    list(queries.VERSION_METRICS),
    format_func=queries.VERSION_METRICS.get,
    default="intent_accuracy",
    key="support_versions_metric",
)
chart = queries.score_chart_rows(rows, metric or "intent_accuracy")
if chart:
    st.bar_chart(pd.DataFrame(chart), x="version", y="score", color="model", stack=False)
    st.caption("old: the model served when the version was trained; new: the version itself.")
else:
    st.caption("No version has this score yet.")

st.subheader("Switch the active version")
choices = [r["version"] for r in rows if not r["active"]]
if not choices:
    st.caption("Only one version: nothing to switch to.")
else:
    version = st.selectbox("Version", choices, index=len(choices) - 1, key="support_versions_pick")
    label = queries.switch_label(rows, version)
    picked = next(r for r in rows if r["version"] == version)
    if not picked["promoted"]:
        st.warning(f"{version} did not pass the guard (worse on {', '.join(picked['worse'])}).")
    if st.button(label, type="primary", icon=":material/swap_horiz:", key="support_versions_switch"):
        try:
            switch = queries.switch_model_version(version, who.name)
        except RegistryError as err:
            st.error(str(err))
        else:
            action = AuditAction.MODEL_ROLLBACK if switch.action == "rollback" else AuditAction.MODEL_PROMOTE
            auth.audit(action, target=switch.version, details={"previous": switch.previous, "manual": True})
            st.success(f"{switch.version} is active now (was {switch.previous or 'none'}).")
            st.rerun()

try:
    history = queries.version_history()
except RegistryError as err:
    st.error(f"The version history cannot be shown: {err}", icon=":material/error:")
    st.stop()
if history:
    st.subheader("History")
    st.table(pd.DataFrame(history).set_index("when (UTC)"))

"""Alerts: the list, acknowledge and mute, the digest, a drill-down to the items, and the delivery outbox."""

import pandas as pd
import streamlit as st

from apps.finance_monitor import alerts, outbox
from apps.finance_monitor.ui import charts, common, queries
from core.auth import AuditAction, Permission
from core.control_chars import strip_control
from core.ui import auth
from core.ui.markdown import escape_markdown, escaped_table

STATUSES = {"Open": "open", "Acknowledged": "acknowledged", "Muted": "muted", "All": None}
TABLE_ROWS = 25
OUTBOX_COLUMNS = ["id", "alert_id", "sink", "target", "status", "attempts", "next_attempt_at", "last_error"]
MUTE_HOURS = {"1 hour": 1, "6 hours": 6, "24 hours": 24, "7 days": 168}

who = auth.require(Permission.FINANCE_VIEW, "Alerts")
st.title("Alerts")
db = common.engine()
wanted = st.query_params.get("alert")
status_label = st.sidebar.radio("Status", list(STATUSES), index=3 if wanted else 0, key="alerts_status")
run_every = common.refresh_interval()


@st.fragment(run_every=run_every)
def alerts_view() -> None:
    common.status_or_stop(db)
    outbox_view()
    frame = queries.alerts_frame(db, status=STATUSES[status_label])
    if frame.empty:
        st.success(f"No {status_label.lower() if status_label != 'All' else ''} alerts.")
        return
    table = queries.alerts_table(frame)
    # st.table cells render Markdown, and keys (source names, tickers) come from news: escaped.
    st.table(escaped_table(table.head(TABLE_ROWS)))
    if len(table) > TABLE_ROWS:
        st.caption(f"The {TABLE_ROWS} newest of {len(table)} alerts; pick any below.")
    ids = frame["id"].tolist()
    index = ids.index(int(wanted)) if wanted and wanted.isdigit() and int(wanted) in ids else 0
    labels = {i: f"#{i} · {k} · {r}" for i, k, r in zip(ids, frame["key"], frame["rule"], strict=True)}
    chosen = st.selectbox("Alert", ids, index=index, format_func=labels.get, key="alerts_chosen")
    st.query_params["alert"] = str(chosen)
    alert = frame.set_index("id").loc[chosen]
    shown = table.loc[f"#{chosen}"]
    st.subheader(f"Alert #{chosen}: {escape_markdown(str(alert['key']))}")  # news text: as written
    st.markdown(escape_markdown(str(alert["message"])))
    cols = st.columns(4)
    cols[0].metric(alert["metric"].replace("_", " ").capitalize(), shown["Value"])
    cols[1].metric("Threshold", shown["Threshold"], alert["reason"], delta_color="off")
    cols[2].metric("Linked stories", int(alert["items"]), help="Stories in the alert's buckets (copies once)")
    cols[3].metric("Status", alert["status"])
    st.caption(f"Delivered to: {alert['deliveries']}")
    actions(chosen, alert)
    digest_view(chosen)
    st.subheader("Metric around the incident")
    own = queries.alert_windows(db, alert["scope"], [alert["key"]])
    own = own[own["id"] == chosen]
    context = queries.alert_context(db, chosen)
    metric_name = alert["metric"].replace("_", " ")
    st.altair_chart(charts.incident(context, own, metric_name, alert["metric"] != "volume"), width="stretch")
    st.subheader("Items behind the alert")
    common.items_table(queries.alert_drilldown(db, chosen), key="alert_items")


def digest_view(alert_id: int) -> None:
    """The alert's digest: cited summary (links to the references), sentiment against the baseline,
    entities and stories; a button computes a missing or stale one."""
    st.subheader("Digest")
    found = queries.alert_digest(db, alert_id)
    label = "Compute digest" if found is None else "Recompute digest"
    if found is None or not found[1]:
        st.caption(
            "No digest yet for this alert." if found is None else "The alert has new items since this digest."
        )
        clicked = st.button(label, key="alerts_digest_compute", icon=":material/summarize:")
        if clicked and common.compute_digest(db, alert_id):  # else it shows why, in one line
            st.rerun()
    if found is None:
        return
    digest = found[0]
    how = (
        "Written by the answer model; every sentence checked against the items it cites"
        if digest.mode == "generated"
        else "Representative headlines chosen by embedding centrality (quotes)"
    )
    dropped = f" · {len(digest.dropped)} generated sentences dropped as unsupported" if digest.dropped else ""
    st.caption(f"{how}{dropped}" + (f" · {digest.note}" if digest.note else ""))
    st.markdown(queries.digest_summary_markdown(digest) or "_No usable headline to summarise._")
    with st.container(border=True):
        st.markdown("  \n".join(queries.digest_reference_lines(digest)), unsafe_allow_html=True)
    if digest.flagged:
        st.caption(f"{len(digest.flagged)} item(s) read as instructions to a model; kept out of the summary.")
    shares, entities = st.columns(2)
    shares.caption(
        f"Negative and positive stories: alert window vs the {digest.baseline.stories} baseline stories"
    )
    shares.altair_chart(charts.digest_shares(queries.digest_shares(digest)), width="stretch")
    entities.caption("Most mentioned entities (stories)")
    if digest.entities:
        entities.altair_chart(charts.digest_entities(queries.digest_entities(digest)), width="stretch")
    st.dataframe(
        queries.digest_clusters(digest),
        key="alerts_digest_clusters",
        hide_index=True,
        column_config={
            "headline": st.column_config.TextColumn("Story (representative headline)", width="large"),
            "items": st.column_config.NumberColumn("Items", help="Copies and rewordings of the story"),
            "sentiment": st.column_config.TextColumn("Sentiment"),
            "representative": st.column_config.TextColumn("Item id"),
        },
    )


def actions(alert_id: int, alert: pd.Series) -> None:
    """Acknowledge or mute the chosen alert (roles that may), recording who did it."""
    if not auth.viewer().can(Permission.ALERTS_MANAGE):
        st.caption("Your role may not acknowledge or mute alerts.")
        return
    name, ack, mute_for, mute = st.columns([3, 2, 3, 2], vertical_alignment="bottom")
    if who.name is not None:  # signed in: the audit log and the alert record who
        name.text_input("Acknowledged as", value=who.name, disabled=True, key="alerts_who_signed_in")
        by = who.name
    else:
        # Stored in finance_alerts.acknowledged_by (128 characters); control characters are no name.
        by = strip_control(
            name.text_input("Your name", key="alerts_who", placeholder="analyst", max_chars=128)
        )
    acknowledged = alert["status"] == "acknowledged"
    target = f"alert #{alert_id} {alert['key']}"
    if ack.button("Acknowledge", key="alerts_ack", disabled=acknowledged, type="primary", width="stretch"):
        alerts.acknowledge(db, alert_id, by=by)
        auth.audit(AuditAction.ALERT_ACKNOWLEDGE, target=target, details={"alert_id": alert_id, "by": by})
        st.toast(f"Alert #{alert_id} acknowledged")
        st.rerun()
    if alert["status"] == "muted":
        until = alert["muted_until"]
        mute_for.caption(f"Muted until {until:%Y-%m-%d %H:%M} UTC" if until is not None else "Muted")
        if mute.button("Unmute", key="alerts_unmute", width="stretch"):
            alerts.unmute(db, alert_id)
            auth.audit(AuditAction.ALERT_UNMUTE, target=target, details={"alert_id": alert_id})
            st.toast(f"Alert #{alert_id} unmuted")
            st.rerun()
        return
    hours = mute_for.selectbox("Mute rule and key for", list(MUTE_HOURS), index=2, key="alerts_mute_for")
    if mute.button("Mute", key="alerts_mute", width="stretch"):
        until = alerts.mute_for(db, alert_id, MUTE_HOURS[hours])
        auth.audit(
            AuditAction.ALERT_MUTE, target=target, details={"alert_id": alert_id, "until": until.isoformat()}
        )
        st.toast(f"Alert #{alert_id} muted until {until:%Y-%m-%d %H:%M} UTC")
        st.rerun()


def outbox_view() -> None:
    """Dead letters and deliveries waiting for a retry, with retry buttons (targets masked)."""
    counts = queries.delivery_counts(db)
    if not counts["pending"] and not counts["dead"]:
        return
    with st.expander(
        f"Deliveries: {counts['dead']} dead, {counts['pending']} pending, {counts['delivered']} delivered",
        expanded=bool(counts["dead"]),
        icon=":material/outbox:",
    ):
        frame = queries.deliveries_frame(db)
        st.dataframe(
            frame,
            key="alerts_outbox",
            hide_index=True,
            column_order=OUTBOX_COLUMNS,
            column_config={
                "id": st.column_config.NumberColumn("Delivery"),
                "alert_id": st.column_config.NumberColumn("Alert"),
                "next_attempt_at": st.column_config.DatetimeColumn(
                    "Next attempt (UTC)", format="YYYY-MM-DD HH:mm:ss"
                ),
                "last_error": st.column_config.TextColumn("Last error", width="large"),
            },
        )
        pick, one, dead = st.columns([3, 2, 2], vertical_alignment="bottom")
        chosen = pick.selectbox("Delivery", frame["id"].tolist(), key="alerts_outbox_pick")
        if one.button("Retry now", key="alerts_outbox_retry", width="stretch"):
            outbox.retry(db, [int(chosen)])
            st.toast(f"Delivery #{chosen} queued; the monitor sends it on its next pass")
            st.rerun()
        no_dead = not counts["dead"]
        if dead.button("Retry all dead", key="alerts_outbox_retry_dead", disabled=no_dead, width="stretch"):
            n = outbox.retry(db, [], all_dead=True)
            st.toast(f"{n} dead deliveries queued again")
            st.rerun()


alerts_view()

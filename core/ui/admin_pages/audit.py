"""Audit log (admins): sign-ins and failures, lockouts, uploads, re-indexes, alert actions, user changes."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.auth import Permission, audit_events
from core.io.spreadsheet import spreadsheet_csv
from core.storage import utcnow
from core.ui import auth
from core.ui.markdown import escaped_table

auth.require(Permission.AUDIT_READ, "Audit log")
st.title("Audit log")
SHOWN = 100
SPANS = {
    "Last hour": timedelta(hours=1),
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
}
span = st.segmented_control("Period", [*SPANS, "All"], default="Last 24 hours", key="audit_span") or "All"
events = audit_events(utcnow() - SPANS[span] if span in SPANS else None, limit=2000, engine=auth.ui_engine())
actions = sorted({e["action"] for e in events})
chosen = st.multiselect("Actions", actions, key="audit_actions")
shown = [e for e in events if not chosen or e["action"] in chosen]
if not shown:
    st.info("No events in this period.")
else:
    frame = pd.DataFrame(
        [
            {
                "when (UTC)": e["at"].strftime("%Y-%m-%d %H:%M:%S"),
                "actor": e["actor"] or "-",
                "action": e["action"],
                "target": e["target"] or "",
                "outcome": e["outcome"],
                "details": ", ".join(f"{k}={v}" for k, v in e["details"].items()),
            }
            for e in shown
        ]
    )
    # st.table cells render Markdown, and a failed sign-in's name is any visitor's text: escaped.
    st.table(escaped_table(frame.head(SHOWN)).set_index("when (UTC)"))
    st.caption(
        f"The newest {min(SHOWN, len(frame))} of {len(frame)} events. The same log: "
        "`aigc audit --since 24h --json`."
    )
    st.download_button("Download as CSV", spreadsheet_csv(frame), file_name="aigc-audit.csv", mime="text/csv")

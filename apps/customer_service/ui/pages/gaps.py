"""Knowledge gaps: cluster the questions the bot could not answer; approve, edit or reject draft answers."""

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from apps.customer_service.errors import KBFormatError, SourceError
from apps.customer_service.ui import common, queries
from core.auth import AuditAction, Permission
from core.console import one_line
from core.storage import StorageError
from core.ui import auth
from core.ui.markdown import escape_markdown

METHODS = {
    "correction": ("from an agent's correction", "green"),
    "generated": ("draft · written by the answer model", "blue"),
    "extractive": ("draft · quoted from passages", "orange"),
    "none": ("no draft", "gray"),
}
STATUS = {"pending": "orange", "approved": "green", "rejected": "red"}
REBUILD_ERRORS = (SourceError, KBFormatError, FileNotFoundError, ValueError, KeyError, StorageError)

who = auth.require(Permission.KB_ADMIN, "Knowledge gaps")
st.title("Knowledge gaps")
kb_dir = common.kb_picker()
if not common.kb_ready(kb_dir):
    st.stop()
db = common.store()
FLASH = "gaps_flash"
if FLASH in st.session_state:  # the outcome of the last approval or rejection (set before a rerun)
    message, note = st.session_state.pop(FLASH)
    st.success(message)
    if note:
        st.info(note)

with st.expander("Find gaps", expanded=True, icon=":material/manage_search:"):
    since = st.date_input("Stored questions since (UTC; empty: all)", value=None, key="gaps_since")
    upload = st.file_uploader("…or a file of questions (column `question`)", type=["csv"], key="gaps_file")
    generate = st.toggle(
        "Let the answer model write drafts (else quote passages)", value=True, key="gaps_gen"
    )
    if st.button("Find gaps", type="primary", icon=":material/travel_explore:"):
        with st.spinner("Asking the bot, clustering, drafting answers…"):
            try:
                report_id = queries.find_gaps(
                    kb_dir,
                    common.bot(kb_dir),
                    db,
                    since=since,
                    questions=(upload.name, upload.getvalue()) if upload else None,
                    generate=generate,
                    created_by=who.name,
                )
            except (SourceError, ValueError) as err:
                st.error(escape_markdown(str(err)))
            except (StorageError, SQLAlchemyError) as err:  # the database went away or failed a query
                st.error(f"No gap report: the database failed. {one_line(getattr(err, 'orig', None) or err)}")
                st.stop()  # the stored report below would need the same database
            else:
                auth.audit(AuditAction.KB_GAP_REPORT, target=str(kb_dir), details={"report": report_id})

found = queries.latest_report(db, kb_dir)
if found is None:
    st.info("No gap report for this knowledge base yet: press **Find gaps**.")
    st.stop()
report, drafts = found
missing = queries.unsynced(db, common.bot(kb_dir).kb)
if missing:
    st.warning(
        f"Approved but not yet in the knowledge base: {', '.join(missing)}.", icon=":material/sync_problem:"
    )
    if st.button("Add them to the knowledge base", icon=":material/sync:"):
        try:
            queries.sync_approved(db, kb_dir)
        except REBUILD_ERRORS as err:
            st.error(f"The knowledge base is unchanged. {escape_markdown(str(err))}")
        else:
            st.rerun()

source = "a questions file" if report["source"] == "file" else queries.since_label(report["since"])
st.caption(f"Report {report['id']} of {report['created_at']:%Y-%m-%d %H:%M} UTC, from {source}.")
cols = st.columns(4)
cols[0].metric("Questions read", report["questions"])
cols[1].metric("Not answered", report["gaps"])
cols[2].metric("Clusters", len(drafts))
cols[3].metric("Unclustered", len(report["unclustered"]))
if drafts:
    sizes = [{"cluster": f"{d['rank'] + 1}. {d['label']}", "questions": d["size"]} for d in drafts]
    st.bar_chart(sizes, x="cluster", y="questions", horizontal=True, sort="-questions")


def review(draft: dict) -> None:
    """One cluster: its questions, nearest entries, the draft and (while pending) approve / edit / reject."""
    words, colour = METHODS[draft["method"]]
    st.badge(words, color=colour)
    st.badge(draft["status"], color=STATUS[draft["status"]])
    st.markdown("**Questions** (most typical first)")
    st.dataframe({"question": draft["questions"]}, hide_index=True)
    st.caption("Nearest KB entries: " + (", ".join(draft["nearest"]) or "none"))
    if draft["note"]:
        st.caption(draft["note"])
    if draft["flagged"]:
        st.warning(
            f"The injection screen reads this draft or its question as instructions to a model "
            f"({draft['flag_reason']}). Edit it; it cannot be approved as it is.",
            icon=":material/gpp_maybe:",
        )
    if draft["status"] != "pending":
        st.text(
            f"{draft['status']} by {draft['reviewed_by'] or 'admin'} at {draft['reviewed_at']:%Y-%m-%d %H:%M}"
        )
        if draft["entry_id"]:
            st.text(f"KB entry {draft['entry_id']}: {draft['question']}\n{draft['final_answer']}")
        return
    key = draft["id"]
    if draft["draft_sources"]:
        st.caption("Draft sources: " + ", ".join(draft["draft_sources"]))
    question = st.text_input("FAQ question", value=draft["questions"][0], key=f"gap_q_{key}")
    answer = st.text_area(
        "Answer", value=queries.strip_citations(draft["draft_answer"] or ""), key=f"gap_a_{key}", height=150
    )
    approve_col, reject_col = st.columns(2)
    if approve_col.button("Approve", key=f"gap_ok_{key}", type="primary", icon=":material/check:"):
        details = {
            "draft": key,
            "edited": answer.strip() != queries.strip_citations(draft["draft_answer"] or ""),
        }
        try:
            with st.spinner("Adding the entry to the knowledge base…"):
                approval, note = queries.approve_gap(
                    db, key, kb_dir, who.name, question, answer, common.bot(kb_dir).retriever.embedder
                )
        except REBUILD_ERRORS as err:
            auth.audit(AuditAction.KB_GAP_APPROVE, str(kb_dir), details | {"error": str(err)[:500]}, "failed")
            st.error(escape_markdown(str(err)))
        else:
            auth.audit(AuditAction.KB_GAP_APPROVE, str(kb_dir), details | {"entry": approval.entry_id})
            message = f"Added {approval.entry_id}; the knowledge base now has {approval.entries} entries."
            st.session_state[FLASH] = (message, note)
            st.rerun()
    if reject_col.button("Reject", key=f"gap_no_{key}", icon=":material/close:"):
        try:
            queries.reject(db, key, kb_dir, who.name)
        except (ValueError, KeyError) as err:
            st.error(escape_markdown(str(err)))
        else:
            auth.audit(AuditAction.KB_GAP_REJECT, str(kb_dir), {"draft": key})
            st.session_state[FLASH] = (f"Rejected the draft of cluster {draft['rank'] + 1}.", None)
            st.rerun()


for draft in drafts:
    title = common.escape_markdown(draft["label"])
    with st.expander(f"{draft['rank'] + 1}. {title} · {draft['size']} questions · {draft['status']}"):
        review(draft)
if report["unclustered"]:
    with st.expander(f"Unclustered questions ({len(report['unclustered'])})"):
        st.dataframe({"question": report["unclustered"]}, hide_index=True)

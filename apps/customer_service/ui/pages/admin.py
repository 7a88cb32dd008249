"""Knowledge base admin: upload FAQ files and documents, (re)index with progress, KB statistics,
and a sample of asked questions to label."""

import streamlit as st

from apps.customer_service.errors import KBFormatError, SourceError
from apps.customer_service.ui import common, queries
from core.auth import AuditAction, Permission
from core.ui import auth
from core.ui.markdown import escape_markdown

auth.require(Permission.KB_ADMIN, "Knowledge base")
st.title("Knowledge base")
kb_dir = common.kb_picker()
sources_dir = queries.sources_dir(kb_dir)

st.subheader("Sources")
uploads = st.file_uploader(
    "Add FAQ files (CSV, JSON, JSONL) or documents (Markdown, text)",
    type=[s.lstrip(".") for s in queries.UPLOAD_SUFFIXES],
    accept_multiple_files=True,
)
if uploads and st.button("Save uploaded files", icon=":material/upload:"):
    try:
        saved = queries.save_uploads(sources_dir, [(f.name, f.getvalue()) for f in uploads])
    except SourceError as err:
        st.error(escape_markdown(str(err)))
    else:
        auth.audit(AuditAction.KB_UPLOAD, target=str(kb_dir), details={"files": [p.name for p in saved]})
        st.success(f"Saved {escape_markdown(', '.join(p.name for p in saved))} to `{sources_dir}`.")
include_sample = st.checkbox("Include the shipped sample store (FAQ + policies)", value=True)
files = queries.source_files(sources_dir)
if files:
    st.table([{"file": p.name, "bytes": p.stat().st_size} for p in files])
else:
    st.caption(f"No uploaded files in `{sources_dir}` yet.")

if st.button("(Re)index", type="primary", icon=":material/sync:"):
    bar = st.progress(0.0, text="Starting…")
    try:
        result = queries.reindex(
            kb_dir,
            queries.index_sources(sources_dir, include_sample),
            progress=lambda fraction, text: bar.progress(fraction, text=text),
        )
    except (SourceError, KBFormatError, FileNotFoundError, ValueError) as err:
        auth.audit(
            AuditAction.KB_REINDEX, target=str(kb_dir), outcome="failed", details={"error": str(err)[:500]}
        )
        st.error(f"Indexing failed; the previous knowledge base is unchanged. {escape_markdown(str(err))}")
    else:
        report = result.report
        auth.audit(
            AuditAction.KB_REINDEX,
            target=str(kb_dir),
            details={"entries": result.entries, "added": report.added, "removed": report.removed},
        )
        auth.audit(
            AuditAction.KB_CALIBRATE,
            target=str(kb_dir),
            details={"calibrated": result.calibration_note is None},
        )
        st.success(
            f"Indexed {result.entries} entries: added {report.added}, updated {report.updated}, "
            f"removed {report.removed}, unchanged {report.unchanged} ({report.seconds:.1f} s)."
        )
        if result.calibration_note:
            st.info(result.calibration_note)

st.subheader("Statistics")
if common.kb_ready(kb_dir):
    stats = queries.kb_statistics(kb_dir)
    cols = st.columns(4)
    cols[0].metric("Entries", stats["entries"])
    cols[1].metric("FAQ", stats["counts"].get("faq", 0))
    cols[2].metric("Document passages", stats["counts"].get("doc", 0))
    cols[3].metric("Dialogues", stats["counts"].get("dialogue", 0))
    st.caption(f"Encoder `{stats['embedding_model']}` (dim {stats['dim']}), built {stats['built_at']}")
    if adaptation := queries.adaptation_summary(stats.get("adaptation")):
        st.markdown("**Encoder adaptation** (`aigc support index --adapt`)")
        st.caption(stats["adaptation"].get("reason", ""))
        st.table([adaptation])
    st.bar_chart(stats["by_category"], x="category", y="entries", horizontal=True)
    st.markdown("**Answer gate**")
    st.table([stats["gate"]])
    if stats["flagged"]:
        st.warning(
            f"{len(stats['flagged'])} entries read as instructions to the answer model; they are never "
            "quoted or sent to it. Fix or remove them in the source files.",
            icon=":material/gpp_maybe:",
        )
        st.table(stats["flagged"])
    st.markdown("**Conversations**")
    st.table([common.store().stats()])

st.subheader("Questions to label")
st.caption(
    "A random sample of the questions customers asked on this knowledge base, for your team to label "
    "with the entries that answer them (column `gold_ids`, ids separated by `;`; leave a question "
    "nobody can place empty). Labelled, it judges `aigc support index --adapt --judge-questions FILE` "
    "fairly (empty rows are skipped) and, without its empty rows, feeds `aigc support eval` — unlike "
    "rated-up answers or hand-offs, which the current retriever chose."
)
size = st.columns([1, 3])[0].number_input(
    "Questions in the sample", min_value=10, max_value=5000, value=200, step=10
)
if st.button("Draw a sample", icon=":material/casino:"):  # reads every question: only when asked
    st.session_state["support_question_sample"] = (
        str(kb_dir),
        *queries.question_sample(common.store(), kb_dir, int(size)),
    )
drawn = st.session_state.get("support_question_sample")
if drawn is not None and drawn[0] == str(kb_dir):
    _kb, text, sampled, asked = drawn
    if not sampled:
        st.caption("No questions asked on this knowledge base yet.")
    elif st.download_button(
        f"Download {sampled} of {asked} questions to label (CSV)",
        text,
        file_name="questions-to-label.csv",
        mime="text/csv",
        icon=":material/download:",
    ):
        auth.audit(AuditAction.QUESTIONS_EXPORT, target=str(kb_dir), details={"rows": sampled})

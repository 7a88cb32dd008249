"""Hand-off queue: waiting conversations oldest first; take one, answer beside the bot's draft, resolve.

Resolving, the agent may pick which intent the customer's question was, among the labels the refresh
trains on (``training_data.agent_intent_labels``); nothing is pre-selected, never the bot's guess.
Customers' and agents' text is shown escaped (as written, never as layout or links).
"""

from pathlib import Path

import streamlit as st

from apps.customer_service.config import load_bot_config, load_refresh_config
from apps.customer_service.handoff import HandoffError
from apps.customer_service.handoff_queue import Case, HandoffQueue
from apps.customer_service.knowledge_base import MANIFEST_FILE
from apps.customer_service.served_models import intent_model_path
from apps.customer_service.training_data import agent_intent_labels
from apps.customer_service.ui import common, queries
from apps.customer_service.ui.common import escape_markdown
from core.auth import Permission
from core.ui import auth

CASE_KEY = "support_queue_case"
FLASH_KEY = "support_queue_flash"
INTENT_LABEL = "Intent (trains the intent model)"
NOT_SET = "(not set)"
ROLE_AVATARS = {"user": "user", "assistant": ":material/smart_toy:", "agent": ":material/support_agent:"}

who = auth.require(Permission.HANDOFFS, "Hand-off queue")
agent = queries.agent_name(who.name)
is_admin = who.can(Permission.CONVERSATIONS_ALL)  # may act on other agents' cases
st.title("Hand-off queue")
queue = HandoffQueue(common.store())


def flash(kind: str, message: str) -> None:
    st.session_state[FLASH_KEY] = (kind, message)
    st.rerun()


def act(action, *args, success: str) -> None:  # noqa: ANN001 - a bound HandoffQueue method
    try:
        action(*args)
    except (HandoffError, KeyError) as err:  # someone was quicker, or the case is gone
        flash("warning", str(err))
    else:
        flash("success", success)


if message := st.session_state.pop(FLASH_KEY, None):
    getattr(st, message[0])(message[1])

counts = queue.counts()
workable = queue.cases("taken", taken_by=None if is_admin else agent)
cols = st.columns(4)
cols[0].metric("Waiting", counts["waiting"])
cols[1].metric("Taken", counts["taken"])
cols[2].metric("Yours", sum(c.taken_by == agent for c in workable))
cols[3].metric("Resolved", counts["resolved"])


def use_suggestion(key: str, text: str) -> None:
    st.session_state[key] = text


def source_text(case: Case, entry_id: str) -> str | None:
    """The KB entry's text, when the conversation's knowledge base is here."""
    kb_dir = Path(case.kb) if case.kb else None
    if kb_dir is None or not (kb_dir / MANIFEST_FILE).is_file():
        return None
    bot = common.bot(kb_dir)
    return bot.kb.get(entry_id).text if entry_id in bot.kb else None


def history(case: Case) -> None:
    for message in common.store().messages(case.conversation_id):
        role = message["role"]
        with st.chat_message(role if role != "agent" else "human", avatar=ROLE_AVATARS.get(role)):
            if role == "agent":
                st.caption(f"Agent {message['author'] or ''}")
            elif role == "assistant" and message["handoff"]:
                st.caption("Bot · handed off")
            st.markdown(escape_markdown(message["content"]))


def suggestion(case: Case, reply_key: str) -> None:
    st.markdown("**Bot's suggestion**")
    if case.suggestion:
        with st.container(border=True):
            st.markdown(escape_markdown(case.suggestion))
        st.button(
            "Start from the suggestion",
            key=f"queue_use_{case.id}",
            icon=":material/content_copy:",
            on_click=use_suggestion,
            args=(reply_key, case.suggestion),
        )
    else:
        st.caption("No suggestion: nothing in the knowledge base is close enough to this question.")
    suggested = [s for s in case.sources if s["suggested"]]
    others = [s for s in case.sources if not s["suggested"]]
    for source in suggested:
        with st.expander(common.source_label(source)):
            text = source_text(case, source["id"])
            if text:
                st.markdown(common.highlighted_markdown(text, case.suggestion))
            if source["url"]:
                st.markdown(escape_markdown(source["url"]))
    if others:
        with st.expander("Other retrieved entries"):
            rows = [{"id": s["id"], "title": s["title"], "score": round(s["score"], 3)} for s in others]
            st.dataframe(rows, hide_index=True)  # st.table cells render Markdown


def intent_choices() -> list[str]:
    """The labels the refresh trains on (none, said so, when the settings or files cannot be read)."""
    try:
        return agent_intent_labels(load_refresh_config(), intent_model_path(load_bot_config().intent_model))
    except (OSError, ValueError) as err:
        st.caption(f"No intent labels to offer: {err}")
        return []


def work_on(case: Case) -> None:
    st.caption(queries.case_caption(case) + f" · conversation {case.conversation_id[:8]}")
    history(case)
    reply_key = f"queue_reply_{case.id}"
    left, right = st.columns([3, 2], gap="large")
    with left, st.form(f"queue_reply_form_{case.id}", clear_on_submit=True, border=False):
        text = st.text_area("Your reply to the customer", key=reply_key, height=160)
        if st.form_submit_button("Send reply", type="primary", icon=":material/send:"):
            act(queue.reply, case.id, agent, text, is_admin, success="Reply sent.")
    with right:
        suggestion(case, reply_key)
    buttons = st.container(horizontal=True, vertical_alignment="bottom")
    intent = buttons.selectbox(
        INTENT_LABEL,
        [None, *intent_choices()],
        format_func=lambda label: NOT_SET if label is None else label,
        key=f"queue_intent_{case.id}",
        help="Which intent the customer's question was: `aigc support refresh` trains the intent model "
        "on it. Leave it (not set) when unsure.",
        width=300,
    )
    if buttons.button("Resolve", key=f"queue_resolve_{case.id}", icon=":material/task_alt:"):
        st.session_state.pop(CASE_KEY, None)
        done = f"Hand-off {case.id} resolved" + (f" as {intent}." if intent else ".")
        act(queue.resolve, case.id, agent, is_admin, intent, success=done)
    if buttons.button("Put back in the queue", key=f"queue_release_{case.id}", icon=":material/undo:"):
        st.session_state.pop(CASE_KEY, None)
        act(queue.release, case.id, agent, is_admin, success=f"Hand-off {case.id} is waiting again.")


st.subheader("Your conversations" if not is_admin else "Taken conversations")
if not workable:
    st.caption("None taken. Take a waiting conversation below.")
else:
    labels = {
        # radio labels render Markdown: the question is the customer's text, shown as typed
        c.id: f"#{c.id} · {escape_markdown(c.question[:60])}" + (f" · {c.taken_by}" if is_admin else "")
        for c in workable
    }
    ids = list(labels)
    current = st.session_state.get(CASE_KEY)
    picked = st.radio(
        "Conversation",
        ids,
        index=ids.index(current) if current in ids else 0,
        format_func=labels.get,
        horizontal=True,
        label_visibility="collapsed",
    )
    st.session_state[CASE_KEY] = picked
    work_on(next(c for c in workable if c.id == picked))

st.subheader("Waiting")
waiting = queue.waiting()
if not waiting:
    st.caption("Nobody is waiting.")
for case in waiting:
    with st.container(border=True):
        text, button = st.columns([5, 1], vertical_alignment="center")
        text.markdown(escape_markdown(case.question) or "_(no question)_")
        text.caption(queries.case_caption(case) + (f" · {', '.join(s['id'] for s in case.sources[:3])}"))
        if button.button("Take", key=f"queue_take_{case.id}", type="primary", icon=":material/pan_tool:"):
            st.session_state[CASE_KEY] = case.id
            act(queue.take, case.id, agent, success=f"You took hand-off {case.id}.")

st.subheader("Time to take and to resolve")
metrics = queue.metrics(days=30)
if metrics.empty:
    st.caption("No hand-offs in the last 30 days.")
else:
    st.bar_chart(
        queries.handoff_times_chart(metrics),
        x="day",
        y=[queries.TAKE_LABEL, queries.RESOLVE_LABEL],
        y_label="minutes (median)",
        x_label="day of hand-off (UTC)",
        stack=False,
    )
    # The medians count only the cases someone took: show what each day left waiting beside them.
    st.bar_chart(
        queries.handoff_backlog_chart(metrics),
        x="day",
        y=[queries.TAKEN_LABEL, queries.WAITING_LABEL],
        y_label="hand-offs",
        x_label="day of hand-off (UTC)",
        stack=True,
    )
    st.dataframe(queries.handoff_days_table(metrics), hide_index=True)
    st.caption(
        f"Last 30 days: {int(metrics['handed_off'].sum())} hand-offs, {int(metrics['taken'].sum())} taken, "
        f"{int(metrics['resolved'].sum())} resolved, {int(metrics['waiting'].sum())} still waiting; "
        "both times are counted from the hand-off, and the medians only over the cases taken or resolved."
    )

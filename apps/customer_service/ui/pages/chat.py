"""Agent chat: streamed answers with sources, intent and confidence badges, hand-off banner, feedback.

A handed-off conversation shows its state (waiting for an agent, taken, resolved) and the human
agents' replies from the Hand-off queue page. Customers' questions (also those sent through the API)
and agents' replies are shown escaped: as written, never as layout, links or images.
"""

from typing import Any

import streamlit as st

from apps.customer_service.bot import EmptyQuestionError, SupportBot
from apps.customer_service.handoff import REASON_LABELS
from apps.customer_service.handoff_queue import Case, HandoffQueue
from apps.customer_service.prompts import HELD_REPLIES
from apps.customer_service.storage import SupportStore
from apps.customer_service.ui import common
from apps.customer_service.ui.common import (
    confidence_level,
    escape_markdown,
    highlighted_markdown,
    link_markdown,
    source_label,
)
from core.auth import Permission
from core.generation import queue_status
from core.ui import auth

CONV_KEY = "support_conversation"
HANDOFF_BANNER = "Hand-off: the bot is not confident it can answer this. A human agent should take over."
STATE_LABELS = {
    "waiting": "waiting for an agent",
    "taken": "with an agent",
    "resolved": "resolved by an agent",
}

who = auth.require(Permission.CHAT, "Agent chat")
# Agents see their own conversations; admins (and everyone while sign-in is off) see all.
owner_filter = None if who.can(Permission.CONVERSATIONS_ALL) else who.name
st.title("Agent chat")
kb_dir = common.kb_picker()
if not common.kb_ready(kb_dir):
    st.stop()
db: SupportStore = common.store()
bot: SupportBot = common.bot(kb_dir)


def sidebar_conversations() -> None:
    with st.sidebar:
        if st.button("New conversation", icon=":material/add_comment:", width="stretch"):
            st.session_state.pop(CONV_KEY, None)
        st.subheader("Past conversations")
        past = db.conversations(limit=20, owner=owner_filter)
        if not past:
            st.caption("None yet.")
        for conv in past:
            flags = (f" · {STATE_LABELS[conv['state']]}" if conv["state"] in STATE_LABELS else "") + (
                f" · {conv['intent']}" if conv["intent"] else ""
            )
            by = f" · {conv['owner']}" if owner_filter is None and conv["owner"] else ""
            label = f"{escape_markdown(conv['title'][:40])}{flags}{by}"  # a title is the customer's text
            current = st.session_state.get(CONV_KEY) == conv["id"]
            if st.button(label, key=f"support_conv_{conv['id']}", type="primary" if current else "secondary"):
                st.session_state[CONV_KEY] = conv["id"]
                st.rerun()


ROUTE_LABELS = {
    "faq": "curated FAQ answer",
    "extract": "quoted from sources",
    "generate": "generated, verified",
    "handoff": "hand-off",
}


def badges(message: dict[str, Any]) -> None:
    row = st.container(horizontal=True)
    with row:
        confidence = message["confidence"] or 0.0
        level, colour = confidence_level(confidence, bot.calibration.handoff_threshold)
        st.badge(f"confidence {confidence:.2f} ({level})", color=colour, icon=":material/speed:")
        if message["intent"]:
            st.badge(f"intent: {message['intent']}", color="violet", icon=":material/label:")
        st.badge(f"route: {message['route']}", color="gray")
        if message["route"] in ROUTE_LABELS and message["route"] != "handoff":
            st.badge(ROUTE_LABELS[message["route"]], color="blue", icon=":material/verified:")
        if message.get("latency_ms") is not None:
            st.badge(f"{message['latency_ms']:.0f} ms", color="gray", icon=":material/timer:")


def sources(message: dict[str, Any]) -> None:
    cited = [s for s in message["sources"] if s["cited"]]
    for source in cited:
        with st.expander(source_label(source)):
            if source["id"] in bot.kb:
                # The sentences the answer quotes are highlighted in their passage.
                st.markdown(highlighted_markdown(bot.kb.get(source["id"]).text, message["content"]))
            if source["url"]:
                st.markdown(link_markdown(source["url"]))
    others = [s for s in message["sources"] if not s["cited"]]
    if others:
        with st.expander("Other retrieved entries"):
            # A dataframe, not st.table: table cells render Markdown (links, images from KB titles).
            rows = [{"id": s["id"], "title": s["title"], "score": round(s["score"], 3)} for s in others]
            st.dataframe(rows, hide_index=True)


def feedback(message: dict[str, Any]) -> None:
    saved = message["feedback"] or {}
    default = None if not saved else (1 if saved["rating"] > 0 else 0)
    rating = st.feedback("thumbs", key=f"support_fb_{message['id']}", default=default)
    if rating == 1 and default != 1:
        db.record_feedback(message["id"], 1, agent=who.name)
        st.toast("Thanks, marked as helpful.")
    elif rating == 0:
        with st.form(key=f"support_fix_{message['id']}", border=False):
            corrected = st.text_area(
                "Correct answer (becomes an FAQ entry via `aigc support export-feedback`)",
                value=saved.get("corrected_answer") or "",
                key=f"support_fix_text_{message['id']}",
            )
            if st.form_submit_button("Save correction"):
                db.record_feedback(message["id"], -1, corrected, agent=who.name)
                st.toast("Correction saved.")
        if default != 0:
            db.record_feedback(message["id"], -1, saved.get("corrected_answer"), agent=who.name)


def render(message: dict[str, Any]) -> None:
    if message["role"] == "agent":  # a person's reply from the hand-off queue
        with st.chat_message("human", avatar=":material/support_agent:"):
            st.caption(f"Agent {message['author'] or ''}")
            st.markdown(escape_markdown(message["content"]))
        return
    with st.chat_message(message["role"]):
        if message["role"] == "user":
            st.markdown(escape_markdown(message["content"]))
            return
        if message["content"] in HELD_REPLIES:  # a person has the conversation: the bot only said so
            st.caption("With a person: the bot did not answer this.")
            st.markdown(message["content"])
            return
        if message["handoff"]:
            st.warning(HANDOFF_BANNER, icon=":material/support_agent:")
            if message["handoff_reason"]:
                st.caption(
                    f"Reason: {REASON_LABELS.get(message['handoff_reason'], message['handoff_reason'])}"
                )
        st.markdown(escape_markdown(message["content"]))  # quoted KB text: shown as written
        badges(message)
        sources(message)
        feedback(message)


def ask(question: str, history: list[dict[str, str]], case: Case | None) -> None:
    """Answer ``question``; while ``case`` (the conversation's open hand-off) is waiting or taken, the
    bot only says that a person will answer, and the question joins that case."""
    with st.chat_message("user"):
        st.markdown(escape_markdown(question))
    with st.chat_message("assistant"):
        try:
            if case is not None:
                stream = bot.held(question, case.reason, case.status == "taken")
            else:
                stream = bot.stream(question, history)
        except EmptyQuestionError as err:
            st.error(str(err))
            return
        waiting = st.empty()

        def show_queue(position: int) -> None:
            if position > 0:
                waiting.info(f"queued (position {position})", icon=":material/hourglass_top:")
            else:
                waiting.empty()

        with queue_status(show_queue):
            st.write_stream(escape_markdown(chunk) for chunk in stream)
    answer = stream.answer
    conv_id = st.session_state.get(CONV_KEY) or db.start_conversation(question[:80], kb_dir, owner=who.name)
    st.session_state[CONV_KEY] = conv_id
    db.add_exchange(conv_id, question, answer)
    if answer.notice:
        st.session_state["support_notice"] = answer.notice
    st.rerun()


sidebar_conversations()
if notice := st.session_state.pop("support_notice", None):
    st.info(notice)
conversation = st.session_state.get(CONV_KEY)


def _owned(conversation_id: str) -> bool:
    try:
        return owner_filter is None or db.conversation_owner(conversation_id) == owner_filter
    except KeyError:
        return False


if conversation and not _owned(conversation):
    st.session_state.pop(CONV_KEY, None)  # never show another agent's (or a deleted) conversation
    conversation = None
messages = db.messages(conversation) if conversation else []
if not messages:
    st.caption(f"Ask a customer's question; answers come from `{kb_dir}` with their sources.")
for msg in messages:
    render(msg)
open_case = HandoffQueue(db).open_case(conversation) if conversation else None
if open_case is not None:
    who_has_it = f"taken by {open_case.taken_by}" if open_case.status == "taken" else "waiting for an agent"
    st.info(
        f"This conversation is with a person (hand-off {open_case.id}, {who_has_it}): the bot does not "
        "answer it until the hand-off is resolved.",
        icon=":material/support_agent:",
    )
if question := st.chat_input("Type the customer's question"):
    ask(question, [{"role": m["role"], "content": m["content"]} for m in messages], open_case)

"""The support pages in Streamlit's AppTest, inside the suite's navigation, on the calibrated sample KB."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from apps.customer_service.storage import SupportStore
from apps.customer_service.ui import PAGES_DIR, pages, queries
from core.ui.shell import APP_SCRIPT
from tests.apps.customer_service.bot_fixtures import calibrated_kb_dir, data_kb_dir  # noqa: F401


@pytest.fixture(autouse=True)
def support_only(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")


def open_page(name: str) -> AppTest:
    at = AppTest.from_file(APP_SCRIPT, default_timeout=180)
    at.run()
    at.switch_page(os.path.relpath(PAGES_DIR / name, Path(APP_SCRIPT).parent)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_pages_are_listed_for_the_suite():
    app = pages()
    assert app.name == "support"
    assert [title for _path, title, _icon in app.pages] == [
        "Agent chat", "Hand-off queue", "Knowledge base", "Knowledge gaps", "Model versions",
    ]  # fmt: skip
    assert app.permission_for(str(PAGES_DIR / "queue.py")) == "handoffs"
    assert all(Path(path).is_file() for path, _title, _icon in app.pages)


def test_chat_without_a_kb_says_what_to_run():
    at = open_page("chat.py")
    assert "aigc support index" in at.info[0].value


def test_chat_answers_with_sources_badges_and_stores_the_conversation(data_kb_dir):  # noqa: F811
    at = open_page("chat.py")
    at.chat_input[0].set_value("i forgot my login password").run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    assert any(t.startswith("Click Sign in, then Forgot password") for t in texts)
    labels = [e.label for e in at.expander]
    # labels are escaped Markdown (KB text shown as written): compare what the browser shows
    assert any(
        label.replace("\\", "").startswith("Source [acct-01] Resetting your password · score")
        for label in labels
    )
    badges = " ".join(t for t in texts if "-badge[" in t)  # st.badge renders as badge markdown
    assert "confidence" in badges and "route: faq" in badges
    assert not at.warning  # no hand-off banner
    [conversation] = SupportStore().conversations()
    assert conversation["messages"] == 2 and conversation["title"] == "i forgot my login password"

    at.chat_input[0].set_value("how tall is mount everest").run()
    assert not at.exception
    assert "Hand-off" in at.warning[0].value
    assert "Reason: out of scope" in [c.value for c in at.caption]
    sidebar = [b.label for b in at.sidebar.button]
    assert any(label.startswith("i forgot my login password · waiting for an agent") for label in sidebar)


def test_a_customers_question_is_shown_as_written_never_as_links_or_images(data_kb_dir):  # noqa: F811
    """A question sent through the API is the customer's text: no working link or remote image for agents."""
    from apps.customer_service.bot import Answer
    from apps.customer_service.ui.common import escape_markdown

    question = "Refund? [click here](https://evil.example) ![x](https://evil.example/pixel.png) **now**"
    store = SupportStore()
    conversation = store.start_conversation(question, data_kb_dir)  # what the API does
    store.add_exchange(conversation, question, Answer("A person will help.", [], 0.1, True))
    at = open_page("chat.py")
    at.session_state["support_conversation"] = conversation  # chat.CONV_KEY: the open conversation
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    assert escape_markdown(question) in texts and question not in texts
    assert not any("](https://evil.example" in t for t in texts)
    assert any(b.label.startswith(escape_markdown(question[:40])) for b in at.sidebar.button)

    at.chat_input[0].set_value("[typed](https://evil.example) too").run()  # typed on the page
    assert not at.exception, [e.value for e in at.exception]
    assert "\\[typed\\]\\(https\\://evil.example\\) too" in [m.value for m in at.markdown]


def test_a_passage_answer_is_quoted_with_its_sentences_highlighted_in_the_source(data_kb_dir):  # noqa: F811
    at = open_page("chat.py")
    at.chat_input[0].set_value("can i return a mattress after sleeping on it").run()
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    answer = next(t for t in texts if t.startswith("Opened mattresses"))
    # Quoted KB text is escaped Markdown (a KB's [link](url) or ![image](url) shows as written):
    assert "\\[policies/returns.md\\#items\\-we\\-cannot\\-take\\-back\\-0\\]" in answer
    badges = " ".join(t for t in texts if "-badge[" in t)
    assert "route: extract" in badges and "quoted from sources" in badges
    highlighted = [t for t in texts if ":orange-background[" in t]
    assert any(
        "orange-background[Opened mattresses, pillows and duvets cannot be returned" in t for t in highlighted
    )


def test_confidence_levels_and_highlighting_escape_markdown():
    from apps.customer_service.ui.common import confidence_level, highlighted_markdown

    assert confidence_level(0.95, 0.5) == ("high", "green")
    assert confidence_level(0.6, 0.5) == ("medium", "orange")
    assert confidence_level(0.3, 0.5) == ("low", "red")
    marked = highlighted_markdown(
        "See [terms](http://x.example). Items must be unused.", "Items must be unused. [r]"
    )
    assert marked == "See \\[terms\\]\\(http\\://x.example\\). :orange-background[Items must be unused.]"


def test_thumbs_down_with_a_correction_is_saved(data_kb_dir):  # noqa: F811
    at = open_page("chat.py")
    at.chat_input[0].set_value("i forgot my login password").run()
    store = SupportStore()
    conv = store.conversations()[0]["id"]
    answer_id = store.messages(conv)[1]["id"]
    at.session_state[f"support_fb_{answer_id}"] = 0
    at.run()
    at.text_area(key=f"support_fix_text_{answer_id}").input("Use the reset link we email you.")
    [save] = [b for b in at.button if b.label == "Save correction"]
    save.click().run()
    assert not at.exception, [e.value for e in at.exception]
    [correction] = store.corrections()
    assert correction.answer == "Use the reset link we email you."


def test_admin_shows_statistics_and_reindexes_uploads(data_kb_dir):  # noqa: F811
    at = open_page("admin.py")
    assert at.metric[1].label == "FAQ" and at.metric[1].value == "46"
    assert at.get("vega_lite_chart"), "the entries-per-category chart"
    entries_before = int(at.metric[0].value)
    uploads = data_kb_dir.parent / "kb_sources"
    uploads.mkdir()
    (uploads / "extra.csv").write_text(
        'id,question,answer\nextra-1,Do you sell plants?,"Yes, our garden range has 200 plants."\n',
        encoding="utf-8",
    )
    at.run()
    [reindex] = [b for b in at.button if b.label == "(Re)index"]
    reindex.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, at.error[0].value if at.error else ""
    assert "Indexed" in at.success[0].value and "added 1" in at.success[0].value
    assert int(at.metric[0].value) == entries_before + 1


def test_admin_draws_a_sample_of_asked_questions_to_label(data_kb_dir):  # noqa: F811
    at = open_page("admin.py")
    for question in ("i forgot my login password", "how do i track my order", "=1+1 what is this"):
        at_chat = open_page("chat.py")
        at_chat.chat_input[0].set_value(question).run()
    at.run()
    assert not at.get("download_button")  # nothing is read until a sample is asked for
    [draw] = [b for b in at.button if b.label == "Draw a sample"]
    draw.click().run()
    assert not at.exception, [e.value for e in at.exception]
    [download] = at.get("download_button")
    assert download.proto.label == "Download 3 of 3 questions to label (CSV)"
    text, sampled, asked = queries.question_sample(SupportStore(), data_kb_dir, 2)
    assert (sampled, asked) == (2, 3) and text.startswith("query,gold_ids,retrieved,route,asked_at")
    every, _, _ = queries.question_sample(SupportStore(), data_kb_dir, 10)
    assert "'=1+1 what is this" in every and "\n=1" not in every  # safe to open in a spreadsheet


def test_a_handoff_for_an_uncovered_specific_shows_its_reason(data_kb_dir):  # noqa: F811
    at = open_page("chat.py")
    at.chat_input[0].set_value("Do you ship to Canada?").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Hand-off" in at.warning[0].value
    assert "Reason: question names something the sources do not cover" in [c.value for c in at.caption]
    texts = [m.value for m in at.markdown]
    assert any("don't mention \u201cCanada\u201d" in t for t in texts)
    assert not any("28 countries" in t for t in texts)


def test_the_bot_does_not_answer_a_conversation_a_person_has(data_kb_dir):  # noqa: F811
    from apps.customer_service.handoff_queue import HandoffQueue
    from apps.customer_service.prompts import WITH_AGENT, WITH_QUEUE

    at = open_page("chat.py")
    at.chat_input[0].set_value("how tall is mount everest").run()  # out of scope: handed off
    assert "bot does not answer it" in at.info[0].value and "waiting for an agent" in at.info[0].value
    at.chat_input[0].set_value("i forgot my login password").run()  # an FAQ, but a person has it
    assert not at.exception, [e.value for e in at.exception]
    texts = [m.value for m in at.markdown]
    assert WITH_QUEUE in texts and not any(t.startswith("Click Sign in, then Forgot") for t in texts)
    # the holding reply is no low-confidence answer: no hand-off banner of its own, no rating
    assert len(at.warning) == 1 and "With a person: the bot did not answer this." in [
        c.value for c in at.caption
    ]
    queue = HandoffQueue(SupportStore())
    [case] = queue.waiting()
    queue.take(case.id, "ana")
    at.chat_input[0].set_value("hello?").run()
    assert "taken by ana" in at.info[0].value and WITH_AGENT in [m.value for m in at.markdown]
    assert len(queue.cases("all")) == 1  # the follow-ups joined the open case


def test_a_typed_kb_directory_with_a_nul_is_refused_not_an_exception(data_kb_dir):  # noqa: F811
    at = open_page("admin.py")
    at.text_input(key="support_kb_typed").set_value("/tmp/kb\x00x").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("cannot contain control characters" in e.value for e in at.error)
    assert at.metric[1].label == "FAQ" and at.metric[1].value == "46"  # the list's KB is shown instead

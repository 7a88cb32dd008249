"""Follow-up rewriting before retrieval."""

from __future__ import annotations

from apps.customer_service.config import RewriteConfig
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from apps.customer_service.rewrite import is_follow_up, key_terms, rewrite_question

HISTORY = [
    {"role": "user", "content": "Do you ship orders to Switzerland?"},
    {"role": "assistant", "content": "We deliver to 28 European countries [ship-03]."},
]


def test_key_terms_drop_stop_words_and_repeats():
    assert key_terms("Do you ship orders to Switzerland? Ship fast!") == [
        "ship",
        "orders",
        "switzerland",
        "fast",
    ]


def test_short_or_anaphoric_questions_are_follow_ups():
    assert is_follow_up("and how much?")
    assert is_follow_up("what about pillows?")
    assert is_follow_up("How long does it usually take to arrive at my address in Bern?")
    assert not is_follow_up("How long does delivery to an address in Switzerland usually take?")
    assert not is_follow_up("how tall is mount everest")  # a new topic, not a follow-up


def test_follow_up_gets_the_previous_user_turns_terms():
    assert (
        rewrite_question("how long does it take?", HISTORY)
        == "ship orders switzerland | how long does it take?"
    )


def test_standalone_questions_and_first_turns_are_unchanged():
    question = "Which payment methods do you accept for online orders?"
    assert rewrite_question(question, HISTORY) == question
    assert rewrite_question("how long does it take?", []) == "how long does it take?"
    assert (
        rewrite_question("how long does it take?", HISTORY, RewriteConfig(enabled=False))
        == "how long does it take?"
    )


def test_rewriting_makes_a_follow_up_retrieve_the_topic(sample_kb_dir, minilm):
    retriever = Retriever(KnowledgeBase.load(sample_kb_dir), embedder=minilm)

    def top3(query: str) -> set[str]:
        return {h.id for h in retriever.search(query, k=3)}

    international = {"ship-03", "policies/shipping.md#international-shipping-0"}
    follow_up = "and what does that cost?"
    assert not international & top3(follow_up)
    assert international <= top3(rewrite_question(follow_up, HISTORY))

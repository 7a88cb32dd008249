"""Requests for a human in seven languages, through obfuscation; questions that only mention people."""

from __future__ import annotations

import pytest

from apps.customer_service.human_request import asks_for_human, human_request_rule

ASKS = [
    ("Can I please talk to a real person?", "en"),
    ("i want to speak with an agent", "en"),
    ("connect me to a human", "en"),
    ("Agent please", "en"),
    ("HUMAN!", "en"),
    ("let me talk to someone about my refund", "en"),
    ("transfer me to customer service", "en"),
    ("I need a live agent, this bot is useless", "en"),
    ("Ich möchte mit einem Mitarbeiter sprechen", "de"),
    ("Kann ich mit jemandem sprechen?", "de"),
    ("je veux parler à un conseiller", "fr"),
    ("Puis-je parler à quelqu’un ?", "fr"),
    ("Quiero hablar con una persona", "es"),
    ("vorrei parlare con un operatore", "it"),
    ("Quero falar com um atendente", "pt"),
    ("Ik wil met een medewerker spreken", "nl"),
    ("ｔａｌｋ ｔｏ ａ ｈｕｍａｎ", "en"),  # full-width letters (NFKC)
    ("talk to a h\u200buman", "en"),  # a zero-width space inside the word
    ("talk to а human", "en"),  # a Cyrillic 'а'
]
MENTIONS = [
    "Will the courier agent ring the bell?",
    "does the delivery person need a signature",
    "can a human check my return before the refund",
    "the person who delivered my parcel was rude",
    "how do i reset my password",
    "can i talk about returns here",
    "Tengo que hablar con mi banco",
    "Mein Paket ist beschädigt",
    "who is the agent for returns",
]


@pytest.mark.parametrize(("text", "language"), ASKS)
def test_requests_for_a_human_are_found(text, language):
    assert human_request_rule(text) == language


@pytest.mark.parametrize("text", MENTIONS)
def test_questions_that_only_mention_people_are_not(text):
    assert not asks_for_human(text)

"""Did the customer ask for a human? A small multilingual phrase rule set.

The bot hands a conversation to the queue with reason ``asked_for_human`` when the question asks
to talk to a person ("can I speak to a human", "Ich möchte mit einem Mitarbeiter sprechen",
"je veux parler à un conseiller", "quiero hablar con una persona"...), whatever retrieval finds.

The text is data: it is only matched against the rules below, never executed or sent anywhere.
It is normalised first (:func:`core.text_screen.fold_text`: NFKC, invisible characters removed,
look-alike letters mapped to Latin), then lower-cased with accents dropped, so the rules are
written in plain ASCII. Each rule needs a request (talk / speak / connect / transfer...) *and* a
person (human, agent, representative...), or an unambiguous phrase ("real person"), so a
question that merely mentions an agent ("can the delivery agent leave it at the door") does not
match. Languages: English, German, French, Spanish, Italian, Portuguese and Dutch.

Example:
    >>> asks_for_human("Can I please talk to a real person?")
    True
    >>> asks_for_human("Will the courier agent ring the bell?")
    False
"""

from __future__ import annotations

import re
import unicodedata

from core.text_screen import fold_text

_EN_PERSON = (
    r"(?:a\s+|an\s+|some\s+|one\s+of\s+your\s+|your\s+|the\s+)?(?:real\s+|live\s+|actual\s+)?"
    r"(?:human(?:\s+being)?|person|agent|representative|rep|operator|someone|somebody|anyone|"
    r"(?:customer\s+)?(?:service|support|care)(?:\s+(?:agent|person|representative|team))?|"
    r"staff(?:\s+member)?|manager|supervisor|advisor|adviser)\b"
)
_EN_ASK = r"(?:i\s+(?:want|need|would\s+like|'d\s+like)|can\s+i\s+(?:have|get)|give\s+me|get\s+me)"
_DE_PERSON = (
    r"(?:jemandem|menschen|(?:einem|einer|einen|ihrem|ihrer|dem|der)\s+(?:echten\s+|realen\s+)?"
    r"(?:menschen|mitarbeiter(?:in)?|person|berater(?:in)?|agenten|kundendienst|kundenservice|"
    r"sachbearbeiter(?:in)?))"
)
_FR_PERSON = (
    r"(?:quelqu'?\s?un|(?:un|une|le|la|votre)\s+(?:vrai\s+|vraie\s+|veritable\s+)?"
    r"(?:humain|personne|conseiller|conseillere|agent|operateur|operatrice|service\s+client))"
)
_ES_PERSON = (
    r"(?:alguien|(?:un|una|el|la|su)\s+(?:persona|humano|agente|operador|operadora|asesor|asesora|"
    r"representante|ser\s+humano))"
)
_IT_PERSON = (
    r"(?:qualcuno|(?:un|una|l'|un\s+vero)\s*(?:operatore|operatrice|persona|umano|agente|addetto|consulente))"
)
_PT_PERSON = (
    r"(?:alguem|(?:um|uma|o|a)\s+(?:atendente|humano|pessoa|agente|operador|operadora|representante))"
)

#: ``(language, pattern)``; every pattern runs on lower-case ASCII-folded text (see :func:`normalise`).
RULES: tuple[tuple[str, str], ...] = (
    ("en", rf"\b(?:talk|speak|chat|get\s+through)\s+(?:to|with)\s+{_EN_PERSON}"),
    (
        "en",
        rf"\b(?:connect|transfer|put|pass|escalate|forward)\s+me\s+(?:over\s+|through\s+)?(?:to|with)\s+{_EN_PERSON}",
    ),
    (
        "en",
        rf"\b{_EN_ASK}\s+(?:a\s+|an\s+)?(?:real\s+|live\s+)?(?:human|person|agent|representative|operator)\b",
    ),
    ("en", r"\b(?:real|live|actual)\s+(?:human|person)\b"),
    ("en", r"\bhuman\s+(?:agent|being|please|support|help)\b"),
    ("en", r"^\s*(?:an?\s+)?(?:agent|human|operator|representative)(?:\s+please)?\s*[.!?]*\s*$"),
    ("de", rf"\bmit\s+{_DE_PERSON}\s+(?:sprechen|reden|telefonieren|verbunden)"),
    ("de", r"\b(?:verbinden|stellen)\s+sie\s+mich\b"),
    ("de", r"\b(?:echten|realen|menschlichen)\s+(?:menschen|mitarbeiter|ansprechpartner|person)\b"),
    ("fr", rf"\b(?:parler|discuter)\s+(?:a|avec)\s+{_FR_PERSON}"),
    (
        "fr",
        r"\b(?:un\s+(?:vrai|veritable)\s+humain|une\s+(?:vraie|veritable)\s+personne|conseiller\s+humain)\b",
    ),
    ("fr", r"\bmettez-?\s?moi\s+en\s+relation\b"),
    ("es", rf"\bhablar\s+con\s+{_ES_PERSON}"),
    ("es", r"\b(?:persona\s+real|agente\s+humano)\b"),
    ("it", rf"\bparlare\s+con\s+{_IT_PERSON}"),
    ("it", r"\b(?:operatore\s+umano|persona\s+vera|persona\s+reale)\b"),
    ("pt", rf"\bfalar\s+com\s+{_PT_PERSON}"),
    ("pt", r"\b(?:atendente\s+humano|pessoa\s+real)\b"),
    (
        "nl",
        r"\b(?:spreken|praten|bellen)\s+met\s+(?:een\s+)?(?:echte\s+)?(?:mens|medewerker|persoon|iemand)\b",
    ),
    ("nl", r"\bmet\s+(?:een\s+)?(?:echte\s+)?(?:mens|medewerker|persoon|iemand)\s+(?:spreken|praten)\b"),
    ("nl", r"\b(?:echte|levende)\s+(?:mens|persoon|medewerker)\b"),
)
_COMPILED = tuple((language, re.compile(pattern)) for language, pattern in RULES)


def normalise(text: str) -> str:
    """``text`` folded for matching: :func:`~core.text_screen.fold_text`, lower case, accents dropped."""
    folded = unicodedata.normalize("NFKD", fold_text(text).lower())
    return "".join(ch for ch in folded if not unicodedata.combining(ch)).replace("’", "'")


def human_request_rule(text: str) -> str | None:
    """The language of the first rule that finds a request for a human in ``text`` (``None``: none)."""
    folded = normalise(text)
    for language, pattern in _COMPILED:
        if pattern.search(folded):
            return language
    return None


def asks_for_human(text: str) -> bool:
    """Whether ``text`` asks to talk to a person rather than the bot."""
    return human_request_rule(text) is not None


__all__ = ["RULES", "asks_for_human", "human_request_rule", "normalise"]

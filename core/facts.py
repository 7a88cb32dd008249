"""Checkable facts in a sentence: numbers, URLs, e-mail addresses, phone numbers, names, negation.

A small generator restating a passage most often goes wrong in exactly these tokens: "4 weeks"
for "30 days", a shop URL that exists nowhere, a country the passage never names, "you can" for
"you cannot". They are cheap to extract and compare exactly, so a claim's facts must all occur in
the text it cites (:func:`unsupported_facts`); meaning is checked separately (:mod:`core.grounding`).

Comparison is normalised: numbers by value ("1,000" = "1000", "07" = "7", "ten" = "10"), URLs
without scheme, ``www.`` and trailing slash, phone numbers by their digits, names and e-mail
addresses case-insensitively by whole word.

Example:
    >>> facts = extract_facts("Call +44 20 7946 0958 or see https://shop.example/returns within 30 days.")
    >>> sorted(facts.numbers), sorted(facts.urls), sorted(facts.phones)
    (['20', '30', '44', '7946', '958'], ['shop.example/returns'], ['442079460958'])
    >>> unsupported_facts("Returns take 4 weeks.", "You have 30 days to return an item.")
    ['number 4']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Facts", "extract_facts", "is_negated", "unsupported_facts"]

_URL = re.compile(
    r"(?:https?://|www\.)[^\s<>\"'\])]+|\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|org|net|io|co|uk|de|fr|"
    r"eu|us|info|biz|example|app|dev|shop|store|help)\b(?:/[^\s<>\"'\])]*)?",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().-]{6,}\d(?![\w.]\d)")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")
_CODE = re.compile(r"\b(?=[A-Za-z0-9-]*\d)(?=[A-Za-z0-9-]*[A-Za-z])[A-Za-z0-9][A-Za-z0-9-]{2,}\b")
_NEGATION = re.compile(
    r"\b(?:not|no|never|none|nothing|nobody|neither|nor|cannot|without|unable)\b|n[’']t\b", re.IGNORECASE
)
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
    "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19",
    "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90",
    "hundred": "100", "thousand": "1000", "twice": "2", "dozen": "12",
}  # fmt: skip
# Capitalised words that are not names wherever they stand.
_NOT_NAMES = frozenset(
    [
        "i",
        "i'm",
        "i've",
        "i'll",
        "i'd",
        "ok",
        "yes",
        "no",
        "please",
        "note",
        "hi",
        "hello",
        "dear",
        "thanks",
        "thank",
        "you",
    ]
)


@dataclass(frozen=True)
class Facts:
    """The checkable facts of a text, normalised for comparison (see the module docstring)."""

    numbers: frozenset[str]
    urls: frozenset[str]
    emails: frozenset[str]
    phones: frozenset[str]
    names: frozenset[str]


def _norm_url(url: str) -> str:
    url = re.sub(r"^(?:https?://)?(?:www\.)?", "", url.strip().lower())
    return url.rstrip("/.,;:!?")


def _norm_number(token: str) -> str:
    token = re.sub(r"(?<=\d),(?=\d{3}\b)", "", token)  # thousands separators
    if re.fullmatch(r"\d+", token):
        return str(int(token))
    return token.replace(",", ".").rstrip("0").rstrip(".") if "." in token or "," in token else token


def _names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence, all-caps words and letter-digit codes."""
    names: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group(0).strip("'’-")
        if not word or word.lower() in _NOT_NAMES:
            continue
        before = text[: match.start()].rstrip()
        starts_sentence = not before or before[-1] in '.!?:;"“(\n[' or before.endswith(("-", "*", "•"))
        if (word.isupper() and len(word) > 1) or (word[0].isupper() and not starts_sentence):
            names.add(re.sub(r"['’]s$", "", word).lower())
    names.update(code.lower() for code in _CODE.findall(text))
    return names


def extract_facts(text: str) -> Facts:
    """Numbers, URLs, e-mail addresses, phone numbers and names in ``text``, normalised."""
    emails = {e.lower() for e in _EMAIL.findall(text)}
    without_emails = _EMAIL.sub(" ", text)
    urls = {_norm_url(u) for u in _URL.findall(without_emails)}
    plain = _URL.sub(" ", without_emails)
    phones = {re.sub(r"\D", "", p) for p in _PHONE.findall(plain) if len(re.sub(r"\D", "", p)) >= 7}
    numbers = {_norm_number(n) for n in _NUMBER.findall(plain)}
    numbers |= {
        _NUMBER_WORDS[w.lower()] for w in re.findall(r"[A-Za-z]+", plain) if w.lower() in _NUMBER_WORDS
    }
    return Facts(
        numbers=frozenset(numbers),
        urls=frozenset(u for u in urls if u),
        emails=frozenset(emails),
        phones=frozenset(phones),
        names=frozenset(_names(plain)),
    )


def _raw_numbers(text: str) -> dict[str, set[str]]:
    """Normalised number → the tokens it was written as (a number inside a URL of the source, or
    split from one, still counts where the same digits stand in the source)."""
    raw: dict[str, set[str]] = {}
    for token in _NUMBER.findall(_URL.sub(" ", _EMAIL.sub(" ", text))):
        raw.setdefault(_norm_number(token), set()).add(token)
    return raw


def is_negated(text: str) -> bool:
    """Whether ``text`` contains a negation ("not", "no", "never", "cannot", "-n't", "without" …)."""
    return bool(_NEGATION.search(text))


def unsupported_facts(claim: str, source: str) -> list[str]:
    """The facts of ``claim`` that ``source`` does not contain, as ``"kind value"`` strings.

    A number must occur in the source as a number (value-equal) or number word; a URL must occur
    in the source (a URL of the source may extend it: ``shop.example/returns`` supports
    ``shop.example``); e-mail addresses and phone numbers exactly; a name as a whole word, any case.
    """
    claimed, given = extract_facts(claim), extract_facts(source)
    source_lower = source.lower()
    source_words = {w.lower().strip("'’-") for w in _WORD.findall(source)}
    source_words |= {re.sub(r"['’]s$", "", w) for w in source_words}
    source_digits = re.sub(r"\D", "", source)
    raw = _raw_numbers(claim)
    missing = [
        f"number {n}"
        for n in sorted(claimed.numbers - given.numbers)
        if not any(re.search(rf"(?<![\d]){re.escape(token)}(?![\d])", source) for token in raw.get(n, ()))
    ]
    missing += [f"url {u}" for u in sorted(claimed.urls) if not any(g.startswith(u) for g in given.urls)]
    missing += [f"email {e}" for e in sorted(claimed.emails - given.emails)]
    missing += [f"phone {p}" for p in sorted(claimed.phones) if p not in source_digits]
    missing += [
        f"name {n}"
        for n in sorted(claimed.names)
        if n not in source_words and not re.search(rf"(?<!\w){re.escape(n)}(?!\w)", source_lower)
    ]
    return missing

"""Lexical coverage: the specifics of a question (names, numbers, rare words) a text never mentions.

A retrieved answer can match a question's topic and still not answer it: "Do you ship to Canada?"
is close to "Do you ship internationally?" ("Yes, we ship to 28 countries in Europe"), yet the
answer never names Canada, and quoting its "Yes" would be wrong. Embeddings and fused retrieval
scores do not see this; comparing the question's *specifics* with the words of the answer does.

Specifics of a question (:func:`question_specifics`), by kind:

* ``name``: a capitalised word that does not start a sentence, an all-caps word or a letter-digit
  code (``Canada``, ``UPS``, ``X200``; :func:`core.facts.extract_facts`), but no single letter and
  no stop word ("DO you", a "TO" field) except "US"; and, in any case, a place or currency name of
  the ISO gazetteer in ``pycountry`` (:func:`place_names`: "canada", "new zealand", "swiss francs"),
  one specific per name, except names that are ordinary words ("turkey", "jersey", "central"),
  which count only when capitalised;
* ``number``: a number, compared by value ("1,000" = "1000", "two" = "2");
* ``rare``: any other content word (not an English stop word: NLTK's list as shipped by ``bm25s``).
  Customers' own words ("smashed", "vase") are rarely in the answer, so this kind only makes sense
  together with :class:`TermStats` salience.

Words are compared lower-cased by their Snowball stem (NLTK), so "Canada's" is covered by "Canada"
and "refunds" by "refund"; an all-caps name must appear in capitals ("US" is not covered by "us").

Salience (:class:`TermStats`): a specific that a collection (e.g. every entry of a knowledge base)
mentions in more than ``max_df_share`` of its documents says little about which document answers
(the shop's own name), so it is not reported; one the collection never mentions is always reported
(:meth:`Specific.known` is then ``False``).

Example:
    >>> stats = TermStats.from_texts(["We ship to 28 countries in Europe.", "Track parcels online."])
    >>> [(s.text, s.kind, s.known) for s in uncovered_specifics(
    ...     "Do you ship to Canada?", "Yes, we ship to 28 countries in Europe.", stats)]
    [('Canada', 'name', False)]
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Literal

from core.facts import extract_facts

logger = logging.getLogger(__name__)

__all__ = [
    "COMMON_WORD_NAMES",
    "PLACE_TYPES_LOWER",
    "SPECIFIC_KINDS",
    "Specific",
    "SpecificKind",
    "TermStats",
    "covered_keys",
    "place_names",
    "question_specifics",
    "uncovered_specifics",
]

SpecificKind = Literal["name", "number", "rare"]
SPECIFIC_KINDS: tuple[str, ...] = ("name", "number", "rare")

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’-]*[A-Za-z0-9]|[A-Za-z]")
_CAPS = "="  # prefix of the key of an all-caps word
_PLACE_WORD = re.compile(r"[^\W_][\w'’-]*[^\W_]|[^\W\d_]")  # any script: "Côte", "Türkiye"

#: Subdivision types (ISO 3166-2, as pycountry names them) whose one-word names are matched in
#: lower case too ("ontario", "bavaria"); other types' one-word names ("Central", "Delta", "Nord",
#: "Como") are too often ordinary words and count only when capitalised (the name rule).
PLACE_TYPES_LOWER: frozenset[str] = frozenset(
    {"State", "Province", "Canton", "Country", "Land", "Territory", "Emirate", "Autonomous community"}
)
#: Place and currency names that are also ordinary English words or phrases (or ISO 4217 entries that
#: are no money: metals, fund codes), left out of the gazetteer: they count only when capitalised. No
#: packaged word list tells "turkey" from "canada" (both are dictionary words, equally frequent), so
#: this list is kept by hand, checked on the validation questions (docs/benchmarks/support.md).
COMMON_WORD_NAMES: frozenset[str] = frozenset(
    {
        "chad", "china", "guinea", "jersey", "turkey", "reunion",  # countries
        "central", "eastern", "western", "northern", "southern", "capital", "centre", "center",
        "coast", "lakes", "islands", "delta", "plateau", "rivers", "highlands", "upper", "lower",
        "long an",  # subdivisions (a Vietnamese province, "how long an ...")
        "gold", "silver", "platinum", "palladium", "sdr", "mvdol",  # ISO 4217 entries, not money
        "won", "sol", "som", "rand", "dong", "lek", "pula", "taka", "kina", "lari", "tala", "leone",
        "denar", "dobra", "sucre",  # currencies
    }
)  # fmt: skip


@dataclass(frozen=True)
class Specific:
    """One specific of a question.

    Attributes:
        text: As written in the question (``Canada``), or the number's normalised value.
        key: What is compared: the lower-cased Snowball stem, ``=US`` for an all-caps word, or the
            number's value.
        kind: ``name``, ``number`` or ``rare``.
        known: Whether the collection of :class:`TermStats` mentions it at all (``True`` without one).
        doc_share: Share of the collection's documents that mention it (0 when unknown or no stats).
    """

    text: str
    key: str
    kind: SpecificKind
    known: bool = True
    doc_share: float = 0.0


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem.snowball import SnowballStemmer

    return SnowballStemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _stemmer().stem(word.lower().strip("'’-").removesuffix("'s").removesuffix("’s"))


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    # NLTK's English stop words as shipped inside bm25s (no corpus download), the BM25 index's list.
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def _fold(text: str) -> str:
    """Lower-cased, accents dropped ("Türkiye" → "turkiye"), as gazetteer keys are written."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _gazetteer_name(name: str) -> str:
    """An ISO name as people write it: "Bolivia, Plurinational State of" → "Bolivia"."""
    return re.sub(r"\s*[\[(].*?[\])]", "", name.split(",")[0]).strip()


@lru_cache(maxsize=1)
def _gazetteer() -> dict[tuple[str, ...], str]:
    """Place and currency names matched in any case: folded, lower-cased words → the ISO name.

    From ``pycountry`` (ISO 3166-1 countries: name, common and official name; ISO 3166-2
    subdivisions; ISO 4217 currency names): every name of two words or more, and one-word names of
    countries, currencies (four letters or more) and subdivisions of the types in
    :data:`PLACE_TYPES_LOWER` (five or more), except stop words and :data:`COMMON_WORD_NAMES`.
    Missing: names ISO does not use ("Russia", "Turkey", "Britain", "Holland"). Codes ("CHF",
    "USA") are not here: in capitals they are names anyway, and in lower case many are words
    ("try", "all", "can").
    """
    import pycountry

    names: list[tuple[str, bool]] = []  # (name, one word may match in lower case)
    for country in pycountry.countries:
        for attr in ("name", "common_name", "official_name"):
            if value := getattr(country, attr, None):
                names.append((value, True))
    names += [
        (sub.name, sub.type in PLACE_TYPES_LOWER and len(sub.name) > 4) for sub in pycountry.subdivisions
    ]
    names += [(currency.name, True) for currency in pycountry.currencies]
    table: dict[tuple[str, ...], str] = {}
    for raw, single_ok in names:
        name = _gazetteer_name(raw)
        words = tuple(_fold(m.group(0)) for m in _PLACE_WORD.finditer(name))
        if not words or " ".join(words) in COMMON_WORD_NAMES:
            continue
        # One word matched in any case only for the listed kinds, and not a short one ("Uri", "Chin").
        if len(words) == 1 and (not single_ok or words[0] in _stop_words() or len(words[0]) < 4):
            continue
        table.setdefault(words, name)
    logger.debug("Gazetteer", extra={"names": len(table)})
    return table


def place_names(text: str) -> list[tuple[int, int, str]]:
    """Place and currency names in ``text`` in any case (:func:`_gazetteer`), longest first.

    Returns:
        ``(start, end, surface)`` per match (character offsets), in text order, not overlapping.
    """
    table = _gazetteer()
    longest = max(len(key) for key in table)
    words = list(_PLACE_WORD.finditer(text))
    folded = [_fold(m.group(0).strip("'’-")) for m in words]
    found, i = [], 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            # The last word may be a plural: "swiss francs", "euros".
            key = tuple(folded[i : i + n])
            if key in table or (key[-1].endswith("s") and (*key[:-1], key[-1][:-1]) in table):
                start, end = words[i].start(), words[i + n - 1].end()
                found.append((start, end, text[start:end]))
                i += n
                break
        else:
            i += 1
    return found


def _phrase_key(phrase: str) -> str:
    """Key of a place name: the stem of a one-word name, the stems joined by spaces otherwise."""
    return " ".join(_stem(_fold(m.group(0))) for m in _PLACE_WORD.finditer(phrase))


def _word_keys(word: str) -> set[str]:
    keys = {_stem(word)}
    if len(word) > 1 and word.isupper():
        keys.add(_CAPS + word)
        if len(word) > 2 and word.endswith("S"):  # "ATMS" is covered by "ATM"
            keys.add(_CAPS + word[:-1])
    elif len(word) > 2 and word[:-1].isupper() and word[-1] == "s":  # "ATMs" too
        keys.add(_CAPS + word[:-1])
    return keys


def covered_keys(texts: str | Iterable[str]) -> set[str]:
    """Every key a text can cover a specific with: word stems, all-caps words and number values."""
    if isinstance(texts, str):
        texts = [texts]
    keys: set[str] = set()
    for text in texts:
        for match in _WORD.finditer(text):
            keys |= _word_keys(match.group(0))
        keys |= {_phrase_key(surface) for _, _, surface in place_names(text)}
        keys |= {f"#{n}" for n in extract_facts(text).numbers}
    return keys


def question_specifics(question: str, kinds: Sequence[str] = ("name",)) -> list[Specific]:
    """The question's specifics of the given kinds, in order of first appearance, without repeats.

    Raises:
        ValueError: An unknown kind.
    """
    unknown = set(kinds) - set(SPECIFIC_KINDS)
    if unknown:
        raise ValueError(f"unknown specific kind(s) {sorted(unknown)}; use {', '.join(SPECIFIC_KINDS)}")
    facts = extract_facts(question)
    found: dict[str, Specific] = {}
    places = place_names(question) if "name" in kinds else []
    place_end = -1
    for match in _WORD.finditer(question):
        while places and places[0][0] <= match.start():  # a place name, counted as one
            _, place_end, surface = places.pop(0)
            found.setdefault(_phrase_key(surface), Specific(surface, _phrase_key(surface), "name"))
        if match.start() < place_end:
            continue  # a word of a place name
        word = match.group(0).strip("'’-")
        lower = re.sub(r"['’]s$", "", word.lower())
        # A name where it is written as one ("Pay" in "Apple Pay", not "pay" elsewhere); not a
        # shouted stop word ("DO you", a "TO" field) other than the country "US", nor a letter or
        # a contraction ("C" of "C#", "I't").
        is_name = (
            lower in facts.names
            and (word[0].isupper() or any(c.isdigit() for c in word))
            and len(word) > 1
            and (lower not in _stop_words() or word == "US")
            and not re.match(r"[A-Za-z]['’]", word)
        )
        if "name" in kinds and is_name:
            key = _CAPS + word if len(word) > 1 and word.isupper() else _stem(word)
            if key.startswith(_CAPS) and len(word) > 2 and word.endswith("S"):
                key = _CAPS + word[:-1]  # an all-caps plural: "ATMS" asks about "ATM"
            found.setdefault(key, Specific(word, key, "name"))
        elif "rare" in kinds and not is_name and len(lower) > 1 and lower not in _stop_words():
            key = _stem(word)
            found.setdefault(key, Specific(word, key, "rare"))
    for _, _, surface in places:  # after the last ASCII word ("… to Åland")
        found.setdefault(_phrase_key(surface), Specific(surface, _phrase_key(surface), "name"))
    if "number" in kinds:
        for number in sorted(facts.numbers):
            found.setdefault(f"#{number}", Specific(number, f"#{number}", "number"))
    return list(found.values())


class TermStats:
    """Document frequencies of keys (:func:`covered_keys`) over a collection of texts.

    Args:
        doc_freq: Number of documents mentioning each key.
        n_docs: Number of documents.
    """

    def __init__(self, doc_freq: Mapping[str, int], n_docs: int) -> None:
        self.doc_freq = dict(doc_freq)
        self.n_docs = n_docs

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermStats:
        """Count, for every key, the documents (texts) that mention it."""
        counts: Counter[str] = Counter()
        n = 0
        for text in texts:
            counts.update(covered_keys(text))
            n += 1
        logger.debug("Term statistics", extra={"documents": n, "keys": len(counts)})
        return cls(counts, n)

    def df(self, key: str) -> int:
        """Documents that mention ``key``."""
        return self.doc_freq.get(key, 0)

    def share(self, key: str) -> float:
        """Share of the documents that mention ``key`` (0 for an empty collection)."""
        return self.df(key) / self.n_docs if self.n_docs else 0.0

    def idf(self, key: str) -> float:
        """Smoothed inverse document frequency, ``log((1 + n) / (1 + df)) + 1``."""
        return math.log((1 + self.n_docs) / (1 + self.df(key))) + 1.0


def uncovered_specifics(
    question: str,
    covering: str | Iterable[str],
    stats: TermStats | None = None,
    kinds: Sequence[str] = ("name",),
    max_doc_share: float = 1.0,
) -> list[Specific]:
    """The question's specifics that ``covering`` never mentions and that are salient.

    Args:
        question: The question.
        covering: The text(s) that should answer it (e.g. an FAQ's question and answer).
        stats: Document frequencies of the collection ``covering`` comes from; without them every
            uncovered specific is reported.
        kinds: Kinds of specifics to look for (:data:`SPECIFIC_KINDS`).
        max_doc_share: With ``stats``, a specific mentioned in more than this share of the
            collection's documents is not salient and not reported; one the collection never
            mentions always is.

    Returns:
        The uncovered specifics, in question order, with ``known`` and ``doc_share`` filled in.
    """
    keys = covered_keys(covering)
    out = []
    for specific in question_specifics(question, kinds):
        if specific.key in keys:
            continue
        if stats is not None:
            share = stats.share(specific.key)
            if share > max_doc_share:
                continue
            specific = replace(specific, known=stats.df(specific.key) > 0, doc_share=round(share, 4))
        out.append(specific)
    return out

"""Lexical coverage: a question's specifics (names, numbers, rare words) that a text never mentions."""

from __future__ import annotations

import pytest

from core.lexical_coverage import (
    TermStats,
    covered_keys,
    place_names,
    question_specifics,
    uncovered_specifics,
)

FAQ = (
    "Do you ship internationally? Yes, we ship to 28 countries in Europe. Import duties outside the EU apply."
)


def test_a_place_the_answer_never_names_is_uncovered():
    stats = TermStats.from_texts([FAQ, "Track your parcel online.", "Pinecrest gift cards last 3 years."])
    [specific] = uncovered_specifics("Do you ship to Canada?", FAQ, stats)
    assert (specific.text, specific.key, specific.kind, specific.known) == ("Canada", "canada", "name", False)


def test_names_are_matched_by_stem_and_all_caps_names_only_in_capitals():
    assert uncovered_specifics("Do you ship to Europe's north?", FAQ) == []
    assert uncovered_specifics("Is the EU covered?", FAQ) == []
    # "US" (a country) is not covered by the pronoun "us".
    assert [s.text for s in uncovered_specifics("Do you ship to the US?", "Contact us for shipping.")] == [
        "US"
    ]


def test_sentence_initial_words_and_the_pronoun_i_are_not_names():
    assert question_specifics("Shipping to Canada: Can I order?") == question_specifics(
        "can I order to Canada"
    )
    assert [s.text for s in question_specifics("Can I pay with Apple Pay? I can pay later")] == [
        "Apple",
        "Pay",
    ]


def test_codes_numbers_and_rare_words_are_kinds_of_their_own():
    found = question_specifics(
        "Does the X200 fit 2,000 items? the vase came smashed", ("name", "number", "rare")
    )
    assert [(s.text, s.kind) for s in found] == [
        ("X200", "name"), ("fit", "rare"), ("items", "rare"), ("vase", "rare"), ("came", "rare"),
        ("smashed", "rare"), ("2000", "number"),
    ]  # fmt: skip
    assert "#28" in covered_keys(FAQ) and "#2000" not in covered_keys(FAQ)
    assert [
        s.text for s in uncovered_specifics("Do you ship to 28 or 30 countries?", FAQ, kinds=("number",))
    ] == ["30"]


def test_a_name_common_in_the_collection_is_not_salient_but_an_unknown_one_always_is():
    docs = ["Pinecrest ships fast.", "Pinecrest gift cards.", "Returns at Pinecrest.", "Track parcels."]
    stats = TermStats.from_texts(docs)
    assert stats.df("pinecrest") == 3 and stats.share("pinecrest") == 0.75
    assert stats.idf("canada") > stats.idf("pinecrest")
    question = "Does Pinecrest ship to Canada?"
    assert [
        s.text for s in uncovered_specifics(question, "We ship to Europe.", stats, max_doc_share=0.5)
    ] == ["Canada"]
    assert [
        s.text for s in uncovered_specifics(question, "We ship to Europe.", stats, max_doc_share=1.0)
    ] == [
        "Pinecrest",
        "Canada",
    ]
    assert [
        s.text for s in uncovered_specifics(question, "We ship to Europe.", stats, max_doc_share=0.0)
    ] == ["Canada"]


def test_unknown_kinds_are_rejected():
    with pytest.raises(ValueError, match="unknown specific kind"):
        question_specifics("Do you ship to Canada?", ("place",))


def test_lower_case_places_and_currencies_are_names_from_the_iso_gazetteer():
    question = "do you ship to canada or new zealand, paid in swiss francs?"
    texts = [s.text for s in question_specifics(question)]
    assert texts == ["canada", "new zealand", "swiss francs"]
    # A one-word subdivision of a listed type in any case; ISO names only (no English exonyms).
    found = question_specifics("delivery to ontario and north rhine-westphalia")
    assert [s.text for s in found] == ["ontario"]
    assert [s.key for s in question_specifics("Delivery to Nordrhein-Westfalen")] == ["nordrhein-westfalen"]
    stats = TermStats.from_texts([FAQ, "Track your parcel online."])
    [specific] = uncovered_specifics("can you send orders to switzerland", FAQ, stats)
    assert (specific.text, specific.key, specific.known) == ("switzerland", "switzerland", False)
    # Covered in any case, and a multiword name only by the whole name.
    assert uncovered_specifics("ship to canada?", "We ship to Canada.") == []
    assert [s.text for s in uncovered_specifics("ship to new zealand?", "New customers in Zealand")] == [
        "new zealand"
    ]


def test_place_names_that_are_ordinary_words_count_only_when_capitalised():
    for question in ("my turkey arrived cold", "a jersey and a china cup", "the central depot",
                     "how long an order takes", "my school reunion", "a bit far per item"):  # fmt: skip
        assert question_specifics(question) == [], question
    assert [s.text for s in question_specifics("Do you ship to Chad or Jersey?")] == ["Chad", "Jersey"]
    assert place_names("Ship to Côte d'Ivoire, Türkiye or the United States") == [
        (8, 21, "Côte d'Ivoire"),
        (23, 30, "Türkiye"),
        (38, 51, "United States"),
    ]

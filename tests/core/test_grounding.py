"""Sentences, facts, the grounding verifier and the extractive sentence picker, with the real MiniLM."""

from __future__ import annotations

import pytest

from core.embeddings import Embedder
from core.extractive import Passage, SentencePicker
from core.facts import extract_facts, is_negated, unsupported_facts
from core.grounding import GroundingVerifier, calibrate_threshold, strip_citations
from core.sentences import split_sentences

RETURNS = (
    "You have 30 days from the day of delivery to return an item; Pinecrest Plus members have 60 days. "
    "The item must be unused, complete and in its original packaging. Opened mattresses cannot be "
    "returned for hygiene reasons."
)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("minilm-l6")


def test_sentences_keep_abbreviations_decimals_and_spans():
    text = (
        "# Costs\n\nA fee of 3.95 is deducted, e.g. for sofas. "
        "See https://shop.example/a.b for more.\n- Free returns."
    )
    sentences = split_sentences(text)
    assert [s.text for s in sentences] == [
        "Costs",
        "A fee of 3.95 is deducted, e.g. for sofas.",
        "See https://shop.example/a.b for more.",
        "Free returns.",
    ]
    assert all(text[s.start : s.end] == s.text for s in sentences)
    assert split_sentences("  \n ") == []


def test_facts_are_normalised_for_comparison():
    facts = extract_facts(
        "Write to Help@Shop.example, call +44 20 7946 0958 or see www.shop.example/returns/."
    )
    assert facts.emails == {"help@shop.example"}
    assert facts.phones == {"442079460958"}
    assert facts.urls == {"shop.example/returns"}
    assert extract_facts("It costs 1,000 or ten, order B52879311 from Pinecrest.").numbers >= {"1000", "10"}
    assert {"b52879311", "pinecrest"} <= extract_facts("Order B52879311 from Pinecrest today.").names


@pytest.mark.parametrize(
    ("claim", "missing"),
    [
        ("Returns take 4 weeks.", ["number 4"]),
        ("Pinecrest Plus members get sixty days.", []),
        ("We ship to Canada.", ["name canada"]),
        ("Track it at https://www.amazon.com/dp/B52879311.", ["url amazon.com/dp/b52879311"]),
        ("Mail refunds@pinecrest.example today.", ["email refunds@pinecrest.example"]),
        ("Call 0800 555 0199 for help.", ["number 199", "number 555", "number 800", "phone 08005550199"]),
        ("You have 30 days from delivery.", []),
    ],
)
def test_unsupported_facts(claim, missing):
    assert unsupported_facts(claim, RETURNS) == missing


def test_negation():
    assert is_negated("Opened mattresses can't be returned") and is_negated("We never ship on Sundays")
    assert not is_negated("Returns of damaged items are always free")


def test_verifier_keeps_supported_and_drops_unsupported_sentences(minilm):
    verifier = GroundingVerifier(minilm, threshold=0.6)
    answer = (
        "You have 30 days from delivery to return an item [ret]. Plus members have 60 days [ret]. "
        "Opened mattresses can be returned at any time [ret]. Returns take 4 weeks [ret]. "
        "Our CEO is Jane Smith [ret]."
    )
    result = verifier.verify(answer, {"ret": RETURNS})
    assert [c.sentence for c in result.kept] == [
        "You have 30 days from delivery to return an item.",
        "Plus members have 60 days.",
    ]
    reasons = {c.sentence: c.reasons for c in result.dropped}
    assert "polarity" in reasons["Opened mattresses can be returned at any time."]
    assert reasons["Returns take 4 weeks."][0] == "number 4"
    assert {"name jane", "name smith"} <= set(reasons["Our CEO is Jane Smith."])
    assert result.supported_share == pytest.approx(2 / 5)
    assert result.text == "You have 30 days from delivery to return an item. Plus members have 60 days."
    assert verifier.verify("Anything at all.", {}).kept == []


def test_strip_citations():
    assert strip_citations("Free [a]. Fast [b, c].") == "Free. Fast."


def test_calibrate_threshold_separates_labelled_pairs():
    threshold, report = calibrate_threshold(
        [0.9, 0.8, 0.75, 0.5, 0.4, 0.3], [True, True, True, False, False, False]
    )
    assert 0.5 < threshold <= 0.75 and report["balanced_accuracy"] == 1.0
    with pytest.raises(ValueError):
        calibrate_threshold([0.1, 0.2], [True, True])


def test_picker_quotes_the_answering_sentences_in_reading_order(minilm):
    picker = SentencePicker(minilm, per_passage=2)
    passages = [
        Passage("ret", RETURNS, "Return window"),
        Passage(
            "ship", "We deliver to 28 European countries. Delivery takes 5 to 10 working days.", "Shipping"
        ),
    ]
    picked = picker.pick("How many days do I have to send an item back?", passages)
    assert picked[0].source_id == "ret" and "30 days" in picked[0].text
    assert all(p.source_id == "ret" for p in picked), "the shipping passage answers nothing here"
    for p in picked:
        assert RETURNS[p.start : p.end] == p.text
    assert [p.start for p in picked] == sorted(p.start for p in picked)
    assert picker.pick("anything", [Passage("empty", "Hi.")]) == []


def test_picker_drops_a_leading_yes_that_answers_another_question(minilm):
    faq = Passage(
        "ship-03",
        "Yes, we ship to 28 countries in Europe. Duties are paid by the recipient.",
        "Do you ship abroad?",
    )
    picked = SentencePicker(minilm).pick("Do you ship to Canada?", [faq])
    assert picked[0].text == "We ship to 28 countries in Europe."


def test_urls_do_not_end_sentences():
    text = "Create the link as below http://maps.google.com/maps?z=18&q=10.8,106.7 and share it. Done now."
    assert [s.text for s in split_sentences(text)] == [
        "Create the link as below http://maps.google.com/maps?z=18&q=10.8,106.7 and share it.",
        "Done now.",
    ]


def test_numbers_written_inside_a_source_url_count_as_given():
    source = "Use http://maps.google.com/maps?z=18&q=10.8061,106.7130 to share."
    assert unsupported_facts("Zoom z=18&q=10.8061,106.7130 works.", source) == []


def test_only_citations_of_the_sources_are_stripped():
    assert strip_citations("Mail [Group Name]+subscribe@groups.example [t1].", ["t1"]) == (
        "Mail [Group Name]+subscribe@groups.example."
    )


def test_verbatim_quotes_are_supported_whatever_their_length(minilm):
    result = GroundingVerifier(minilm).verify(
        "I don't think so. [d1]", {"d1": "Title\n\nI don't think so. Ask again."}
    )
    assert result.supported_share == 1.0 and result.checks[0].source_id == "d1"

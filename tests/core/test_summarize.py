"""Cited summaries with the real MiniLM: centrality picks, citations read back, unsupported ones dropped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.embeddings import Embedder
from core.grounding import GroundingVerifier, lexical_problems
from core.summarize import (
    CentralitySummarizer,
    CitedSentence,
    SourceDoc,
    check_sentences,
    parse_cited_sentences,
    write_checked,
)

DOCS = [
    SourceDoc("a", "Northwind Energy shuts its Rotterdam refinery after an explosion.", weight=3),
    SourceDoc("b", "Refinery blast at Northwind Energy halts output in Rotterdam.", weight=2),
    SourceDoc("c", "Northwind Energy shares fall 9% as the refinery stays closed.", weight=2),
    SourceDoc("d", "Analysts cut Northwind Energy price targets after the refinery outage.", weight=1),
    SourceDoc("e", "Sablecrest Gas reports record refining throughput in Q2.", weight=1),
]


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("minilm-l6")


@dataclass
class _Text:
    text: str


class ScriptedGenerator:
    """Returns a fixed text (the text source only: the checks that judge it are real)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.prompts: list = []

    def generate(self, prompt, **settings):
        self.prompts.append((prompt, settings))
        return _Text(self.text)


def test_centrality_quotes_central_non_redundant_sentences_citing_their_documents(minilm):
    summary = CentralitySummarizer(minilm, max_sentences=3).summarize(DOCS)
    assert 1 < len(summary) <= 3
    by_id = {d.id: d.text for d in DOCS}
    for sentence in summary:
        (cited,) = sentence.cites
        assert sentence.text in by_id[cited]  # a quote of the document it cites
    assert "e" not in {s.cites[0] for s in summary}  # the off-topic story is the least central
    assert len({s.cites for s in summary}) == len(summary)  # one sentence per document
    order = [d.id for d in DOCS]
    assert [order.index(s.cites[0]) for s in summary] == sorted(order.index(s.cites[0]) for s in summary)


def test_boilerplate_shared_by_documents_is_not_a_candidate(minilm):
    docs = [
        SourceDoc("x", "Oil prices fall on weak demand.\n\nThe reaction in early trading was negative."),
        SourceDoc("y", "Crude slides as inventories build.\n\nThe reaction in early trading was negative."),
    ]
    texts = [s for _, s in CentralitySummarizer(minilm).candidates(docs)]
    assert texts == ["Oil prices fall on weak demand.", "Crude slides as inventories build."]
    assert CentralitySummarizer(minilm).summarize([]) == []


def test_a_trailing_link_is_not_quoted(minilm):
    docs = [
        SourceDoc("t", "$HD is down 10% since Nov. 18 after earnings https://t.co/jSqHG82RCz https://t.co/x")
    ]
    ((_, text),) = CentralitySummarizer(minilm).candidates(docs)
    assert text == "$HD is down 10% since Nov. 18 after earnings" and text in docs[0].text


def test_citations_are_read_back_per_sentence():
    labels = {"1": "a", "2": "b", "3": "c"}
    text = "Output halted after a blast [1]. Shares fell. [2][3] Analysts reacted [9]. Prices rose [2, 3]."
    parsed = parse_cited_sentences(text, labels)
    assert [(s.text, s.cites) for s in parsed] == [
        ("Output halted after a blast.", ("a",)),
        ("Shares fell.", ("b", "c")),
        ("Analysts reacted.", ("b", "c")),  # unknown label: takes the next sentence's citations
        ("Prices rose.", ("b", "c")),
    ]
    assert parse_cited_sentences("Nothing cited here.", labels)[0].cites == ()


def test_unsupported_generated_sentences_are_dropped_by_the_real_checks(minilm):
    verifier = GroundingVerifier(minilm)
    sources = {d.id: d.text for d in DOCS}
    generator = ScriptedGenerator(
        "Northwind Energy shut its Rotterdam refinery after an explosion [1]. "
        "Northwind Energy shares fell 40% [2]. "
        "Sablecrest Gas will buy Northwind Energy next week [3]. "
        "Read more at https://win-prizes.example/claim [1]."
    )
    labels = {"1": "a", "2": "c", "3": "e"}
    result = write_checked(
        generator, [{"role": "user", "content": "x"}], labels, sources, verifier, max_new_tokens=50
    )
    assert [s.text for s in result.kept] == [
        "Northwind Energy shut its Rotterdam refinery after an explosion."
    ]
    assert result.kept[0].cites == ("a",) and result.kept[0].supported
    dropped = {s.text: s.reasons for s in result.dropped}
    assert "number 40" in dropped["Northwind Energy shares fell 40%."]
    assert any("words" in r for r in dropped["Sablecrest Gas will buy Northwind Energy next week."])
    assert any(r.startswith("output url") for r in dropped["Read more at https://win-prizes.example/claim."])
    assert generator.prompts[0][1] == {"max_new_tokens": 50}


def test_a_generated_sentence_without_citation_cites_its_closest_document(minilm):
    sources = {d.id: d.text for d in DOCS}
    generator = ScriptedGenerator(
        "Northwind Energy shares fall 9% as the refinery stays closed. Oil fell 3% today."
    )
    labels = {str(n): d.id for n, d in enumerate(DOCS, 1)}
    result = write_checked(generator, [], labels, sources, GroundingVerifier(minilm))
    assert [(s.text, s.cites) for s in result.kept] == [(DOCS[2].text, ("c",))]
    assert [s.text for s in result.dropped] == ["Oil fell 3% today."]
    plain = write_checked(generator, [], labels, sources, GroundingVerifier(minilm), infer_citations=False)
    assert plain.kept == [] and {s.reasons for s in plain.dropped} == {("no citation",)}


def test_a_sentence_is_checked_only_against_the_documents_it_cites(minilm):
    verifier = GroundingVerifier(minilm)
    sources = {d.id: d.text for d in DOCS}
    claim = "Sablecrest Gas reports record refining throughput in Q2."
    ok, wrong, none = check_sentences(
        [CitedSentence(claim, ("e",)), CitedSentence(claim, ("a",)), CitedSentence(claim, ())],
        sources,
        verifier,
    )
    assert ok.supported and not wrong.supported and none.reasons == ("no citation",)
    (fragment,) = check_sentences([CitedSentence("The incident.", ("a",))], sources, verifier)
    assert fragment.reasons == ("fragment",)


@pytest.mark.parametrize(
    ("claim", "problems"),
    [
        ("Northwind Energy shares fall 9% as the refinery stays closed.", []),  # verbatim
        ("Northwind Energy shares fall 9%.", []),
        ("Northwind Energy shares plunge 9%.", ["words: plunge"]),
        ("Northwind Energy shares fall 12%.", ["number 12"]),
        ("Northwind Energy shares do not fall.", ["polarity"]),
    ],
)
def test_the_lexical_check_is_strict(claim, problems):
    assert lexical_problems(claim, DOCS[2].text) == problems

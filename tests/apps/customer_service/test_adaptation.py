"""Encoder adaptation (``index --adapt``) with the tiny random encoder and a scripted answer model.

The real answer model is far too slow for unit tests (bench/support_adapt.py runs it); the tiny BERT
trains for real in a few seconds (those tests are ``slow``), and ``min_gain`` and ``max_p_value`` force
the keep / discard decision its random vectors would otherwise make by chance.
"""

import json
import re
from dataclasses import dataclass, replace

import numpy as np
import pytest

from apps.customer_service.adaptation import (
    ADAPTER_DIR,
    cloze_pairs,
    heldout_plan,
    judge_heldout,
    load_encoder,
    read_judge,
    read_questions,
    round_trip_filter,
    sign_test,
    split_heldout,
)
from apps.customer_service.config import AdaptConfig, KBConfig
from apps.customer_service.entries import Entry
from apps.customer_service.errors import KBFormatError, SourceError
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from core.embeddings import Embedder
from core.finetune.contrastive import ADAPTER_WEIGHTS
from core.inverse_cloze import InverseClozeConfig

TOPICS = [
    "refund", "shipping", "password", "invoice", "warranty", "address", "coupon", "battery",
    "screen", "account", "delivery", "exchange", "gift", "order", "payment", "size",
]  # fmt: skip


@dataclass
class Result:
    text: str
    completion_tokens: int = 8


class ScriptedAnswerModel:
    """Writes two questions naming the passage's first long word; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, prompt, **settings):
        self.calls += 1
        word = re.findall(r"[a-z]{5,}", prompt.split("\n\n")[1].lower())[0]
        return Result(f"1. How does {word} work?\n2. Where do I find the {word} page?")


def doc_sources(tmp_path, n=len(TOPICS)):
    folder = tmp_path / "docs"
    folder.mkdir(parents=True)
    for topic in TOPICS[:n]:
        (folder / f"{topic}.md").write_text(
            f"# {topic}\n\n{topic} policy: details about {topic} for every customer. "
            f"Our {topic} team answers {topic} questions within one day.\n"
        )
    return [folder]


def config(**adapt) -> KBConfig:
    return replace(KBConfig(), adapt=AdaptConfig(batch_size=4, epochs=1, **adapt))


def test_split_holds_out_curated_questions_when_the_kb_has_enough():
    entries = [Entry(f"f{i}", "faq", f"question {i}?", f"answer {i}", f"t{i}") for i in range(10)]
    generated = {e.id: (e.content_hash, [f"gen {e.id} a?", f"gen {e.id} b?"]) for e in entries}
    kind, train, heldout = split_heldout(entries, generated, AdaptConfig(min_curated=5, heldout_fraction=0.3))
    assert kind == "curated" and len(heldout) == 3
    assert all(q == entries[i].question for q, i in heldout)
    held = {i for _, i in heldout}
    assert {q for q, _ in train} >= {q for _, (_, qs) in generated.items() for q in qs}  # all generated
    assert not {(entries[i].question, i) for i in held} & set(train)  # held-out curated never trained


def test_split_of_a_documents_kb_holds_out_generated_questions_by_entry():
    entries = [Entry(f"d{i}", "doc", "", f"passage {i}", f"Doc {i}") for i in range(10)]
    generated = {e.id: (e.content_hash, [f"q{e.id}a?", f"q{e.id}b?"]) for e in entries}
    kind, train, heldout = split_heldout(
        entries, generated, AdaptConfig(heldout_fraction=0.2, queries="generated")
    )
    assert kind == "generated" and len(heldout) == 4  # two entries, both of their questions
    assert not {i for _, i in heldout} & {i for _, i in train}
    assert len(train) + len(heldout) == 20


def test_heldout_plan_takes_a_share_of_all_entries_of_a_documents_kb():
    entries = [Entry(f"d{i}", "doc", "", f"passage {i}", f"Doc {i}") for i in range(10)]
    for queries in ("generated", "both"):  # written questions are trained on: hold a share out
        kind, held = heldout_plan(entries, AdaptConfig(heldout_fraction=0.3, queries=queries))
        assert kind == "generated" and len(held) == 3 and held <= set(range(10))
        assert heldout_plan(entries, AdaptConfig(heldout_fraction=0.3, queries=queries)) == (kind, held)
    # sentences train on no written question, so every entry's question judges ...
    assert heldout_plan(entries, AdaptConfig(queries="sentences")) == ("generated", set(range(10)))
    # ... unless asked for the share
    kind, held = heldout_plan(
        entries, AdaptConfig(queries="sentences", judge_all=False, heldout_fraction=0.3)
    )
    assert len(held) == 3


def test_cloze_pairs_cut_sentences_from_entries_as_their_content_field_reads():
    text = "Refunds are paid back to your card. They arrive within five working days."
    entries = [Entry("d", "doc", "", text, "Refunds"), Entry("f", "faq", "How do refunds work?", text, "")]
    queries, contexts, sources = cloze_pairs(
        entries, AdaptConfig(cloze=InverseClozeConfig(keep_sentence=0.0))
    )
    assert sources == [0, 0, 1, 1] and set(queries) == set(text.replace("card. ", "card.|").split("|"))
    assert all(c.startswith("Refunds\n") for c in contexts[:2])  # a document's title leads its content
    assert not any(c.startswith("Refunds\n") for c in contexts[2:])  # an answer has no title
    assert all(q not in c for q, c in zip(queries, contexts, strict=True))


def test_judge_heldout_ranks_against_entry_contents(minilm):
    entries = [
        Entry("a", "doc", "", "Refunds are paid within five days.", "Refunds"),
        Entry("b", "doc", "", "We ship to France and Germany.", "Shipping"),
    ]
    scores, hits = judge_heldout(
        minilm, entries, [("when do I get my money back", 0), ("do you deliver to Paris", 1)]
    )
    assert scores == {"recall@1": 1.0, "recall@5": 1.0, "mrr@10": 1.0} and hits.tolist() == [True, True]
    assert judge_heldout(minilm, entries, [])[0] == {}


def test_round_trip_filter_drops_off_topic_questions_and_keeps_curated_ones(minilm):
    entries = [
        Entry("a", "doc", "", "Refunds are paid within five days of receiving the item.", "Refunds"),
        Entry("b", "doc", "", "We ship to France and Germany with DHL.", "Shipping"),
        Entry("c", "faq", "Can I reset my password?", "Use the link on the login page.", "Password"),
    ]
    pairs = [
        ("When do I get my refund?", 0),
        ("What's your favorite movie?", 0),  # its entry is not the top hit: dropped
        ("Do you deliver to Germany?", 1),
        ("Can I reset my password?", 2),
    ]
    kept, dropped = round_trip_filter(minilm, entries, pairs, top_k=1, keep={pairs[3]})
    assert kept == [pairs[0], pairs[2], pairs[3]] and dropped == 1
    assert round_trip_filter(minilm, entries, pairs, top_k=3) == (pairs, 0)  # every entry is in the top 3


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_kept_adapter_is_saved_with_the_kb_and_loaded_for_queries(tmp_path, tiny_encoder_dir):
    kb_dir, model = tmp_path / "kb", ScriptedAnswerModel()
    # trained on generated questions only; always kept
    cfg = replace(
        config(min_gain=-1.0, max_p_value=1.0, queries="generated"), embedding_model=str(tiny_encoder_dir)
    )
    kb = KnowledgeBase.build(doc_sources(tmp_path), kb_dir, cfg, adapt=True, generator=model)
    report = kb.manifest["adaptation"]
    assert report["kept"] and report["heldout"] == "generated" and model.calls == len(TOPICS)
    assert report["questions_generated"] == len(TOPICS) and report["pairs"] > 0  # one per entry
    assert set(report["frozen"]) == set(report["adapted"]) == {"recall@1", "recall@5", "mrr@10"}
    assert kb.embedding_model == report["model_id"] and "+lora:" in kb.embedding_model
    assert kb.manifest["config"]["embedding_model"] == str(tiny_encoder_dir)  # the base, rebuildable
    files = {p.name for p in (kb_dir / ADAPTER_DIR).iterdir()}
    assert files == {"adapter_config.json", ADAPTER_WEIGHTS, "adaptation.json", "questions.jsonl"}
    assert not list(kb_dir.rglob("*.pt")) and not list(kb_dir.rglob("*.bin"))  # no pickles
    assert (
        json.loads((kb_dir / ADAPTER_DIR / "adaptation.json").read_text())["model_id"] == kb.embedding_model
    )

    loaded = KnowledgeBase.load(kb_dir)
    retriever = Retriever(loaded)
    assert retriever.embedder.model_id == kb.embedding_model
    query = retriever.embedder.encode(["refund policy"])
    again = load_encoder(kb_dir, loaded.manifest).encode(["refund policy"])
    np.testing.assert_allclose(query, again, atol=1e-6)
    assert retriever.search("refund policy", k=3, mode="dense")

    # A rebuild without --adapt keeps the adapter (unchanged entries keep their vectors) ...
    rebuilt = KnowledgeBase.build(doc_sources(tmp_path / "again"), kb_dir, cfg)
    assert rebuilt.embedding_model == kb.embedding_model and rebuilt.last_build.embedded == 0
    # ... and the next --adapt reuses the questions of unchanged entries.
    assert len(read_questions(kb_dir)) == len(TOPICS)
    KnowledgeBase.build(doc_sources(tmp_path / "third"), kb_dir, cfg, adapt=True, generator=model)
    assert model.calls == len(TOPICS)  # nothing generated again
    assert KnowledgeBase.load(kb_dir).manifest["adaptation"]["questions_reused"] == len(TOPICS)


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_sentence_queries_are_judged_on_a_question_for_every_entry(tmp_path, tiny_encoder_dir):
    kb_dir, model = tmp_path / "kb", ScriptedAnswerModel()
    cfg = replace(
        config(min_gain=-1.0, max_p_value=1.0), embedding_model=str(tiny_encoder_dir)
    )  # queries: sentences
    kb = KnowledgeBase.build(doc_sources(tmp_path), kb_dir, cfg, adapt=True, generator=model)
    report = kb.manifest["adaptation"]
    held = len(TOPICS)  # no written question is trained on, so every entry's judges
    assert model.calls == held and report["questions_generated"] == held  # the judge's questions only
    assert report["heldout"] == "generated" and report["heldout_queries"] == held
    # two sentences of 5+ words per document, each a query once: all pairs are cloze pairs
    assert report["training"]["queries"] == "sentences"
    assert report["training"]["cloze_pairs"] == report["pairs"] == 2 * len(TOPICS)
    assert report["kept"] and "+lora:" in kb.embedding_model
    assert len(read_questions(kb_dir)) == held  # stored for the next --adapt


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_adapter_that_does_not_help_is_discarded_and_reported(tmp_path, tiny_encoder_dir):
    kb_dir = tmp_path / "kb"
    cfg = replace(config(min_gain=1.0), embedding_model=str(tiny_encoder_dir))  # a gain above 1 is impossible
    kb = KnowledgeBase.build(doc_sources(tmp_path), kb_dir, cfg, adapt=True, generator=ScriptedAnswerModel())
    report = kb.manifest["adaptation"]
    assert not report["kept"] and "discarded" in report["reason"] and report["model_id"] is None
    assert "+lora" not in kb.embedding_model
    assert not (kb_dir / ADAPTER_DIR / ADAPTER_WEIGHTS).exists()
    assert (kb_dir / ADAPTER_DIR / "questions.jsonl").is_file()  # kept for the next --adapt
    assert Retriever(KnowledgeBase.load(kb_dir)).embedder.model_id == kb.embedding_model


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_a_gain_that_is_not_significant_is_discarded(tmp_path, tiny_encoder_dir):
    # any gain passes min_gain, but no result of 8 questions reaches p <= 1e-9
    cfg = replace(config(min_gain=-1.0, max_p_value=1e-9), embedding_model=str(tiny_encoder_dir))
    kb = KnowledgeBase.build(
        doc_sources(tmp_path), tmp_path / "kb", cfg, adapt=True, generator=ScriptedAnswerModel()
    )
    report = kb.manifest["adaptation"]
    assert not report["kept"] and "+lora" not in kb.embedding_model
    assert "not significant" in report["reason"] and report["significance"]["p_value"] > 1e-9
    assert set(report["significance"]) == {"wins", "losses", "p_value"}


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_too_few_questions_is_reported_not_trained(tmp_path, tiny_encoder_dir):
    cfg = replace(config(), embedding_model=str(tiny_encoder_dir))
    kb = KnowledgeBase.build(
        doc_sources(tmp_path, 3), tmp_path / "kb", cfg, adapt=True, generator=ScriptedAnswerModel()
    )
    report = kb.manifest["adaptation"]
    assert not report["kept"] and report["reason"].startswith("too few questions")


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_missing_adapter_weights_fail_loudly(tmp_path, tiny_encoder_dir):
    kb_dir = tmp_path / "kb"
    cfg = replace(config(min_gain=-1.0, max_p_value=1.0), embedding_model=str(tiny_encoder_dir))
    KnowledgeBase.build(doc_sources(tmp_path), kb_dir, cfg, adapt=True, generator=ScriptedAnswerModel())
    manifest = KnowledgeBase.load(kb_dir).manifest
    (kb_dir / ADAPTER_DIR / ADAPTER_WEIGHTS).unlink()
    with pytest.raises(KBFormatError, match="weights are missing"):
        load_encoder(kb_dir, manifest)
    with pytest.raises(KBFormatError):
        KnowledgeBase.load(kb_dir)  # the artifact's hashes name the missing file


def test_sign_test_counts_only_the_questions_whose_result_changed():
    before = np.array([True] * 50 + [False] * 11)
    after = np.array([True] * 49 + [False] + [True] * 10 + [False])  # 10 won, 1 lost, 50 unchanged
    result = sign_test(before, after)
    assert result["wins"] == 10 and result["losses"] == 1
    assert result["p_value"] == pytest.approx(12 / 2048, abs=1e-4)  # P(X >= 10), X ~ Bin(11, 1/2)
    assert sign_test(before, before) == {"wins": 0, "losses": 0, "p_value": 1.0}
    # a net gain of two questions among many changes is what chance gives: not significant
    noisy = sign_test(np.array([True] * 20 + [False] * 22), np.array([False] * 20 + [True] * 22))
    assert noisy["wins"] == 22 and noisy["losses"] == 20 and noisy["p_value"] > 0.3


def test_judge_heldout_marks_the_questions_whose_own_entry_ranks_first(minilm):
    entries = [
        Entry("a", "doc", "", "Refunds are paid within five days.", "Refunds"),
        Entry("b", "doc", "", "We ship to France and Germany.", "Shipping"),
    ]
    heldout = [("when do I get my money back", 0), ("do you deliver to Paris", 0)]  # the second: wrong gold
    assert judge_heldout(minilm, entries, heldout)[1].tolist() == [True, False]


def test_read_judge_maps_entry_ids_to_positions_and_names_a_bad_row(tmp_path):
    entries = [Entry(f"d{i}", "doc", "", f"passage {i}", f"Doc {i}") for i in range(4)]
    path = tmp_path / "judge.csv"
    path.write_text("query,gold_ids\nwhere is passage one,d1\nthe second or third,d2; d3\n")
    assert read_judge(path, entries) == [
        ("where is passage one", frozenset({1})),
        ("the second or third", frozenset({2, 3})),
    ]
    path.write_text("query,gold_ids\nfine,d1\nwrong kb,d1;faq.csv#7\n")
    with pytest.raises(SourceError) as raised:
        read_judge(path, entries)
    assert raised.value.row == 1 and raised.value.field == "gold_ids" and "faq.csv#7" in str(raised.value)


def test_a_question_with_several_entries_counts_when_any_of_them_is_first(minilm):
    entries = [
        Entry("a", "doc", "", "Refunds are paid within five days.", "Refunds"),
        Entry("b", "doc", "", "We ship to France and Germany.", "Shipping"),
    ]
    heldout = [("do you deliver to Paris", frozenset({0, 1})), ("do you deliver to Paris", frozenset({0}))]
    scores, hits = judge_heldout(minilm, entries, heldout)
    assert hits.tolist() == [True, False] and scores["recall@1"] == 0.5


@pytest.mark.slow  # trains the tiny encoder for real: ~5 s quiet, 40 s at load 20
def test_a_judge_file_replaces_written_questions(tmp_path, tiny_encoder_dir):
    sources, model = doc_sources(tmp_path), ScriptedAnswerModel()
    plain = KnowledgeBase.build(sources, tmp_path / "plain", embedder=Embedder(str(tiny_encoder_dir)))
    ids = [entry.id for entry in plain.entries]
    judge = tmp_path / "judge.csv"
    rows = "".join(f"question about {i},{i}\n" for i in ids) + "a question nobody could place,\n"
    judge.write_text("query,gold_ids\n" + rows)  # the unlabelled row of a labelling sample is left out
    adapt = AdaptConfig(batch_size=4, epochs=1, min_gain=-1.0, max_p_value=1.0, judge_file=str(judge))
    cfg = replace(KBConfig(), adapt=adapt, embedding_model=str(tiny_encoder_dir))
    kb = KnowledgeBase.build(sources, tmp_path / "kb", cfg, adapt=True, generator=model)
    report = kb.manifest["adaptation"]
    assert model.calls == 0 and report["questions_generated"] == 0  # sentences train, the file judges
    assert report["heldout"] == "file" and report["heldout_queries"] == len(ids)
    assert report["kept"] and set(report["significance"]) == {"wins", "losses", "p_value"}

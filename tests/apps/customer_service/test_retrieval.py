import pytest

from apps.customer_service.config import RetrievalConfig
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.retrieval import Retriever
from core.embeddings import Embedder
from core.index import IndexMismatchError

FAQ = (
    "id,question,answer,title,url\n"
    "pw,How do I reset my password?,Use the Forgot password link on the sign-in page.,Passwords,https://x.example/pw\n"
    "ship,How long does delivery take?,Parcels arrive in three to five working days.,Delivery,\n"
    "gift,Do gift cards expire?,They stay valid three years; the voucher code is on the card.,Gift cards,\n"
)


@pytest.fixture
def tiny_kb(tmp_path, tiny_embedder):
    (tmp_path / "faq.csv").write_text(FAQ, encoding="utf-8")
    return KnowledgeBase.build([tmp_path / "faq.csv"], tmp_path / "kb", embedder=tiny_embedder)


def test_bm25_finds_lexical_match_and_reports_field_scores(tiny_kb, tiny_embedder):
    hits = Retriever(tiny_kb, embedder=tiny_embedder).search("resetting passwords", k=5, mode="bm25")
    assert [h.id for h in hits] == ["pw"]  # only entries sharing a (stemmed) word come back
    hit = hits[0]
    assert (hit.title, hit.url, hit.rank, hit.entry.kind) == ("Passwords", "https://x.example/pw", 1, "faq")
    assert hit.scores["bm25_question"] > 0 and hit.scores["bm25_content"] > 0
    assert hit.score == pytest.approx(max(hit.scores["bm25_question"], hit.scores["bm25_content"]))
    assert hit.to_dict()["scores"] == hit.scores


def test_field_combination_weights_question_and_answer(tiny_kb, tiny_embedder):
    # "voucher" appears only in the answer of "gift".
    answer_only = RetrievalConfig(field_combine="weighted", question_weight=1.0)
    both = RetrievalConfig(field_combine="weighted", question_weight=0.25)
    assert [h.id for h in Retriever(tiny_kb, both, tiny_embedder).search("voucher", mode="bm25")] == ["gift"]
    assert Retriever(tiny_kb, answer_only, tiny_embedder).search("voucher", mode="bm25") == []
    hit = Retriever(tiny_kb, both, tiny_embedder).search("voucher", mode="bm25")[0]
    assert hit.scores["bm25_question"] == 0
    assert hit.score == pytest.approx(0.75 * hit.scores["bm25_content"])


def test_dense_and_hybrid_return_every_score(tiny_kb, tiny_embedder):
    retriever = Retriever(tiny_kb, embedder=tiny_embedder)
    dense = retriever.search("parcel arrival", k=2, mode="dense")
    assert len(dense) == 2 and dense[0].score >= dense[1].score
    assert {"dense", "dense_question", "dense_content"} <= set(dense[0].scores)
    assert dense[0].score == pytest.approx(
        max(dense[0].scores["dense_question"], dense[0].scores["dense_content"])
    )
    hybrid = retriever.search("delivery parcels", k=3)
    assert sorted(h.id for h in hybrid) == ["gift", "pw", "ship"]
    assert {"bm25", "dense", "fused"} <= set(hybrid[0].scores)
    assert [h.rank for h in hybrid] == [1, 2, 3]
    assert all(0.0 <= h.score <= 1.0 for h in hybrid)  # min-max fused scores
    rrf = Retriever(tiny_kb, RetrievalConfig(fusion="rrf"), tiny_embedder).search("delivery parcels", k=3)
    assert "rrf" in rrf[0].scores and rrf[0].id == "ship"  # first in BM25, the only lexical match


def test_score_fusion_matches_hand_computation(tiny_kb, tiny_embedder):
    config = RetrievalConfig(fusion="score", dense_weight=0.6)
    hits = Retriever(tiny_kb, config, tiny_embedder).search("delivery parcels", k=3)
    bm25 = {h.id: h.scores["bm25"] for h in hits}
    dense = {h.id: h.scores["dense"] for h in hits}

    def minmax(values, id_):
        low, high = min(values.values()), max(values.values())
        return (values[id_] - low) / (high - low)

    for hit in hits:
        expected = 0.4 * minmax(bm25, hit.id) + 0.6 * minmax(dense, hit.id)
        assert hit.score == pytest.approx(expected, abs=1e-6)


def test_search_many_matches_search(tiny_kb, tiny_embedder):
    retriever = Retriever(tiny_kb, embedder=tiny_embedder)
    queries = ["password help", "gift card expiry"]
    batch = retriever.search_many(queries, k=2)
    assert [[h.id for h in row] for row in batch] == [
        [h.id for h in retriever.search(q, k=2)] for q in queries
    ]


def test_bad_queries_and_configs(tiny_kb, tiny_embedder):
    retriever = Retriever(tiny_kb, embedder=tiny_embedder)
    with pytest.raises(ValueError, match="query 1 is empty"):
        retriever.search_many(["ok", "  "])
    with pytest.raises(TypeError, match="list of queries"):
        retriever.search_many("just one")
    with pytest.raises(ValueError, match="k must be positive"):
        retriever.search("x", k=0)
    with pytest.raises(ValueError, match="mode"):
        retriever.search("x", mode="sparse")
    with pytest.raises(ValueError, match=r"invalid value for \['fusion', 'dense_weight'\]"):
        RetrievalConfig(fusion="max", dense_weight=2.0)


def test_query_encoder_must_match_the_kb(tiny_kb, tiny_embedder):
    other = Embedder.from_model(tiny_embedder.model, tiny_embedder.tokenizer, model_id="someone-else")
    with pytest.raises(IndexMismatchError, match="differs from the knowledge base"):
        Retriever(tiny_kb, embedder=other)


# ------------------------------------------------------------------ end to end, real MiniLM
PARAPHRASES = {
    "my password reset link never came": "acct-01",
    "the sofa arrived broken": "order-07",
    "can I get my order shipped to France": "ship-03",
    "how do I send back an item I don't want": "ret-02",
    "is a gift card still valid after two years": "gift-02",
    "I was billed two times for the same purchase": "pay-04",
    "what cookies do you use": "policies/privacy.md#cookies-0",
    "what do you do with my personal data": "policies/privacy.md#how-we-use-your-data-0",
}


def test_sample_kb_answers_paraphrases_at_rank_one(sample_kb_dir, minilm):
    kb = KnowledgeBase.load(sample_kb_dir)
    assert kb.embedding_model == "minilm-l6" and kb.dim == 384
    retriever = Retriever(kb, embedder=minilm)
    results = retriever.search_many(list(PARAPHRASES), k=3)
    top = {query: hits[0].id for query, hits in zip(PARAPHRASES, results, strict=True)}
    assert top == PARAPHRASES
    # A confident match is well separated from the runner-up (what the bot's confidence gate will use).
    first = results[0]
    assert first[0].scores["dense"] > 0.6 and first[0].scores["dense"] - first[1].scores["dense"] > 0.2

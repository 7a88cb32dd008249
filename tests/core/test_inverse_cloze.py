"""Inverse cloze pairs: which sentences become queries and what their positives hold."""

import pytest

from core.inverse_cloze import InverseClozeConfig, inverse_cloze_pairs

PASSAGE = (
    "Refunds are paid back to the card you used. They usually arrive within five working days. "
    "Gift cards cannot be refunded in cash at all. Ok."
)


def test_each_query_sentence_is_cut_from_its_context():
    pairs = inverse_cloze_pairs([PASSAGE], InverseClozeConfig(per_passage=10, keep_sentence=0.0))
    # "Ok." is too short to be a query (min_words 5) but stays in every context
    assert sorted(p.query for p in pairs) == [
        "Gift cards cannot be refunded in cash at all.",
        "Refunds are paid back to the card you used.",
        "They usually arrive within five working days.",
    ]
    for pair in pairs:
        assert pair.query not in pair.context and pair.source == 0
        assert len(pair.context.split(". ")) == 3 and pair.context.endswith("Ok.")  # all the others


def test_keep_sentence_leaves_the_query_in_its_context_and_prefixes_lead():
    pairs = inverse_cloze_pairs(
        [PASSAGE], InverseClozeConfig(per_passage=2, keep_sentence=1.0), prefixes=["Refund policy"]
    )
    assert len(pairs) == 2  # per_passage caps the queries of a passage
    for pair in pairs:
        assert pair.query in pair.context and pair.context.startswith("Refund policy\n")


def test_short_passages_give_no_pairs_and_the_seed_fixes_the_choice():
    passages = ["Only one sentence here is long enough.", PASSAGE, "", PASSAGE]
    config = InverseClozeConfig(per_passage=1)
    first = inverse_cloze_pairs(passages, config, seed=3)
    assert [p.source for p in first] == [1, 3]
    assert first == inverse_cloze_pairs(passages, config, seed=3)
    queries = {tuple(p.query for p in inverse_cloze_pairs(passages, config, seed=s)) for s in range(8)}
    assert len(queries) > 1  # another seed, another sentence


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="keep_sentence"):
        InverseClozeConfig(keep_sentence=1.5)
    with pytest.raises(ValueError, match="per_passage"):
        InverseClozeConfig(per_passage=0)
    with pytest.raises(ValueError, match="prefixes"):
        inverse_cloze_pairs([PASSAGE], prefixes=["a", "b"])

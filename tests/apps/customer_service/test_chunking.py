import pytest

from apps.customer_service.chunking import chunk_document, chunk_text, slugify, split_sections
from apps.customer_service.config import ChunkConfig

DOC = """Welcome text before any heading.

# Shipping policy

Intro paragraph.

## Delivery times

Standard takes 3 to 5 days.

## Step 1
One.

## Step
Two.

## Step
Three.

```
# not a heading inside a fence
```
"""


def test_slugify_matches_github_anchors():
    assert slugify("Delivery times") == "delivery-times"
    assert slugify("  Returns & Refunds (EU)!  ") == "returns-refunds-eu"
    assert slugify("Über uns_2") == "über-uns-2"
    assert slugify("C#") == "c"


def test_sections_follow_headings_and_skip_fenced_code():
    sections = split_sections(DOC)
    assert [s.slug for s in sections] == [
        "top",
        "shipping-policy",
        "delivery-times",
        "step-1",
        "step",
        "step-2",
    ]
    assert sections[2].headings == ("Shipping policy", "Delivery times")
    assert sections[0].body == "Welcome text before any heading."
    assert "# not a heading inside a fence" in sections[-1].body
    assert sections[2].line == 7


def test_duplicate_slugs_never_collide_with_existing_ones():
    # "Step" repeated must not reuse "step-1", which the heading "Step 1" already owns.
    keys = [c.key for c in chunk_document(DOC)]
    assert keys == ["top-0", "shipping-policy-0", "delivery-times-0", "step-1-0", "step-0", "step-2-0"]
    assert len(set(keys)) == len(keys)


def test_plain_text_has_no_headings():
    chunks = chunk_document("# not a heading\n\nsecond paragraph", markdown=False)
    assert [c.key for c in chunks] == ["top-0"]
    assert chunks[0].text.startswith("# not a heading")


def test_long_section_is_split_with_overlap_and_size_limit():
    sentences = [f"Sentence {i} talks about parcels and delivery windows." for i in range(30)]
    body = " ".join(sentences[:15]) + "\n\n" + " ".join(sentences[15:])
    chunks = chunk_text(body, max_chars=300, overlap_chars=80)
    assert len(chunks) > 3
    assert all(len(c) <= 300 for c in chunks)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        last_sentence = previous.rsplit(". ", 1)[-1].split("\n\n")[-1]
        assert current.startswith(last_sentence.strip()), (previous, current)
    # Every sentence survives the cut.
    joined = " ".join(chunks)
    assert all(s in joined for s in sentences)


def test_overlap_zero_gives_disjoint_chunks():
    body = "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(6))
    chunks = chunk_text(body, max_chars=200, overlap_chars=0)
    assert sum(c.count("Paragraph") for c in chunks) == 6


def test_overlong_word_is_cut_hard():
    chunks = chunk_text("x" * 500, max_chars=200, overlap_chars=20)
    assert all(len(c) <= 200 for c in chunks) and "".join(chunks).count("x") >= 500


def test_editing_one_section_keeps_other_ids_and_texts():
    before = {c.key: c.text for c in chunk_document(DOC)}
    after = {c.key: c.text for c in chunk_document(DOC.replace("Standard takes 3 to 5 days.", "Now 2 days."))}
    assert before.keys() == after.keys()
    changed = [key for key in before if before[key] != after[key]]
    assert changed == ["delivery-times-0"]


def test_blank_document_gives_no_chunks():
    assert chunk_document("  \n\n# Only a heading\n") == []


@pytest.mark.parametrize("max_chars,overlap", [(20, 5), (200, 150), (200, -1)])
def test_bad_chunk_config_is_rejected(max_chars, overlap):
    with pytest.raises(ValueError, match="ChunkConfig"):
        ChunkConfig(max_chars, overlap)

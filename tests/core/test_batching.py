"""Token-length batching: every text exactly once, sorted by token count, padded on the right."""

import numpy as np
import pytest
from transformers import AutoTokenizer

from core import batching, models
from core.batching import pad_right, token_batches

TEXTS = [
    "short",
    "a much longer sentence about interest rates, quarterly revenue and the central bank",
    "",
    "URL-heavy: https://example.com/a/b/c?d=e&f=g#h https://example.org/x",
    "日本語のテキスト",
    "mid length text here",
    "word " * 300,  # past the 64-token limit used below
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(models.model_path(models.DEFAULT_ENCODER)))


def test_batches_cover_every_text_once_sorted_by_token_count(tokenizer):
    lengths = [len(ids) for ids in tokenizer(TEXTS, truncation=True, max_length=64)["input_ids"]]
    seen, widths = [], []
    for idx, features in token_batches(tokenizer, TEXTS, max_length=64, batch_size=3):
        assert len(idx) <= 3
        seen.extend(idx.tolist())
        widths.append(features["input_ids"].shape[1])
        # Each batch is as wide as its longest member, and the mask counts each row's real tokens.
        assert features["input_ids"].shape[1] == max(lengths[i] for i in idx)
        assert features["attention_mask"].sum(dim=1).tolist() == [lengths[i] for i in idx]
    assert sorted(seen) == list(range(len(TEXTS)))
    assert [lengths[i] for i in seen] == sorted(lengths, reverse=True)
    assert widths == sorted(widths, reverse=True)
    assert max(widths) == 64  # truncated


def test_rows_match_the_tokenizer_with_right_padding(tokenizer):
    for idx, features in token_batches(tokenizer, TEXTS, 64, 4, with_token_type_ids=True):
        reference = tokenizer(
            [TEXTS[i] for i in idx], padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            assert features[key].tolist() == reference[key].tolist(), key


def test_chunks_keep_global_indices(tokenizer, monkeypatch):
    monkeypatch.setattr(batching, "SORT_CHUNK", 2)
    got = {}
    for idx, features in token_batches(tokenizer, TEXTS, 64, 8):
        assert len(idx) <= 2
        for row, i in enumerate(idx):
            n = int(features["attention_mask"][row].sum())
            got[int(i)] = features["input_ids"][row, :n].tolist()
    expected = tokenizer(TEXTS, truncation=True, max_length=64)["input_ids"]
    assert got == dict(enumerate(expected))


def test_pad_right_fills_missing_pad_values_with_zero():
    fields = {"input_ids": [[5, 6, 7], [8]], "extra": [[1, 1, 1], [2]]}
    out = pad_right(fields, [1, 0], {"input_ids": 9})
    assert out["input_ids"].tolist() == [[8, 9, 9], [5, 6, 7]]
    assert out["extra"].tolist() == [[2, 0, 0], [1, 1, 1]]
    assert out["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]


def test_tokenizer_without_pad_token_uses_eos(tokenizer):
    class NoPad:
        pad_token_id = None
        eos_token_id = 2

        def __call__(self, texts, **kwargs):
            return tokenizer(texts, **kwargs)

    batches = list(token_batches(NoPad(), ["one two three", "x"], 16, 2))
    ((idx, features),) = batches
    short = int(np.where(idx == 1)[0][0])
    n = int(features["attention_mask"][short].sum())
    assert features["input_ids"][short, n:].tolist() == [2] * (features["input_ids"].shape[1] - n)


def test_batch_size_must_be_positive(tokenizer):
    with pytest.raises(ValueError, match="batch_size"):
        list(token_batches(tokenizer, TEXTS, 64, 0))


def test_map_ordered_keeps_order_runs_at_once_and_bounds_what_it_takes():
    import threading
    import time

    from core.batching import map_ordered

    threads: set[str] = set()
    taken = []

    def slow(x: int) -> int:
        threads.add(threading.current_thread().name)
        time.sleep(0.01 * (x % 3))  # out-of-order completion
        return x * x

    def source():
        for x in range(20):
            taken.append(x)
            yield x

    results = map_ordered(slow, source(), workers=3)
    assert next(results) == 0
    assert len(taken) <= 2 * 3 + 1  # takes at most 2 * workers ahead of what it yields
    assert [0, *results] == [x * x for x in range(20)]
    assert len(threads) > 1 and all(name.startswith("forward") for name in threads)
    main = threading.current_thread().name
    threads.clear()
    assert list(map_ordered(slow, range(4), workers=1)) == [0, 1, 4, 9]
    assert list(map_ordered(slow, [3], workers=4)) == [9]
    assert list(map_ordered(slow, [], workers=4)) == []
    assert threads == {main}  # one worker, or one item: the calling thread


def test_map_ordered_raises_the_first_error_in_order():
    from core.batching import map_ordered

    def fail_on_two(x: int) -> int:
        if x == 2:
            raise ValueError("two")
        return x

    got = []
    with pytest.raises(ValueError, match="two"):
        for value in map_ordered(fail_on_two, range(10), workers=2):
            got.append(value)
    assert got == [0, 1]


def test_forward_workers():
    import os

    from core.batching import forward_workers

    assert forward_workers(3) == 3
    assert forward_workers(0) == max(1, min(len(os.sched_getaffinity(0)), 4))
    assert forward_workers(0, limit=1) == 1
    with pytest.raises(ValueError, match=">= 0"):
        forward_workers(-1)

"""Frozen item vectors read back from the cache instead of embedded again."""

from __future__ import annotations

import hashlib

import numpy as np

from apps.recommender.text_vectors import cached_item_vectors


class HashEncoder:
    """A deterministic stand-in encoder that counts the texts it encodes."""

    model_id = "hash-8"
    max_length = 16

    def __init__(self) -> None:
        self.encoded = 0

    def encode(self, texts, batch_size=64, show_progress_bar=None):
        self.encoded += len(texts)
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:32], dtype=np.uint8) for t in texts]
        return np.asarray(rows, dtype=np.float32)[:, :8] - 128.0


def test_cached_item_vectors_embed_once_per_catalogue_and_encoder(sample_dataset, tmp_path):
    encoder = HashEncoder()
    first = cached_item_vectors(sample_dataset, encoder, cache=tmp_path)
    again = cached_item_vectors(sample_dataset, encoder, cache=tmp_path)
    assert encoder.encoded == sample_dataset.n_items  # the second call read the file
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    # Another token limit (or encoder, or any item text) is another entry, not a stale hit.
    encoder.max_length = 32
    cached_item_vectors(sample_dataset, encoder, cache=tmp_path)
    assert encoder.encoded == 2 * sample_dataset.n_items
    changed = sample_dataset.with_interactions(sample_dataset.interactions)
    changed.items = changed.items.assign(text=changed.items["text"].str.upper())
    cached_item_vectors(changed, encoder, cache=tmp_path)
    assert encoder.encoded == 3 * sample_dataset.n_items
    # A damaged cache file is embedded again and rewritten.
    for path in (tmp_path / "recommender-vectors").glob("*.npy"):
        path.write_bytes(b"not numpy")
    np.testing.assert_array_equal(cached_item_vectors(sample_dataset, HashEncoder(), cache=tmp_path), first)
    assert not list((tmp_path / "recommender-vectors").glob(".*.tmp"))

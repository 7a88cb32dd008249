"""The projection head over frozen vectors, trained contrastively in the shared loop."""

from __future__ import annotations

import numpy as np
import pytest

from core.finetune.contrastive import ContrastiveTrainConfig
from core.finetune.projection import (
    HistoryPairs,
    ProjectedEmbedder,
    apply_projection,
    load_projection,
    train_projection,
)

N_ITEMS, GROUPS = 60, 6


def _data(seed: int = 0) -> tuple[np.ndarray, HistoryPairs]:
    """Item vectors whose cosine is dominated by 12 noise dimensions; behaviour follows a group code
    in 4 weak dimensions: the next item is another item of the same group (of 10)."""
    rng = np.random.default_rng(seed)
    group = np.arange(N_ITEMS) % GROUPS
    code = rng.normal(size=(GROUPS, 4))[group] * 0.3
    vectors = np.hstack([code, rng.normal(size=(N_ITEMS, 12))]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    last = rng.integers(0, N_ITEMS, size=800)
    step = rng.integers(1, N_ITEMS // GROUPS, size=800) * GROUPS
    histories = np.stack([last, np.full_like(last, -1)], axis=1)
    return vectors, HistoryPairs(histories, (last + step) % N_ITEMS)


def _hits_at_10(vectors: np.ndarray, pairs: HistoryPairs) -> float:
    scores = vectors[pairs.histories[:, 0]] @ vectors.T
    scores[np.arange(len(pairs)), pairs.histories[:, 0]] = -np.inf
    own = scores[np.arange(len(pairs)), pairs.items]
    return float(np.mean((scores > own[:, None]).sum(axis=1) < 10))


def test_projection_head_learns_behaviour_and_round_trips(tmp_path):
    vectors, pairs = _data()
    config = ContrastiveTrainConfig(
        epochs=8, batch_size=64, lr=0.05, val_fraction=0.2, patience=3, precision="fp32", device="cpu"
    )
    result = train_projection(vectors, pairs, tmp_path / "head", config)
    tuned = result.apply(vectors)
    # The frozen vectors find the next item's group barely above chance; the head learns it.
    frozen_hits, tuned_hits = _hits_at_10(vectors, pairs), _hits_at_10(tuned, pairs)
    assert frozen_hits < 0.4 and tuned_hits > 0.8, (frozen_hits, tuned_hits)
    assert result.report["best_epoch"] >= 1
    weight, bias = load_projection(tmp_path / "head")
    np.testing.assert_array_equal(weight, result.weight)
    np.testing.assert_allclose(apply_projection(vectors, weight, bias), tuned)
    assert result.model_suffix.startswith("+head:") and len(result.model_suffix) == 18

    class Frozen:
        model_id = "frozen"

        def encode(self, texts, batch_size=64, show_progress_bar=None):
            return vectors[[int(t) for t in texts]]

    embedder = ProjectedEmbedder(Frozen(), weight, bias, "frozen+head")
    # two rows and the whole matrix may take different BLAS kernels: equal up to float32 rounding
    np.testing.assert_allclose(embedder.encode(["3", "7"]), tuned[[3, 7]], rtol=1e-5, atol=1e-6)
    # The same seed trains the same head.
    again = train_projection(vectors, pairs, tmp_path / "again", config)
    np.testing.assert_array_equal(again.weight, result.weight)


def test_projection_refuses_too_few_pairs_and_bad_files(tmp_path):
    vectors, pairs = _data()
    small = HistoryPairs(pairs.histories[:20], pairs.items[:20])
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_projection(vectors, small, tmp_path, ContrastiveTrainConfig(batch_size=64, device="cpu"))
    with pytest.raises(FileNotFoundError, match="no projection head"):
        load_projection(tmp_path / "nowhere")

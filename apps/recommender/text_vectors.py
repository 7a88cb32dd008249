"""Item vectors from item text, and user vectors as recency-weighted means of history vectors.

A user's vector is ``sum_j w_j v_j / ||sum_j w_j v_j||`` over the last ``max_history`` items of
their history, with ``w_j = 0.5 ** (age_j / half_life)`` where ``age_j`` counts interactions back
from the most recent (0 for the newest). Position, not wall-clock time, sets the weight so the
same setting works for data sets whose users act hourly or yearly.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy import sparse

from apps.recommender.interactions import Dataset
from core.atomic import write_bytes_atomic
from core.paths import cache_dir

logger = logging.getLogger(__name__)


class TextEncoder(Protocol):
    """What is needed of :class:`core.embeddings.Embedder`."""

    @property
    def model_id(self) -> str:
        """Id of the encoder."""
        ...

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """L2-normalised vectors, one row per text."""
        ...


def embed_items(
    dataset: Dataset, encoder: TextEncoder, batch_size: int = 64, show_progress_bar: bool | None = None
) -> np.ndarray:
    """Encode every item's text, in item-index order.

    Args:
        dataset: Items to encode (``dataset.texts``).
        encoder: An :class:`core.embeddings.Embedder` (or anything with its ``encode``).
        batch_size: Texts per forward pass.
        show_progress_bar: Passed to ``encode``.

    Returns:
        float32 ``(n_items, dim)``, L2-normalised.
    """
    vectors = np.asarray(
        encoder.encode(dataset.texts, batch_size=batch_size, show_progress_bar=show_progress_bar)
    )
    return normalise(vectors.astype(np.float32, copy=False))


def cached_item_vectors(
    dataset: Dataset,
    encoder: TextEncoder,
    batch_size: int = 64,
    show_progress_bar: bool | None = None,
    cache: Path | None = None,
) -> np.ndarray:
    """:func:`embed_items` through a cache keyed by the encoder and the item texts.

    For frozen encoders: evaluating or training on the same catalogue again reads the vectors back
    (``<cache_dir>/recommender-vectors/<sha256>.npy``) instead of running the encoder over every item.
    The key covers the encoder's id and token limit and every item text in order, so a changed
    catalogue or encoder misses the cache instead of reading stale vectors. Vectors of a fine-tuned
    encoder (an adapter trained in this run) are not worth caching; use :func:`embed_items`.

    Args:
        dataset: Items to encode.
        encoder: A frozen :class:`core.embeddings.Embedder`.
        batch_size: Texts per forward pass.
        show_progress_bar: Passed to ``encode``.
        cache: Cache directory (default: the suite's model cache, :func:`core.paths.cache_dir`).

    Returns:
        float32 ``(n_items, dim)``, L2-normalised.
    """
    digest = hashlib.sha256(
        json.dumps([encoder.model_id, getattr(encoder, "max_length", None)]).encode("utf-8")
    )
    for text in dataset.texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = (cache or cache_dir()) / "recommender-vectors" / f"{digest.hexdigest()[:32]}.npy"
    if path.is_file():
        try:
            vectors = np.load(path, allow_pickle=False)
            if vectors.shape[0] == dataset.n_items and vectors.dtype == np.float32:
                logger.info("Item vectors read from the cache", extra={"path": str(path)})
                return vectors
        except (OSError, ValueError) as err:
            logger.warning(
                "Unreadable cached item vectors; embedding again",
                extra={"path": str(path), "error": str(err)},
            )
    vectors = embed_items(dataset, encoder, batch_size, show_progress_bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue(), suffix=".tmp")
    return vectors


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def recency_weights(length: int, half_life: float | None, max_history: int | None) -> np.ndarray:
    """Weights of a history of ``length`` items, oldest first (zero beyond ``max_history``).

    Args:
        length: Items in the history.
        half_life: Interactions after which an item's weight halves; ``None`` weighs all equally.
        max_history: Only the most recent this many items count (``None``: all).
    """
    if half_life is not None and half_life <= 0:
        raise ValueError(f"half_life must be positive or None, got {half_life}")
    age = np.arange(length - 1, -1, -1, dtype=np.float64)
    weights = np.ones(length) if half_life is None else 0.5 ** (age / half_life)
    if max_history is not None:
        weights[age >= max_history] = 0.0
    return weights


def history_matrix(
    histories: Sequence[np.ndarray], n_items: int, half_life: float | None, max_history: int | None
) -> sparse.csr_matrix:
    """Users x items CSR of recency weights (a repeated item sums its weights)."""
    rows, cols, vals = [], [], []
    for r, history in enumerate(histories):
        weights = recency_weights(len(history), half_life, max_history)
        keep = weights > 0
        rows.append(np.full(int(keep.sum()), r))
        cols.append(np.asarray(history)[keep])
        vals.append(weights[keep])
    matrix = sparse.csr_matrix(
        (
            np.concatenate(vals) if vals else np.empty(0),
            (
                np.concatenate(rows) if rows else np.empty(0, int),
                np.concatenate(cols) if cols else np.empty(0, int),
            ),
        ),
        shape=(len(histories), n_items),
        dtype=np.float32,
    )
    matrix.sum_duplicates()
    return matrix


def user_vectors(
    histories: Sequence[np.ndarray],
    item_vectors: np.ndarray,
    half_life: float | None = 10.0,
    max_history: int | None = 50,
) -> np.ndarray:
    """Recency-weighted mean of each history's item vectors, L2-normalised.

    Args:
        histories: Per user, item indices oldest first.
        item_vectors: ``(n_items, dim)`` item vectors.
        half_life: See :func:`recency_weights`.
        max_history: See :func:`recency_weights`.

    Returns:
        float32 ``(len(histories), dim)``; an empty history gives a zero vector.
    """
    weights = history_matrix(histories, len(item_vectors), half_life, max_history)
    return normalise(np.asarray(weights @ item_vectors, dtype=np.float32))

"""The scorer interface every recommender model implements, and deterministic top-k helpers.

A scorer is fit on a training :class:`~apps.recommender.interactions.Dataset` and scores users against
the whole catalogue of that dataset. Scores are float32, higher is better. With
``exclude_seen=True`` items the user interacted with in training get ``-inf``.

Documented fallbacks (never a crash mid-job):

* a user id that is not in the dataset's user map, and a user with no training interactions,
  get the popularity scores of the training data (interaction counts); the first case is logged.
* ties are broken by item index (lower first), in both :func:`top_k` and :func:`rank_of`, so
  results are deterministic and the two agree.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Self

import numpy as np
from scipy import sparse

from apps.recommender.interactions import Dataset

logger = logging.getLogger(__name__)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the ``k`` best column indices, best first, ties by lower index.

    Args:
        scores: ``(n_rows, n_items)`` scores; ``-inf`` marks items that must not be returned.
        k: How many per row.

    Returns:
        ``(indices, values)`` of shape ``(n_rows, min(k, n_items))``; rows with fewer finite
        scores are padded with index ``-1`` and value ``-inf``.
    """
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    scores = np.asarray(scores)
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    indices = np.full((n_rows, k), -1, dtype=np.int64)
    values = np.full((n_rows, k), -np.inf, dtype=np.float32)
    if n_rows == 0 or k == 0:
        return indices, values
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    for r in range(n_rows):
        row = scores[r]
        candidates = np.flatnonzero((row >= kth[r]) & (row > -np.inf))  # ascending index order
        best = candidates[np.argsort(-row[candidates], kind="stable")[:k]]
        indices[r, : len(best)] = best
        values[r, : len(best)] = row[best]
    return indices, values


def rank_of(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of ``targets[r]`` in row ``r`` under the :func:`top_k` order (ties by index).

    Args:
        scores: ``(n_rows, n_items)`` scores.
        targets: One item index per row.

    Returns:
        int64 ranks; a target scored ``-inf`` ranks after every finite item.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    higher = (scores > target_scores).sum(axis=1)
    tied_before = ((scores == target_scores) & (np.arange(scores.shape[1])[None, :] < targets[:, None])).sum(
        axis=1
    )
    return (1 + higher + tied_before).astype(np.int64)


class Scorer(ABC):
    """Base class: ``fit(train)`` then ``score(user_ids)`` over the training catalogue.

    Subclasses implement :meth:`_fit` and :meth:`_score_users` (users that have training
    history only); the base class handles id lookup, the popularity fallback and seen items.
    """

    name: str = "scorer"

    def __init__(self) -> None:
        self._train: Dataset | None = None
        self._seen: sparse.csr_matrix | None = None
        self._popularity: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, fitted={self._train is not None})"

    @property
    def train(self) -> Dataset:
        """The dataset the scorer was fit on."""
        if self._train is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")
        return self._train

    @property
    def seen(self) -> sparse.csr_matrix:
        """Binary users x items matrix of training interactions."""
        if self._seen is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")
        return self._seen

    @property
    def popularity(self) -> np.ndarray:
        """Training interactions per item (float32), the fallback scores."""
        if self._popularity is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(train) first")
        return self._popularity

    def fit(self, train: Dataset) -> Self:
        """Learn from ``train`` (its catalogue and user map define what is scored).

        Returns:
            The scorer itself.
        """
        self._attach(train)
        self._fit(train)
        return self

    def _attach(self, train: Dataset) -> None:
        """Bind the training data (what :meth:`fit` does before model-specific training; loaders of
        stored weights call it instead of :meth:`fit`)."""
        self._train = train
        self._seen = train.user_item_matrix(binary=True)
        self._popularity = train.item_counts().astype(np.float32)

    @abstractmethod
    def _fit(self, train: Dataset) -> None:
        """Model-specific training."""

    @abstractmethod
    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores ``(len(user_idx), n_items)`` for users that have training history."""

    def score_indices(self, user_idx: Sequence[int] | np.ndarray, exclude_seen: bool = True) -> np.ndarray:
        """Scores for user indices of the training dataset (``-1`` = unknown user).

        Args:
            user_idx: User indices; ``-1`` or users with no history get popularity scores.
            exclude_seen: Set items seen in training to ``-inf``.

        Returns:
            float32 array ``(len(user_idx), n_items)``.

        Raises:
            ValueError: The model produced NaN scores.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        seen = self.seen
        n_items = self.train.n_items
        out = np.empty((len(user_idx), n_items), dtype=np.float32)
        known = user_idx >= 0
        counts = np.zeros(len(user_idx), dtype=np.int64)
        counts[known] = np.diff(seen.indptr)[user_idx[known]]
        active = counts > 0
        out[~active] = self.popularity
        if active.any():
            out[active] = self._score_users(user_idx[active])
        if np.isnan(out).any():
            raise ValueError(f"{type(self).__name__} produced NaN scores")
        if exclude_seen and active.any():
            rows = np.flatnonzero(active)
            block = seen[user_idx[rows]].tocoo()
            out[rows[block.row], block.col] = -np.inf
        return out

    def user_indices(self, user_ids: Sequence[str]) -> np.ndarray:
        """Map user ids to indices; unknown ids become ``-1`` (and are logged)."""
        index = self.train.user_index
        idx = np.array([index.get(str(u), -1) for u in user_ids], dtype=np.int64)
        unknown = int((idx < 0).sum())
        if unknown:
            logger.info("Unknown users get popularity scores", extra={"unknown_users": unknown})
        return idx

    def score(self, user_ids: Sequence[str], exclude_seen: bool = True) -> np.ndarray:
        """Scores over the catalogue for user ids (see :meth:`score_indices`)."""
        return self.score_indices(self.user_indices(user_ids), exclude_seen)

    def recommend(
        self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> tuple[list[list[str]], list[np.ndarray]]:
        """Top-``k`` item ids and scores per user, best first.

        Args:
            user_ids: The users.
            k: Items per user.
            exclude_seen: Leave out items seen in training.

        Returns:
            ``(item_ids, scores)``, one list / array per user (shorter when fewer items remain).
        """
        indices, values = top_k(self.score(user_ids, exclude_seen), k)
        item_ids = self.train.item_ids
        keep = [row >= 0 for row in indices]
        return (
            [item_ids[row[m]].tolist() for row, m in zip(indices, keep, strict=True)],
            [vals[m] for vals, m in zip(values, keep, strict=True)],
        )

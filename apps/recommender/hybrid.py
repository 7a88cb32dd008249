"""The hybrid recommender: candidates ranked by the learned ranker, cold-item slots, reasons.

:class:`HybridScorer` serves a ranker of :mod:`apps.recommender.ranker` (logistic regression or
LambdaRank trees) behind the
:class:`~apps.recommender.scorer.Scorer` interface: candidates (text ANN, co-occurrence, EASE,
popular) are ranked by the model; the rest of the catalogue follows in popularity order, so
full-ranking evaluation works. Items with no training interactions get the reserved positions of
:class:`~apps.recommender.config.ColdSlots`. Each recommendation carries a reason
(:mod:`apps.recommender.reasons`): the features that pushed it up most (coefficient x standardised
value, or the trees' TreeSHAP contributions) and the most similar item in the user's history.

A chunk of users is served as arrays: candidates, features, logits and contributions cover every
(user, candidate) row at once; the lists are merged with the cold slots for all users together
(:func:`~apps.recommender.cold.merge_slots_batch`), and reason strings are built only for the
returned rows, by Arrow string kernels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from apps.recommender.baselines import EASEScorer, ItemKNNScorer
from apps.recommender.candidates import CandidateGenerator, isin_sorted, matrix_keys
from apps.recommender.cold import ColdRanker, merge_slots_batch
from apps.recommender.config import RankerConfig
from apps.recommender.features import FeatureBuilder
from apps.recommender.interactions import Dataset
from apps.recommender.ranker import LinearRanker, Ranker, feature_builder, fit_ease, fit_ranker, training_rows
from apps.recommender.reasons import FEATURE_LABELS, REASON_FEATURES, reason_strings
from apps.recommender.scorer import Scorer, top_k
from apps.recommender.text_vectors import normalise
from core.config import to_dict
from core.index import VectorIndex

logger = logging.getLogger(__name__)


class HybridScorer(Scorer):
    """Candidates (text ANN, co-occurrence, EASE, popular) ranked by a learned ranker.

    Cold items (no training interactions) also get the reserved positions of
    :class:`~apps.recommender.config.ColdSlots`, ranked among themselves by text similarity.

    Args:
        item_vectors: ``(n_items, dim)`` text vectors (frozen or fine-tuned encoder).
        config: Candidate counts, features, regression settings and cold slots.
        ranker: A trained ranker to use instead of training one in :meth:`fit`.
        index: A vector index over the same item vectors (built when ``None``).
        cf: An ItemKNN scorer already fit on the training data :meth:`fit` gets (a saved model's),
            used instead of fitting one.
        ease: Likewise for the EASE source (ignored when ``config.ease`` is off).
        row_vectors: Item vectors the ranker's training rows are built from (default:
            ``item_vectors``): those of an encoder tuned without the ranker's target items (each
            user's last training item), whose text similarities to those targets are not inflated
            by having trained on them.
    """

    name = "hybrid"

    def __init__(
        self,
        item_vectors: np.ndarray,
        config: RankerConfig | None = None,
        ranker: Ranker | None = None,
        index: VectorIndex | None = None,
        cf: ItemKNNScorer | None = None,
        ease: EASEScorer | None = None,
        row_vectors: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.item_vectors = np.asarray(item_vectors, dtype=np.float32)
        self.row_vectors = None if row_vectors is None else np.asarray(row_vectors, dtype=np.float32)
        if self.row_vectors is not None and len(self.row_vectors) != len(self.item_vectors):
            raise ValueError(f"{len(self.row_vectors)} row vectors for {len(self.item_vectors)} items")
        self.config = config or RankerConfig()
        self.ranker = ranker
        self.index = index
        self._fitted_cf = cf
        self._fitted_ease = ease
        self.generator: CandidateGenerator | None = None
        self.features: FeatureBuilder | None = None
        self.cold: ColdRanker | None = None
        self._arrow_cache: tuple[pd.DataFrame, pa.Array, pa.Array] | None = None

    def _fit(self, train: Dataset) -> None:
        if self.ranker is None:
            row_vectors = self.item_vectors if self.row_vectors is None else self.row_vectors
            rows, labels = training_rows(train, row_vectors, self.config)
            self.ranker = fit_ranker(rows, labels, self.config)
            if isinstance(self.ranker, LinearRanker):
                logger.info(
                    "Ranker fitted",
                    extra={
                        "coef": dict(
                            zip(self.ranker.feature_names, self.ranker.coef.round(3).tolist(), strict=True)
                        )
                    },
                )
        ease = self._fitted_ease if self._fitted_ease is not None else fit_ease(train, self.config)
        self.generator = CandidateGenerator(
            train,
            self.item_vectors,
            index=self.index,
            cf=self._fitted_cf,
            config=self.config.candidates,
            ease=ease if self.config.ease else None,
        )
        self.features = feature_builder(train, self.item_vectors, self.config)
        frame = train.interactions
        now = float(frame["timestamp"].max()) if len(frame) else None
        self.cold = ColdRanker(
            self.generator.item_vectors, train.item_counts(), self.features.item_start, now, self.config.cold
        )

    def _ranked_candidates(
        self, user_ids: Sequence[str]
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
        """Candidates, their features, the standardised feature matrix and the logits."""
        assert self.generator is not None and self.features is not None and self.ranker is not None
        candidates = self.generator.generate(list(user_ids))
        features = self.features.build(candidates)
        z = self.ranker.standardise(features)
        return candidates, features, z, self.ranker.decision(z)

    def _user_indices(self, user_ids: Sequence[str]) -> np.ndarray:
        index = self.train.user_index
        return np.array([index.get(str(u), -1) for u in user_ids], dtype=np.int64)

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        """Recency-weighted history vectors (zero rows for unknown users and empty histories)."""
        assert self.generator is not None
        users = self._user_indices(user_ids)
        vectors = np.asarray(self.generator.weights[np.maximum(users, 0)] @ self.generator.item_vectors)
        vectors[users < 0] = 0.0
        return normalise(vectors.astype(np.float32))

    def _cold_top(self, user_ids: Sequence[str], length: int) -> np.ndarray:
        slots = self.config.cold
        n = slots.n_slots(length)
        if self.cold is None or not n or not len(self.cold):
            return np.full((len(user_ids), 0), -1, dtype=np.int64)
        return self.cold.top(self.user_vectors(user_ids), n)[0]

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        user_ids = self.train.user_ids[user_idx].tolist()
        candidates, _, _, logits = self._ranked_candidates(user_ids)
        # Non-candidates follow all candidates, in popularity order: scores in [0, 1) vs (1, 2).
        base = self.popularity / (self.popularity.max(initial=0) + 1)
        out = np.tile(base.astype(np.float32), (len(user_ids), 1))
        rows = pd.Index(user_ids).get_indexer(candidates["user_id"])
        out[rows, candidates["item_idx"].to_numpy()] = 1 + 1 / (1 + np.exp(-logits))
        length = min(self.config.cold.last_slot, self.train.n_items)
        cold = self._cold_top(user_ids, length)
        if cold.shape[1]:
            masked = out.copy()
            seen = self.seen[user_idx].tocoo()
            masked[seen.row, seen.col] = -np.inf
            heads, _ = merge_slots_batch(top_k(masked, length)[0], cold, length, self.config.cold)
            r, position = np.nonzero(heads >= 0)
            # The merged head ranks above everything else (scores in (3, 4]).
            out[r, heads[r, position]] = 3 + (length - position.astype(np.float32)) / length
        return out

    def recommend_with_reasons(
        self, user_ids: Sequence[str], k: int = 10, n_reasons: int = 2
    ) -> pd.DataFrame:
        """Top-``k`` unseen items per user with score and reason.

        Computed for the whole list of users at once: candidates, features, logits and the
        contributions behind the reasons are arrays over every (user, candidate) row; the lists are
        merged with the cold slots for all users together, and reasons are built for the returned
        rows only.

        Args:
            user_ids: The users (unknown ids get popular items; see the candidate fallback).
            k: Items per user.
            n_reasons: Features named in each reason.

        Returns:
            ``user_id``, ``rank`` (1-based), ``item_id``, ``score`` (ranker logit; an item in a
            reserved cold slot, or filling a list beyond the candidates, repeats the score before
            it, so scores never increase down a list), ``reason``, ``similar_item_id`` (most
            similar history item, or None), ``similar_score`` and ``cold_slot``.
        """
        if k < 1:
            raise ValueError(f"k must be positive, got {k}")
        user_ids = [str(u) for u in user_ids]
        unique = list(dict.fromkeys(user_ids))
        frame = self._reasons_frame(unique, k, n_reasons)
        if len(unique) == len(user_ids):
            return frame
        parts = {u: g for u, g in frame.groupby("user_id", sort=False)}
        return pd.concat([parts[u] for u in user_ids if u in parts], ignore_index=True)

    def _reasons_frame(self, user_ids: list[str], k: int, n_reasons: int) -> pd.DataFrame:
        candidates, features, z, logits = self._ranked_candidates(user_ids)
        assert self.features is not None
        n_items, n_users = self.train.n_items, len(user_ids)
        row = pd.Index(user_ids).get_indexer(candidates["user_id"])
        cand_items = candidates["item_idx"].to_numpy(dtype=np.int64)
        cand_keys = row * n_items + cand_items  # sorted: users in input order, items ascending
        order = np.lexsort((cand_items, -logits, row))
        counts = np.bincount(row, minlength=n_users)
        cold = self._cold_top(user_ids, k)
        # Enough ranked items per user even when every cold item is also a candidate.
        ranked = _head(cand_items[order], counts, k + cold.shape[1])
        warm = np.hstack([ranked, self._popular_unseen(user_ids, k)])
        merged, merged_cold = merge_slots_batch(warm, cold, k, self.config.cold)
        rows, position = np.nonzero(merged >= 0)  # row-major: users in order, ranks ascending
        items, is_cold = merged[rows, position], merged_cold[rows, position]
        keys = rows * n_items + items
        pos = np.minimum(np.searchsorted(cand_keys, keys), max(len(cand_keys) - 1, 0))
        scored = (cand_keys[pos] == keys) & ~is_cold if len(cand_keys) else np.zeros(len(keys), dtype=bool)
        scores = np.full(merged.shape, np.nan)
        scores[rows, position] = np.where(scored, logits[pos] if len(logits) else 0.0, np.nan)
        scores = _fill_gaps(scores)[rows, position]
        similar = np.where(scored, features["similar_item_idx"].to_numpy()[pos] if len(pos) else -1, -1)
        similarity = np.where(scored, features["similar_score"].to_numpy()[pos] if len(pos) else 0.0, np.nan)
        missing = np.flatnonzero(~scored)
        users = self._user_indices(user_ids)
        found = self.features.most_similar(users[rows[missing]], items[missing])
        similar[missing], similarity[missing] = found
        similarity[missing[similar[missing] < 0]] = np.nan
        titles, item_ids = self._arrow_columns()
        top, lifts = self._lifts(z, row, counts, pos[scored], n_reasons)
        names = [f for f in REASON_FEATURES if f in self.ranker.feature_names] if self.ranker else []
        reasons = reason_strings(
            similar, similarity, titles, [self._label(n) for n in names], scored, top, lifts, is_cold
        )
        has_similar = similar >= 0
        return pd.DataFrame(
            {
                "user_id": pd.Series(pa.array(user_ids, pa.string()).take(pa.array(rows)), dtype="str"),
                "rank": position + 1,
                "item_id": pd.Series(item_ids.take(pa.array(items)), dtype="str"),
                "score": scores,
                "reason": pd.Series(reasons, dtype="str"),
                "similar_item_id": pd.Series(
                    np.where(has_similar, self.train.item_ids[np.maximum(similar, 0)], None), dtype=object
                ),
                "similar_score": np.where(has_similar, similarity, np.nan),
                "cold_slot": is_cold,
            }
        )

    def _lifts(
        self, z: np.ndarray, row: np.ndarray, counts: np.ndarray, scored_pos: np.ndarray, n_reasons: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n_reasons`` features that lift each scored row most above the user's average candidate.

        Returns:
            ``(top, lifts)``: positions among the reason features present, and their lifts, largest
            first; one row per entry of ``scored_pos`` (candidate row numbers).
        """
        assert self.ranker is not None
        names = [f for f in REASON_FEATURES if f in self.ranker.feature_names]
        if not len(scored_pos) or not names:
            return np.zeros((len(scored_pos), 0), dtype=np.int64), np.zeros((len(scored_pos), 0))
        cols = [self.ranker.feature_names.index(f) for f in names]
        if self.ranker.centred_contributions:
            # TreeSHAP values are relative to the model's average prediction already; computed for
            # the returned rows only (they cost a tree walk per row and feature).
            relative = self.ranker.contributions(z[scored_pos])[:, cols]
            top = np.argsort(-relative, axis=1, kind="stable")[:, :n_reasons]
            return top, np.take_along_axis(relative, top, axis=1)
        contributions = self.ranker.contributions(z)[:, cols]
        sums = np.stack(
            [np.bincount(row, weights=contributions[:, j], minlength=len(counts)) for j in range(len(cols))],
            axis=1,
        )
        relative = contributions[scored_pos] - (sums / np.maximum(counts, 1)[:, None])[row[scored_pos]]
        top = np.argsort(-relative, axis=1, kind="stable")[:, :n_reasons]
        return top, np.take_along_axis(relative, top, axis=1)

    def _popular_unseen(self, user_ids: Sequence[str], k: int) -> np.ndarray:
        """Per user, the ``k`` most popular items they have not seen (fills short candidate lists).

        Returns:
            ``(len(user_ids), k)`` item indices, most popular first, padded with -1.
        """
        assert self.generator is not None
        users = self._user_indices(user_ids)
        known = users >= 0
        safe = np.where(known, users, 0)
        seen = self.seen[safe].multiply(known[:, None].astype(np.float32)).tocsr()
        seen.eliminate_zeros()
        seen.sort_indices()
        order = self.generator._popular_order[: k + int(np.diff(seen.indptr).max(initial=0))]
        keys = np.arange(len(users), dtype=np.int64)[:, None] * self.train.n_items + order[None, :]
        unseen = ~isin_sorted(keys.ravel(), matrix_keys(seen)).reshape(keys.shape)
        rank = np.cumsum(unseen, axis=1) - 1
        out = np.full((len(users), k), -1, dtype=np.int64)
        r, c = np.nonzero(unseen & (rank < k))
        out[r, rank[r, c]] = order[c]
        return out

    def _arrow_columns(self) -> tuple[pa.Array, pa.Array]:
        """Item titles (or ids) and item ids by item index as Arrow arrays, cached per training set."""
        items = self.train.items
        cached = self._arrow_cache
        if cached is None or cached[0] is not items:
            column = items["title"] if "title" in items.columns else items["item_id"]
            titles = pa.array(column.astype(str).tolist(), pa.string())
            cached = (items, titles, pa.array(items["item_id"].astype(str).tolist(), pa.string()))
            self._arrow_cache = cached
        return cached[1], cached[2]

    def _label(self, feature: str) -> str:
        if feature == "item_age":
            assert self.ranker is not None
            return "newer than most" if self.ranker.direction("item_age") < 0 else "long-standing"
        return FEATURE_LABELS.get(feature, feature)

    def save_ranker(self, directory: str | Path) -> Path:
        """Save the trained ranker (JSON, plus the trees' text file) with the resolved config."""
        if self.ranker is None:
            raise RuntimeError("HybridScorer is not fitted; call fit(train) first")
        return self.ranker.save(directory, config=to_dict(self.config))


def _head(items: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """The first ``n`` items of each user's run in ``items`` (runs of ``counts``), padded with -1."""
    out = np.full((len(counts), n), -1, dtype=np.int64)
    row = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(items)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = position < n
    out[row[keep], position[keep]] = items[keep]
    return out


def _fill_gaps(scores: np.ndarray) -> np.ndarray:
    """NaN entries take the value before them in their row, else the one after, else 0."""
    columns = np.arange(scores.shape[1])
    known = ~np.isnan(scores)
    rows = np.arange(len(scores))[:, None]
    before = np.maximum.accumulate(np.where(known, columns, -1), axis=1)
    after = np.minimum.accumulate(np.where(known, columns, scores.shape[1])[:, ::-1], axis=1)[:, ::-1]
    out = np.where(before >= 0, scores[rows, np.maximum(before, 0)], np.nan)
    later = scores[rows, np.minimum(after, scores.shape[1] - 1)]
    out = np.where(np.isnan(out) & (after < scores.shape[1]), later, out)
    return np.nan_to_num(out, nan=0.0)

"""The hybrid recommender: candidates ranked by the learned ranker, cold-item slots, reasons.

:class:`HybridScorer` serves :class:`~apps.recommender.ranker.LinearRanker` behind the
:class:`~apps.recommender.scorer.Scorer` interface: candidates (text ANN, co-occurrence, EASE,
popular) are ranked by the model; the rest of the catalogue follows in popularity order, so
full-ranking evaluation works. Items with no training interactions get the reserved positions of
:class:`~apps.recommender.config.ColdSlots`. Each recommendation carries a reason: the features
that pushed it up most (coefficient x standardised value) and the most similar item in the user's
history.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from apps.recommender.candidates import CandidateGenerator
from apps.recommender.cold import ColdRanker, merge_slots
from apps.recommender.config import RankerConfig
from apps.recommender.features import FEATURES, FeatureBuilder
from apps.recommender.interactions import Dataset
from apps.recommender.ranker import LinearRanker, feature_builder, fit_ease, training_rows
from apps.recommender.scorer import Scorer, top_k
from apps.recommender.text_vectors import normalise
from core.config import to_dict
from core.index import VectorIndex

logger = logging.getLogger(__name__)

FEATURE_LABELS = {
    "text_sim": "matches your history's text",
    "text_sim_max": "close to an item you chose",
    "cf_score": "chosen with items you chose",
    "popularity": "popular",
    "recent_popularity": "popular lately",
    "trend_popularity": "trending now",
    "ease_score": "fits the items you chose",
    "user_activity": "fits your activity level",
    "item_age": "item age",
}
# A feature is named in a reason only when it lifts the item at least this much (shown as +0.01 or
# more): smaller lifts are float noise, e.g. for a user whose candidates all share one value.
MIN_LIFT = 0.005
# Features that are constant per user or binary flags explain nothing about one item against another.
REASON_FEATURES = (
    "text_sim",
    "text_sim_max",
    "cf_score",
    "ease_score",
    "popularity",
    "recent_popularity",
    "trend_popularity",
    "item_age",
)


class HybridScorer(Scorer):
    """Candidates (text ANN, co-occurrence, popular) ranked by a learned logistic regression.

    Cold items (no training interactions) also get the reserved positions of
    :class:`~apps.recommender.config.ColdSlots`, ranked among themselves by text similarity.

    Args:
        item_vectors: ``(n_items, dim)`` text vectors (frozen or fine-tuned encoder).
        config: Candidate counts, features, regression settings and cold slots.
        ranker: A trained ranker to use instead of training one in :meth:`fit`.
        index: A vector index over the same item vectors (built when ``None``).
    """

    name = "hybrid"

    def __init__(
        self,
        item_vectors: np.ndarray,
        config: RankerConfig | None = None,
        ranker: LinearRanker | None = None,
        index: VectorIndex | None = None,
    ) -> None:
        super().__init__()
        self.item_vectors = np.asarray(item_vectors, dtype=np.float32)
        self.config = config or RankerConfig()
        self.ranker = ranker
        self.index = index
        self.generator: CandidateGenerator | None = None
        self.features: FeatureBuilder | None = None
        self.cold: ColdRanker | None = None
        self._title_cache: tuple[pd.DataFrame, np.ndarray] | None = None

    def _fit(self, train: Dataset) -> None:
        if self.ranker is None:
            rows, labels = training_rows(train, self.item_vectors, self.config)
            self.ranker = LinearRanker().fit(rows, labels, self.config.c, self.config.max_iter)
            logger.info(
                "Ranker fitted",
                extra={"coef": dict(zip(FEATURES, self.ranker.coef.round(3).tolist(), strict=True))},
            )
        self.generator = CandidateGenerator(
            train,
            self.item_vectors,
            index=self.index,
            config=self.config.candidates,
            ease=fit_ease(train, self.config),
        )
        self.features = feature_builder(train, self.item_vectors, self.config)
        frame = train.interactions
        now = float(frame["timestamp"].max()) if len(frame) else None
        self.cold = ColdRanker(
            self.generator.item_vectors, train.item_counts(), self.features.item_start, now, self.config.cold
        )

    def _ranked_candidates(self, user_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        assert self.generator is not None and self.features is not None and self.ranker is not None
        candidates = self.generator.generate(list(user_ids))
        features = self.features.build(candidates)
        return candidates, features, self.ranker.decision(features)

    def user_vectors(self, user_ids: Sequence[str]) -> np.ndarray:
        """Recency-weighted history vectors (zero rows for unknown users and empty histories)."""
        assert self.generator is not None
        index = self.train.user_index
        users = np.array([index.get(str(u), -1) for u in user_ids], dtype=np.int64)
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
        candidates, _, logits = self._ranked_candidates(user_ids)
        # Non-candidates follow all candidates, in popularity order: scores in [0, 1) vs (1, 2).
        base = self.popularity / (self.popularity.max(initial=0) + 1)
        out = np.tile(base.astype(np.float32), (len(user_ids), 1))
        row_of = {u: r for r, u in enumerate(user_ids)}
        rows = candidates["user_id"].map(row_of).to_numpy()
        out[rows, candidates["item_idx"].to_numpy()] = 1 + 1 / (1 + np.exp(-logits))
        length = min(self.config.cold.last_slot, self.train.n_items)
        cold = self._cold_top(user_ids, length)
        if cold.shape[1]:
            seen = self.seen[user_idx]
            for r in range(len(user_ids)):
                row = out[r].copy()
                row[seen.indices[seen.indptr[r] : seen.indptr[r + 1]]] = -np.inf
                head, _ = merge_slots(top_k(row[None, :], length)[0][0], cold[r], length, self.config.cold)
                # The merged head ranks above everything else (scores in (3, 4]).
                out[r, head] = 3 + (length - np.arange(len(head), dtype=np.float32)) / length
        return out

    def recommend_with_reasons(
        self, user_ids: Sequence[str], k: int = 10, n_reasons: int = 2
    ) -> pd.DataFrame:
        """Top-``k`` unseen items per user with score and reason.

        Computed for the whole list of users at once: candidates, features, logits and the
        contributions behind the reasons are arrays over every (user, candidate) row; only the
        merge of ranked, popular and cold items walks each user's list (at most ``k`` steps).

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
        candidates, features, logits = self._ranked_candidates(user_ids)
        assert self.ranker is not None and self.features is not None
        n_items = self.train.n_items
        row = pd.Index(user_ids).get_indexer(candidates["user_id"])
        cand_items = candidates["item_idx"].to_numpy(dtype=np.int64)
        cand_keys = row * n_items + cand_items  # sorted: users in input order, items ascending
        order = np.lexsort((cand_items, -logits, row))
        counts = np.bincount(row, minlength=len(user_ids))
        offsets = np.r_[0, np.cumsum(counts)]
        cold = self._cold_top(user_ids, k)
        n_head = k + cold.shape[1]  # enough ranked items even when every cold item is also a candidate
        out_row, out_item, out_cold = [], [], []
        for r, user_id in enumerate(user_ids):
            ranked = cand_items[order[offsets[r] : offsets[r] + min(counts[r], n_head)]]
            warm = np.concatenate([ranked, self._popular_unseen(user_id, k)])
            items, from_cold = merge_slots(warm, cold[r] if cold.shape[1] else cold[0:0], k, self.config.cold)
            out_row.append(np.full(len(items), r))
            out_item.append(items)
            out_cold.append(from_cold)
        rows = np.concatenate(out_row) if out_row else np.empty(0, dtype=np.int64)
        items = np.concatenate(out_item) if out_item else np.empty(0, dtype=np.int64)
        is_cold = np.concatenate(out_cold) if out_cold else np.empty(0, dtype=bool)
        keys = rows * n_items + items
        pos = np.minimum(np.searchsorted(cand_keys, keys), max(len(cand_keys) - 1, 0))
        ranked = (cand_keys[pos] == keys) & ~is_cold if len(cand_keys) else np.zeros(len(keys), dtype=bool)
        scores = pd.Series(np.where(ranked, logits[pos] if len(logits) else 0.0, np.nan))
        scores = scores.groupby(rows).ffill().groupby(rows).bfill().fillna(0.0)
        similar = np.where(ranked, features["similar_item_idx"].to_numpy()[pos] if len(pos) else -1, -1)
        similarity = np.where(ranked, features["similar_score"].to_numpy()[pos] if len(pos) else 0.0, np.nan)
        self._fill_most_similar(user_ids, rows, items, ~ranked, similar, similarity)
        factors = self._factors(features, row, counts, pos, ranked, is_cold, n_reasons)
        titles, item_ids = self._titles(), self.train.item_ids
        has_similar = similar >= 0
        lead = [
            f"similar to '{titles[s]}' ({v:.2f})" if s >= 0 else ""
            for s, v in zip(similar.tolist(), similarity.tolist(), strict=True)
        ]
        reasons = [
            "; ".join(p for p in (a, b) if p) or "popular item" for a, b in zip(lead, factors, strict=True)
        ]
        ids = np.asarray(user_ids, dtype=object)
        return pd.DataFrame(
            {
                "user_id": ids[rows] if len(rows) else np.empty(0, dtype=object),
                "rank": np.concatenate([np.arange(1, len(i) + 1) for i in out_item]) if out_item else [],
                "item_id": item_ids[items],
                "score": scores.to_numpy(dtype=np.float64),
                "reason": reasons,
                "similar_item_id": pd.Series(
                    np.where(has_similar, item_ids[np.maximum(similar, 0)], None), dtype=object
                ),
                "similar_score": np.where(has_similar, similarity, np.nan),
                "cold_slot": is_cold,
            }
        )

    def _factors(
        self,
        features: pd.DataFrame,
        row: np.ndarray,
        counts: np.ndarray,
        pos: np.ndarray,
        ranked: np.ndarray,
        is_cold: np.ndarray,
        n_reasons: int,
    ) -> list[str]:
        """The ``n_reasons`` features that lift each ranked item most above the user's average candidate."""
        assert self.ranker is not None
        names = [f for f in REASON_FEATURES if f in self.ranker.feature_names]
        out = ["new item, no interactions yet" if c else "popular item" for c in is_cold.tolist()]
        picked = np.flatnonzero(ranked)
        if not len(picked) or not names:
            return out
        cols = [self.ranker.feature_names.index(f) for f in names]
        contributions = self.ranker.contributions(features)[:, cols]
        sums = np.stack(
            [np.bincount(row, weights=contributions[:, j], minlength=len(counts)) for j in range(len(cols))],
            axis=1,
        )
        relative = contributions[pos[picked]] - (sums / np.maximum(counts, 1)[:, None])[row[pos[picked]]]
        top = np.argsort(-relative, axis=1, kind="stable")[:, :n_reasons]
        values = np.take_along_axis(relative, top, axis=1)
        labels = [self._label(n, 0.0) for n in names]
        for i, tops, vals in zip(picked.tolist(), top.tolist(), values.tolist(), strict=True):
            out[i] = "; ".join(
                f"{labels[j]} ({v:+.2f})" for j, v in zip(tops, vals, strict=True) if v >= MIN_LIFT
            )
        return out

    def _fill_most_similar(
        self,
        user_ids: list[str],
        rows: np.ndarray,
        items: np.ndarray,
        missing: np.ndarray,
        similar: np.ndarray,
        similarity: np.ndarray,
    ) -> None:
        """Most similar history item of the rows the ranker did not score (cold and popular fills)."""
        assert self.features is not None
        vectors = self.features.item_vectors
        todo = np.flatnonzero(missing)
        bounds = np.flatnonzero(np.diff(rows[todo])) + 1
        for group in np.split(todo, bounds):
            if not len(group):
                continue
            u = self.train.user_index.get(user_ids[rows[group[0]]], -1)
            history = self.features.histories[u][-self.config.max_similar_history :] if u >= 0 else []
            if not len(history):
                continue
            sims = vectors[items[group]] @ vectors[history].T
            best = np.argmax(sims, axis=1)
            similar[group] = np.asarray(history)[best]
            similarity[group] = sims[np.arange(len(group)), best]

    def _popular_unseen(self, user_id: str, k: int) -> np.ndarray:
        """The ``k`` most popular items the user has not seen (fills short candidate lists)."""
        assert self.generator is not None
        u = self.train.user_index.get(user_id, -1)
        seen = self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]] if u >= 0 else []
        order = self.generator._popular_order[: k + len(seen)]
        return order[~np.isin(order, seen)][:k]

    def _titles(self) -> np.ndarray:
        """Item titles (or ids) by item index, cached per training set."""
        items = self.train.items
        cached = self._title_cache
        if cached is None or cached[0] is not items:
            column = items["title"] if "title" in items.columns else items["item_id"]
            cached = (items, column.astype(str).to_numpy())
            self._title_cache = cached
        return cached[1]

    def _label(self, feature: str, relative: float) -> str:
        if feature == "item_age":
            assert self.ranker is not None
            coef = self.ranker.coef[self.ranker.feature_names.index("item_age")]
            return "newer than most" if coef < 0 else "long-standing"
        return FEATURE_LABELS.get(feature, feature)

    def save_ranker(self, directory: str | Path) -> Path:
        """Save the trained ranker (JSON) with the resolved config."""
        if self.ranker is None:
            raise RuntimeError("HybridScorer is not fitted; call fit(train) first")
        return self.ranker.save(directory, config=to_dict(self.config))

"""The learned ranker: logistic regression over candidate features, with per-item reasons.

Training uses a time-based validation split of the training data: per user, the last training
interaction is the target, earlier ones feed the candidate generator and the features; every
candidate is a row labelled 1 if it is the target. The model is a logistic regression on
standardised features, saved as JSON (feature names, means, scales, coefficients), never pickled.

:class:`HybridScorer` serves it behind the :class:`~apps.recommender.scorer.Scorer` interface:
candidates are ranked by the model; the rest of the catalogue follows in popularity order, so
full-ranking evaluation works. Each recommendation carries a reason: the features that pushed it
up most (coefficient x standardised value) and the most similar item in the user's history.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.baselines import EASEScorer
from apps.recommender.candidates import CandidateConfig, CandidateGenerator
from apps.recommender.cold import ColdRanker, ColdSlots, merge_slots
from apps.recommender.data import Dataset
from apps.recommender.features import FEATURES, FeatureBuilder
from apps.recommender.scorer import Scorer, top_k
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import normalise
from core.config import to_dict
from core.index import VectorIndex

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.json"
FORMAT_VERSION = 1
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


@dataclass(frozen=True)
class RankerConfig:
    """Candidates, features and the logistic regression."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    recent_days: float = field(default=30.0, metadata={"help": "window of the recent-popularity feature"})
    max_similar_history: int = field(default=20, metadata={"help": "history items compared for reasons"})
    trend_share: float = field(
        default=0.05, metadata={"help": "share of recent interactions counted by trend_popularity"}
    )
    ease: bool = field(default=True, metadata={"help": "EASE as a candidate source and a feature"})
    ease_l2: float = field(default=200.0, metadata={"help": "ridge penalty of the EASE source"})
    ease_max_items: int = field(
        default=6000, metadata={"help": "most popular items in the EASE source (its cost grows as n^3)"}
    )
    c: float = field(default=1.0, metadata={"help": "inverse L2 regularisation of the logistic regression"})
    max_iter: int = field(default=1000, metadata={"help": "solver iterations"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded sample of users"})
    seed: int = field(default=0, metadata={"help": "seed of the user sample"})
    cold: ColdSlots = field(default_factory=ColdSlots)


class LinearRanker:
    """Logistic regression on standardised features; JSON round trip.

    Args:
        feature_names: Columns, in order.
    """

    def __init__(self, feature_names: Sequence[str] = FEATURES) -> None:
        self.feature_names = list(feature_names)
        self.mean = np.zeros(len(self.feature_names))
        self.scale = np.ones(len(self.feature_names))
        self.coef = np.zeros(len(self.feature_names))
        self.intercept = 0.0
        self.fitted = False

    def _z(self, features: pd.DataFrame) -> np.ndarray:
        missing = [f for f in self.feature_names if f not in features.columns]
        if missing:
            raise ValueError(f"missing feature column(s) {missing}")
        return (features[self.feature_names].to_numpy(dtype=np.float64) - self.mean) / self.scale

    def fit(
        self, features: pd.DataFrame, labels: np.ndarray, c: float = 1.0, max_iter: int = 1000
    ) -> LinearRanker:
        """Fit on feature rows and 0/1 labels.

        Raises:
            ValueError: Labels hold only one class.
        """
        from sklearn.linear_model import LogisticRegression

        labels = np.asarray(labels, dtype=int)
        if len(np.unique(labels)) < 2:
            raise ValueError(
                f"ranker training needs positive and negative rows; got labels {np.unique(labels)}"
            )
        raw = features[self.feature_names].to_numpy(dtype=np.float64)
        self.mean = raw.mean(axis=0)
        self.scale = np.where(raw.std(axis=0) > 1e-12, raw.std(axis=0), 1.0)
        model = LogisticRegression(C=c, max_iter=max_iter)
        model.fit(self._z(features), labels)
        self.coef = model.coef_[0].astype(np.float64)
        self.intercept = float(model.intercept_[0])
        self.fitted = True
        return self

    def decision(self, features: pd.DataFrame) -> np.ndarray:
        """Logits (higher ranks first)."""
        return self._z(features) @ self.coef + self.intercept

    def contributions(self, features: pd.DataFrame) -> np.ndarray:
        """Per row and feature, coefficient x standardised value."""
        return self._z(features) * self.coef

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters."""
        return {
            "format_version": FORMAT_VERSION,
            "model": "logistic_regression",
            "features": self.feature_names,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinearRanker:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: Wrong version or inconsistent lengths.
        """
        if data.get("format_version") != FORMAT_VERSION or data.get("model") != "logistic_regression":
            raise ValueError(f"not a ranker of format {FORMAT_VERSION}: {data.get('format_version')!r}")
        ranker = cls(data["features"])
        n = len(ranker.feature_names)
        for key in ("mean", "scale", "coef"):
            if len(data[key]) != n:
                raise ValueError(f"ranker '{key}' has {len(data[key])} values for {n} features")
            setattr(ranker, key, np.asarray(data[key], dtype=np.float64))
        ranker.intercept = float(data["intercept"])
        ranker.fitted = True
        return ranker

    def save(self, directory: str | Path, **extra: Any) -> Path:
        """Write ``ranker.json`` (plus ``extra`` metadata) atomically into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / RANKER_FILE
        fd, tmp = tempfile.mkstemp(prefix=f".{RANKER_FILE}.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({**self.to_dict(), **to_dict(extra)}, fh, indent=2)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> LinearRanker:
        """Read ``ranker.json`` from ``directory``.

        Raises:
            FileNotFoundError: No ranker there.
            ValueError: The file is corrupt.
        """
        path = Path(directory) / RANKER_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no ranker file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(data)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: corrupt ranker file ({err})") from err


def training_rows(
    train: Dataset, item_vectors: np.ndarray, config: RankerConfig
) -> tuple[pd.DataFrame, np.ndarray]:
    """Candidate features and labels from a time-based split of ``train`` (last item per user).

    Returns:
        ``(features, labels)``; ``features`` also has ``user_id`` and ``item_idx``.
    """
    inner = leave_last_out(train)
    users, targets = inner.test_users, np.array([t[0] for t in inner.test_items], dtype=np.int64)
    if config.max_train_users is not None and len(users) > config.max_train_users:
        keep = np.sort(
            np.random.default_rng(config.seed).choice(len(users), config.max_train_users, replace=False)
        )
        users, targets = users[keep], targets[keep]
    generator = CandidateGenerator(
        inner.train, item_vectors, config=config.candidates, ease=fit_ease(inner.train, config)
    )
    user_ids = inner.train.user_ids[users]
    candidates = generator.generate(user_ids.tolist())
    builder = feature_builder(inner.train, item_vectors, config)
    features = builder.build(candidates)
    target_of = dict(zip(user_ids.tolist(), targets.tolist(), strict=True))
    labels = (candidates["item_idx"].to_numpy() == candidates["user_id"].map(target_of).to_numpy()).astype(
        int
    )
    features[["user_id", "item_idx"]] = candidates[["user_id", "item_idx"]]
    logger.info(
        "Ranker training rows",
        extra={"rows": len(features), "positives": int(labels.sum()), "users": len(users)},
    )
    return features, labels


def fit_ease(train: Dataset, config: RankerConfig) -> EASEScorer | None:
    """The EASE source of the hybrid, fit on ``train`` (``None`` when switched off)."""
    if not config.ease:
        return None
    return EASEScorer(l2=config.ease_l2, max_items=config.ease_max_items).fit(train)


def feature_builder(train: Dataset, item_vectors: np.ndarray, config: RankerConfig) -> FeatureBuilder:
    """The :class:`FeatureBuilder` of ``config`` on ``train``."""
    return FeatureBuilder(
        train, item_vectors, config.recent_days, config.max_similar_history, config.trend_share
    )


class HybridScorer(Scorer):
    """Candidates (text ANN, co-occurrence, popular) ranked by a learned logistic regression.

    Cold items (no training interactions) also get the reserved positions of
    :class:`~apps.recommender.cold.ColdSlots`, ranked among themselves by text similarity.

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
            out[i] = "; ".join(f"{labels[j]} ({v:+.2f})" for j, v in zip(tops, vals, strict=True) if v > 0)
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

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

from apps.recommender.candidates import CandidateConfig, CandidateGenerator
from apps.recommender.data import Dataset
from apps.recommender.features import FEATURES, FeatureBuilder
from apps.recommender.scorer import Scorer, top_k
from apps.recommender.splits import leave_last_out
from core.config import to_dict

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.json"
FORMAT_VERSION = 1
FEATURE_LABELS = {
    "text_sim": "matches your history's text",
    "text_sim_max": "close to an item you chose",
    "cf_score": "chosen with items you chose",
    "popularity": "popular",
    "recent_popularity": "popular lately",
    "user_activity": "fits your activity level",
    "item_age": "item age",
}
# Features that are constant per user or binary flags explain nothing about one item against another.
REASON_FEATURES = ("text_sim", "text_sim_max", "cf_score", "popularity", "recent_popularity", "item_age")


@dataclass(frozen=True)
class RankerConfig:
    """Candidates, features and the logistic regression."""

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    recent_days: float = field(default=30.0, metadata={"help": "window of the recent-popularity feature"})
    max_similar_history: int = field(default=20, metadata={"help": "history items compared for reasons"})
    c: float = field(default=1.0, metadata={"help": "inverse L2 regularisation of the logistic regression"})
    max_iter: int = field(default=1000, metadata={"help": "solver iterations"})
    max_train_users: int | None = field(default=None, metadata={"help": "train on a seeded sample of users"})
    seed: int = field(default=0, metadata={"help": "seed of the user sample"})


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
    generator = CandidateGenerator(inner.train, item_vectors, config=config.candidates)
    user_ids = inner.train.user_ids[users]
    candidates = generator.generate(user_ids.tolist())
    builder = FeatureBuilder(inner.train, item_vectors, config.recent_days, config.max_similar_history)
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


class HybridScorer(Scorer):
    """Candidates (text ANN, co-occurrence, popular) ranked by a learned logistic regression.

    Args:
        item_vectors: ``(n_items, dim)`` text vectors (frozen or fine-tuned encoder).
        config: Candidate counts, features and regression settings.
        ranker: A trained ranker to use instead of training one in :meth:`fit`.
    """

    name = "hybrid"

    def __init__(
        self, item_vectors: np.ndarray, config: RankerConfig | None = None, ranker: LinearRanker | None = None
    ) -> None:
        super().__init__()
        self.item_vectors = np.asarray(item_vectors, dtype=np.float32)
        self.config = config or RankerConfig()
        self.ranker = ranker
        self.generator: CandidateGenerator | None = None
        self.features: FeatureBuilder | None = None

    def _fit(self, train: Dataset) -> None:
        if self.ranker is None:
            rows, labels = training_rows(train, self.item_vectors, self.config)
            self.ranker = LinearRanker().fit(rows, labels, self.config.c, self.config.max_iter)
            logger.info(
                "Ranker fitted",
                extra={"coef": dict(zip(FEATURES, self.ranker.coef.round(3).tolist(), strict=True))},
            )
        self.generator = CandidateGenerator(train, self.item_vectors, config=self.config.candidates)
        self.features = FeatureBuilder(
            train, self.item_vectors, self.config.recent_days, self.config.max_similar_history
        )

    def _ranked_candidates(self, user_ids: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
        assert self.generator is not None and self.features is not None and self.ranker is not None
        candidates = self.generator.generate(list(user_ids))
        features = self.features.build(candidates)
        return candidates, features, self.ranker.decision(features)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        user_ids = self.train.user_ids[user_idx].tolist()
        candidates, _, logits = self._ranked_candidates(user_ids)
        # Non-candidates follow all candidates, in popularity order: scores in [0, 1) vs (1, 2).
        base = self.popularity / (self.popularity.max(initial=0) + 1)
        out = np.tile(base.astype(np.float32), (len(user_ids), 1))
        row_of = {u: r for r, u in enumerate(user_ids)}
        rows = candidates["user_id"].map(row_of).to_numpy()
        out[rows, candidates["item_idx"].to_numpy()] = 1 + 1 / (1 + np.exp(-logits))
        return out

    def recommend_with_reasons(
        self, user_ids: Sequence[str], k: int = 10, n_reasons: int = 2
    ) -> pd.DataFrame:
        """Top-``k`` per user with score and reason.

        Args:
            user_ids: The users (unknown ids get popular items; see the candidate fallback).
            k: Items per user.
            n_reasons: Features named in each reason.

        Returns:
            ``user_id``, ``rank`` (1-based), ``item_id``, ``score`` (logit), ``reason``,
            ``similar_item_id`` (most similar history item, or None) and ``similar_score``.
        """
        candidates, features, logits = self._ranked_candidates(user_ids)
        assert self.ranker is not None
        reason_cols = [
            self.ranker.feature_names.index(f) for f in REASON_FEATURES if f in self.ranker.feature_names
        ]
        contributions = self.ranker.contributions(features)[:, reason_cols]
        names = [self.ranker.feature_names[c] for c in reason_cols]
        titles = (
            self.train.items["title"] if "title" in self.train.items.columns else self.train.items["item_id"]
        )
        item_ids = self.train.item_ids
        similar_idx = features["similar_item_idx"].to_numpy()
        similar_score = features["similar_score"].to_numpy()
        rows = []
        for user_id in user_ids:
            idx = np.flatnonzero((candidates["user_id"] == str(user_id)).to_numpy())
            # Relative to the user's average candidate: why this item ranks above the others.
            relative = contributions[idx] - contributions[idx].mean(axis=0)
            best, _ = top_k(logits[idx][None, :], k)
            for rank, pos in enumerate(best[0][best[0] >= 0], start=1):
                i = idx[pos]
                order = np.argsort(-relative[pos], kind="stable")[:n_reasons]
                factors = [
                    f"{self._label(names[j], relative[pos, j])} ({relative[pos, j]:+.2f})"
                    for j in order
                    if relative[pos, j] > 0
                ]
                similar = int(similar_idx[i])
                parts = (
                    [f"similar to '{titles.iloc[similar]}' ({similar_score[i]:.2f})"] if similar >= 0 else []
                )
                parts += factors
                rows.append(
                    {
                        "user_id": str(user_id),
                        "rank": rank,
                        "item_id": item_ids[candidates["item_idx"].iloc[i]],
                        "score": float(logits[i]),
                        "reason": "; ".join(parts) or "popular item",
                        "similar_item_id": item_ids[similar] if similar >= 0 else None,
                        "similar_score": float(similar_score[i]) if similar >= 0 else float("nan"),
                    }
                )
        return pd.DataFrame(rows)

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

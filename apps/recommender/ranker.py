"""The learned ranker: logistic regression over candidate features, and the rows it is trained on.

Training uses a time-based validation split of the training data: per user, the last training
interaction is the target, earlier ones feed the candidate generator and the features; every
candidate is a row labelled 1 if it is the target. The model is a logistic regression on
standardised features, saved as JSON (feature names, means, scales, coefficients), never pickled.

:class:`~apps.recommender.hybrid.HybridScorer` serves it (candidates ranked by the model, with
reasons).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.baselines import EASEScorer
from apps.recommender.candidates import CandidateGenerator
from apps.recommender.config import RankerConfig
from apps.recommender.features import FEATURES, FeatureBuilder
from apps.recommender.interactions import Dataset
from apps.recommender.splits import leave_last_out
from core.atomic import write_bytes_atomic
from core.config import to_dict

logger = logging.getLogger(__name__)

RANKER_FILE = "ranker.json"
FORMAT_VERSION = 1


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

    def standardise(self, features: pd.DataFrame) -> np.ndarray:
        """The standardised ``(n_rows, n_features)`` matrix that :meth:`decision` and
        :meth:`contributions` read (pass it instead of the frame to compute it once for both)."""
        return self._z(features)

    def decision(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Logits (higher ranks first) of a feature frame or its :meth:`standardise` matrix."""
        z = features if isinstance(features, np.ndarray) else self._z(features)
        return z @ self.coef + self.intercept

    def contributions(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per row and feature, coefficient x standardised value (of a frame or its matrix)."""
        z = features if isinstance(features, np.ndarray) else self._z(features)
        return z * self.coef

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
        path = Path(directory) / RANKER_FILE
        write_bytes_atomic(path, json.dumps({**self.to_dict(), **to_dict(extra)}, indent=2).encode("utf-8"))
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
    return EASEScorer(l2=config.ease_l2, max_items=config.ease_max_items, keep=config.ease_keep).fit(train)


def feature_builder(train: Dataset, item_vectors: np.ndarray, config: RankerConfig) -> FeatureBuilder:
    """The :class:`FeatureBuilder` of ``config`` on ``train``."""
    return FeatureBuilder(
        train, item_vectors, config.recent_days, config.max_similar_history, config.trend_share
    )

"""Time-ordered splits: leave-last-out per user, and a global time cut for cold-start items.

Both keep the full item catalogue and user map (see :meth:`Dataset.with_interactions`), so a
model fit on ``train`` scores every item, including items that have text but no training
interactions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.interactions import Dataset

logger = logging.getLogger(__name__)


@dataclass
class Split:
    """A training dataset and held-out targets.

    Attributes:
        train: Interactions a model may learn from (same item and user maps as the full data).
        test_users: User index of each test case (one per user).
        test_items: Per test user, the item indices to find (one for leave-last-out, several for
            cold start), as arrays.
        info: What the split did, JSON-serialisable (for the evaluation report).
        cold_items: Cold-start splits: the item indices hidden from training.
    """

    train: Dataset
    test_users: np.ndarray
    test_items: list[np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)
    cold_items: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.test_users)


def leave_last_out(dataset: Dataset) -> Split:
    """Per user, the last interaction by time is the test item; earlier ones train.

    Interactions are already sorted by time with ties in source order, so "last" is the last
    such row. Users with a single interaction only train. With ``repeats="all"`` data, a user
    whose last item also occurs earlier is not tested (it would be excluded as seen).

    Args:
        dataset: The full data.

    Returns:
        The split; ``info`` counts users tested, train-only users and dropped repeat cases.
    """
    frame = dataset.interactions
    position = frame.groupby("user_idx", sort=False).cumcount(ascending=False).to_numpy()
    size = frame.groupby("user_idx", sort=False)["item_idx"].transform("size").to_numpy()
    is_test = (position == 0) & (size > 1)
    train = dataset.with_interactions(frame.loc[~is_test], name=f"{dataset.name}:train")
    test = frame.loc[is_test, ["user_idx", "item_idx"]].sort_values("user_idx")
    users, items = test["user_idx"].to_numpy(), test["item_idx"].to_numpy()
    repeated = np.asarray(train.user_item_matrix()[users, items]).ravel() > 0
    if repeated.any():
        logger.info(
            "Users whose test item repeats a training item are not tested",
            extra={"users": int(repeated.sum())},
        )
        users, items = users[~repeated], items[~repeated]
    info = {
        "split": "leave-last-out",
        "test_users": len(users),
        "train_only_users": int(frame.loc[size == 1, "user_idx"].nunique()),
        "repeat_test_dropped": int(repeated.sum()),
        "train_interactions": len(train.interactions),
    }
    return Split(train, users, [np.array([i]) for i in items], info)


def time_cut(dataset: Dataset, quantile: float | None = 0.8, split_time: int | None = None) -> int:
    """Epoch seconds of a global cut: ``split_time`` if given, else the quantile of interaction times.

    Raises:
        ValueError: Neither is given, the quantile is outside (0, 1) or there are no interactions.
    """
    if split_time is not None:
        return int(split_time)
    if quantile is None or not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1) when split_time is not given, got {quantile}")
    if dataset.interactions.empty:
        raise ValueError(f"{dataset.name}: no interactions to split")
    stamps = dataset.interactions["timestamp"].to_numpy()
    return int(np.quantile(stamps, quantile, method="lower"))


def cold_start_split(dataset: Dataset, quantile: float | None = 0.8, split_time: int | None = None) -> Split:
    """Hide items whose first interaction comes after a time cut; test whether they are found.

    Training keeps every interaction at or before the cut (cold items have none there, so they
    are hidden from training but stay in the catalogue with their text). A test case is a user
    with at least one training interaction and at least one interaction with a cold item after
    the cut; its targets are those cold items.

    Args:
        dataset: The full data.
        quantile: Cut at this quantile of interaction times (when ``split_time`` is None).
        split_time: Cut at this epoch second (interactions at the cut train).

    Returns:
        The split; ``info`` has the cut, the cold item indices and counts.
    """
    cut = time_cut(dataset, quantile, split_time)
    frame = dataset.interactions
    first_seen = dataset.item_first_seen()
    cold = np.flatnonzero(first_seen > cut)
    train = dataset.with_interactions(frame.loc[frame["timestamp"] <= cut], name=f"{dataset.name}:cold-train")
    known = np.zeros(dataset.n_users, dtype=bool)
    known[train.interactions["user_idx"].to_numpy()] = True
    is_cold = np.zeros(dataset.n_items, dtype=bool)
    is_cold[cold] = True
    after = frame.loc[(frame["timestamp"] > cut)]
    after = after.loc[is_cold[after["item_idx"].to_numpy()] & known[after["user_idx"].to_numpy()]]
    grouped = after.groupby("user_idx", sort=True)["item_idx"].agg(lambda s: np.unique(s.to_numpy()))
    info = {
        "split": "cold-start",
        "split_time": cut,
        "split_time_iso": pd.Timestamp(cut, unit="s", tz="UTC").isoformat(),
        "cold_items": len(cold),
        "test_users": len(grouped),
        "test_interactions": len(after),
        "train_interactions": len(train.interactions),
    }
    return Split(train, grouped.index.to_numpy(dtype=np.int64), list(grouped.to_numpy()), info, cold)

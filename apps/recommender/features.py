"""Ranker features for (user, candidate item) pairs, computed as of the user's last training time.

Features (all float32; names in :data:`FEATURES`):

* ``text_sim``: cosine between the item's text vector and the user's recency-weighted history
  vector (0 without history);
* ``text_sim_max``: highest cosine to any of the user's last ``max_similar_history`` items (that
  item is also returned as the "most similar history item" for reasons);
* ``cf_score``: ``log1p`` of the ItemKNN score (sum of co-occurrence similarities from history);
* ``popularity``: ``log1p`` of the item's training interactions;
* ``recent_popularity``: ``log1p`` of its interactions in the ``recent_days`` before the user's
  last training interaction (what was popular when the user was active);
* ``trend_popularity``: ``log1p`` of its interactions among the last ``trend_share`` of all
  training interactions before the user's reference time (a window measured in interactions, not
  days, so one setting fits news that turns over hourly and films that stay for years);
* ``ease_score``: the EASE score of the item for the user (0 when EASE is off);
* ``user_activity``: ``log1p`` of the user's training interactions;
* ``item_age``: ``log1p`` of days from the item's start (its ``timestamp`` column when given,
  else its first training interaction) to the user's reference time, clipped at 0; items with
  neither are treated as new (age 0);
* ``from_text``, ``from_cf``, ``from_popular``, ``from_ease``: which candidate sources proposed the
  item;
* ``text_rank``, ``cf_rank``, ``ease_rank``, ``popularity_rank``: ``log1p`` of the item's rank among
  the user's candidates by text similarity, CF score, EASE score and popularity (0 = best). Raw
  scores differ in scale from user to user (a long history sums more co-occurrences); ranks do
  not, which a linear model needs to compare candidates across users.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from apps.recommender.interactions import Dataset
from apps.recommender.text_vectors import normalise

logger = logging.getLogger(__name__)

FEATURES = (
    "text_sim",
    "text_sim_max",
    "cf_score",
    "popularity",
    "recent_popularity",
    "trend_popularity",
    "ease_score",
    "user_activity",
    "item_age",
    "from_text",
    "from_cf",
    "from_popular",
    "from_ease",
    "text_rank",
    "cf_rank",
    "ease_rank",
    "popularity_rank",
)
#: Features multiplied by ``user_activity`` (``<name>_x_activity``, built only for a ranker of
#: ``ranker.activity_interactions``): they let one linear model weigh a
#: signal differently for short and long histories (popularity for a news reader with two clicks,
#: EASE and co-occurrence for a film fan with hundreds of ratings). A listwise ranker needs them to
#: use a user's activity at all, since a value constant within a user cannot reorder their list.
ACTIVITY_INTERACTIONS = (
    "text_sim",
    "text_sim_max",
    "cf_rank",
    "ease_rank",
    "text_rank",
    "popularity_rank",
    "trend_popularity",
)
INTERACTION_FEATURES = tuple(f"{name}_x_activity" for name in ACTIVITY_INTERACTIONS)
_DAY = 86400.0
_SHIFT = np.int64(2**34)  # > any span of epoch seconds between 1800 and 2100


class FeatureBuilder:
    """Computes :data:`FEATURES` for candidate frames from :class:`CandidateGenerator`.

    Args:
        train: Training data the features are computed from.
        item_vectors: ``(n_items, dim)`` text vectors in item-index order.
        recent_days: Window of ``recent_popularity``.
        max_similar_history: Most recent history items compared for ``text_sim_max``.
        trend_share: Share of all training interactions (the most recent before the user's
            reference time) counted by ``trend_popularity``.
    """

    def __init__(
        self,
        train: Dataset,
        item_vectors: np.ndarray,
        recent_days: float = 30.0,
        max_similar_history: int = 20,
        trend_share: float = 0.05,
        activity_interactions: bool = False,
    ) -> None:
        if recent_days <= 0 or max_similar_history < 1:
            raise ValueError(
                f"need recent_days > 0 and max_similar_history >= 1, got {recent_days}, {max_similar_history}"
            )
        self.train = train
        self.item_vectors = normalise(np.asarray(item_vectors, dtype=np.float32))
        self.window = int(recent_days * _DAY)
        self.max_similar_history = max_similar_history
        self.activity_interactions = activity_interactions
        frame = train.interactions
        self.histories = train.histories()
        self.popularity = np.log1p(train.item_counts()).astype(np.float32)
        self.activity = np.log1p([len(h) for h in self.histories]).astype(np.float32)
        self.t_min = int(frame["timestamp"].min()) if len(frame) else 0
        self.times = np.sort(frame["timestamp"].to_numpy(dtype=np.int64)) - self.t_min
        self.trend_window = max(1, int(np.ceil(trend_share * len(self.times))))
        self.user_time = np.full(train.n_users, frame["timestamp"].max() if len(frame) else 0, dtype=np.int64)
        last = frame.groupby("user_idx")["timestamp"].max()
        self.user_time[last.index.to_numpy()] = last.to_numpy()
        # Sorted (item, time) keys answer "interactions of item i in (a, b]" with two searchsorted calls.
        self.keys = np.sort(
            frame["item_idx"].to_numpy() * _SHIFT + (frame["timestamp"].to_numpy() - self.t_min)
        )
        start = train.item_first_seen()
        if "timestamp" in train.items.columns:
            given = train.items["timestamp"].to_numpy(dtype=float, na_value=np.nan)
            start = np.where(np.isnan(given), start, given)
        self.item_start = start

    def build(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """Feature columns for each candidate row (same index), plus the most similar history item.

        Args:
            candidates: Output of :meth:`CandidateGenerator.generate`.

        Returns:
            A frame with :data:`FEATURES` (and :data:`INTERACTION_FEATURES` when the builder was
            made with ``activity_interactions``), ``similar_item_idx`` (-1 without history) and
            ``similar_score``.
        """
        if "user_idx" in candidates.columns:
            users = candidates["user_idx"].to_numpy(dtype=np.int64)
        else:
            users = candidates["user_id"].map(self.train.user_index).fillna(-1).to_numpy(dtype=np.int64)
        items = candidates["item_idx"].to_numpy(dtype=np.int64)
        known = users >= 0
        safe = np.where(known, users, 0)
        t_ref = np.where(known, self.user_time[safe], self.user_time.max(initial=0))
        rel = t_ref - self.t_min
        hi = np.searchsorted(self.keys, items * _SHIFT + rel, side="right")
        lo = np.searchsorted(self.keys, items * _SHIFT + rel - self.window, side="right")
        end = np.searchsorted(self.times, rel, side="right")
        start = self.times[np.maximum(end - self.trend_window, 0)] if len(self.times) else rel
        trend_lo = np.searchsorted(self.keys, items * _SHIFT + start, side="left")
        age_days = np.clip((t_ref - np.nan_to_num(self.item_start[items], nan=t_ref)) / _DAY, 0, None)
        similar_idx, similar_score = self.most_similar(users, items)
        out = pd.DataFrame(
            {
                "text_sim": candidates["text_score"].fillna(0.0).to_numpy(dtype=np.float32),
                "text_sim_max": similar_score,
                "cf_score": np.log1p(candidates["cf_score"].to_numpy(dtype=np.float32)),
                "popularity": self.popularity[items],
                "recent_popularity": np.log1p(hi - lo).astype(np.float32),
                "trend_popularity": np.log1p(hi - trend_lo).astype(np.float32),
                "ease_score": _column(candidates, "ease_score"),
                "user_activity": np.where(known, self.activity[safe], 0).astype(np.float32),
                "item_age": np.log1p(age_days).astype(np.float32),
                "from_text": candidates["from_text"].to_numpy(dtype=np.float32),
                "from_cf": candidates["from_cf"].to_numpy(dtype=np.float32),
                "from_popular": candidates["from_popular"].to_numpy(dtype=np.float32),
                "from_ease": _column(candidates, "from_ease"),
            },
            index=candidates.index,
        )
        group = pd.factorize(candidates["user_id"])[0] if len(candidates) else np.empty(0, dtype=np.int64)
        for name, source in (
            ("text_rank", "text_sim"),
            ("cf_rank", "cf_score"),
            ("ease_rank", "ease_score"),
            ("popularity_rank", "popularity"),
        ):
            out[name] = np.log1p(_rank_within(group, out[source].to_numpy())).astype(np.float32)
        if self.activity_interactions:  # only a ranker of ranker.activity_interactions reads them
            activity = out["user_activity"].to_numpy()
            for name, column in zip(ACTIVITY_INTERACTIONS, INTERACTION_FEATURES, strict=True):
                out[column] = out[name].to_numpy() * activity
        out["similar_item_idx"] = similar_idx
        out["similar_score"] = similar_score
        return out

    def most_similar(self, users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per (user, item) pair, the item of the user's last ``max_similar_history`` closest to it.

        One matrix product per user (candidate vectors x history vectors). A batched product over
        padded users was measured slower: gathering the candidate vectors dominates either way.

        Args:
            users: Training user index of each pair (-1: unknown user).
            items: Item index of each pair.

        Returns:
            ``(history_item, cosine)``; ``(-1, 0.0)`` for an unknown user or an empty history.
        """
        best_idx = np.full(len(users), -1, dtype=np.int64)
        best = np.zeros(len(users), dtype=np.float32)
        order = np.argsort(users, kind="stable")
        ordered = users[order]
        bounds = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True]) if len(users) else []
        for start, stop in zip(bounds[:-1], bounds[1:], strict=False):
            user = int(ordered[start])
            history = self.histories[user][-self.max_similar_history :] if user >= 0 else ()
            if not len(history):
                continue
            group = order[start:stop]
            sims = self.item_vectors[items[group]] @ self.item_vectors[history].T
            pick = np.argmax(sims, axis=1)
            best_idx[group] = history[pick]
            best[group] = sims[np.arange(len(group)), pick]
        return best_idx, best


def _column(candidates: pd.DataFrame, name: str) -> np.ndarray:
    """A float32 candidate column, zeros when the generator did not produce it (EASE off)."""
    if name not in candidates.columns:
        return np.zeros(len(candidates), dtype=np.float32)
    return candidates[name].fillna(0).to_numpy(dtype=np.float32)


def _rank_within(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """0-based rank of each value within its group, highest first (ties by position, NaN last).

    One stable sort of ``group << 32 | descending order key of the float32 value`` (the bits of a
    float32 reordered so that integer order is float order), cheaper than a three-key lexsort.
    """
    if not len(values):
        return np.empty(0, dtype=np.int64)
    # + 0.0 turns -0.0 into 0.0 (equal values must tie); NaN ranks last.
    floats = np.nan_to_num(np.asarray(values, dtype=np.float32) + np.float32(0.0), nan=-np.inf)
    bits = floats.view(np.uint32).astype(np.int64)
    # Integer order of these keys is the float order: negatives flip all bits, positives the sign.
    ascending = np.where(bits >= 2**31, (2**32 - 1) - bits, bits + 2**31)
    key = np.asarray(group, dtype=np.int64) * 2**32 + ((2**32 - 1) - ascending)
    order = np.argsort(key, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values)) - np.repeat(starts, np.diff(np.r_[starts, len(values)]))
    return rank

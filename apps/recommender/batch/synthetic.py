"""A synthetic catalogue for batch-scoring throughput: random unit item vectors, random histories.

The scorer is a plain content-based recommender (user vector = normalised mean of the history's
item vectors, inner-product search in a :class:`core.index.VectorIndex`, seen items removed,
reason = the closest history item), so its cost per user is the cost of the real text-similarity
stage at any catalogue size. The index is exact (``flat``) by default; ``index="auto"`` lets the
core index pick HNSW above 50k items and IVF-SQ8 above 500k, as a real catalogue would.
Everything is derived from the seed: item ``i`` and
user ``u`` are the same in every process, which is what lets Ray workers rebuild the catalogue
instead of shipping it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apps.recommender.text_vectors import normalise
from core.index import VectorIndex

logger = logging.getLogger(__name__)

_BLOCK = 100_000  # items generated per random block (bounded temporary memory)


@dataclass(frozen=True)
class SyntheticCatalogue:
    """Picklable factory of a :class:`SyntheticScorer` (a batch :class:`~.engines.ScorerFactory`).

    Attributes:
        n_items: Catalogue size.
        n_users: Users known to the model (``u000000`` ...).
        dim: Vector dimension.
        history: Items each user has seen.
        seed: Everything derives from it.
        index: ``flat`` (exact search) or ``auto`` (the core index's approximate kinds when large).
    """

    n_items: int = 10_000
    n_users: int = 1_000
    dim: int = 64
    history: int = 20
    seed: int = 0
    index: str = "flat"

    def __post_init__(self) -> None:
        if self.index not in ("flat", "auto"):
            raise ValueError(f"index must be 'flat' or 'auto', got {self.index!r}")

    def __call__(self) -> SyntheticScorer:
        """Build the catalogue and its index."""
        return SyntheticScorer(self)

    def fingerprint(self) -> str:
        """The parameters (they determine the model)."""
        text = (
            f"synthetic:items={self.n_items}:users={self.n_users}:dim={self.dim}:"
            f"history={self.history}:seed={self.seed}"
        )
        return text if self.index == "flat" else f"{text}:index={self.index}"


class SyntheticScorer:
    """Content-based top-k over a seeded random catalogue (see the module docs)."""

    def __init__(self, spec: SyntheticCatalogue) -> None:
        if spec.history >= spec.n_items:
            raise ValueError(f"history ({spec.history}) must be smaller than n_items ({spec.n_items})")
        self.spec = spec
        self.item_ids = [f"i{i:07d}" for i in range(spec.n_items)]
        self.vectors = self._item_vectors()
        self.index = VectorIndex(spec.dim, spec.fingerprint(), kind=spec.index)  # type: ignore[arg-type]
        self.index.add(self.item_ids, self.vectors)
        self._position = {item: i for i, item in enumerate(self.item_ids)}

    def _item_vectors(self) -> np.ndarray:
        spec = self.spec
        out = np.empty((spec.n_items, spec.dim), dtype=np.float32)
        for block, start in enumerate(range(0, spec.n_items, _BLOCK)):
            rng = np.random.default_rng([spec.seed, 1, block])
            stop = min(start + _BLOCK, spec.n_items)
            out[start:stop] = rng.standard_normal((stop - start, spec.dim), dtype=np.float32)
        return normalise(out)

    def user_ids(self) -> list[str]:
        """``u000000`` ... in order."""
        return [f"u{u:06d}" for u in range(self.spec.n_users)]

    def history(self, user_id: str) -> np.ndarray:
        """Item indices the user has seen (empty for an id outside the synthetic users)."""
        try:
            u = int(user_id[1:]) if user_id.startswith("u") else -1
        except ValueError:
            u = -1
        if not 0 <= u < self.spec.n_users:
            return np.empty(0, dtype=np.int64)
        rng = np.random.default_rng([self.spec.seed, 2, u])
        return rng.choice(self.spec.n_items, self.spec.history, replace=False)

    def recommend_chunk(self, user_ids: Sequence[str], k: int) -> pd.DataFrame:
        """Top-``k`` unseen items per user; users without history get the first items (fallback)."""
        histories = [self.history(str(u)) for u in user_ids]
        vectors = np.stack(
            [
                self.vectors[h].mean(axis=0) if len(h) else np.zeros(self.spec.dim, np.float32)
                for h in histories
            ]
        )
        ids, scores = self.index.search(normalise(vectors), min(k + self.spec.history, self.spec.n_items))
        columns: dict[str, list] = {"user_id": [], "rank": [], "item_id": [], "score": [], "reason": []}
        for user_id, history, found, found_scores in zip(user_ids, histories, ids, scores, strict=True):
            seen = set(history.tolist())
            keep = [j for j, item in enumerate(found) if self._position[item] not in seen][:k]
            items = np.array([self._position[found[j]] for j in keep], dtype=np.int64)
            if len(history) and len(items):
                sims = self.vectors[items] @ self.vectors[history].T
                best = sims.argmax(axis=1)
                reasons = [
                    f"similar to '{self.item_ids[history[b]]}' ({sims[r, b]:.2f})" for r, b in enumerate(best)
                ]
            else:
                reasons = ["popular item"] * len(items)
            columns["user_id"] += [str(user_id)] * len(items)
            columns["rank"] += range(1, len(items) + 1)
            columns["item_id"] += [found[j] for j in keep]
            columns["score"] += found_scores[keep].astype(np.float64).tolist()
            columns["reason"] += reasons
        return pd.DataFrame(columns).astype({"rank": np.int32, "score": np.float64})

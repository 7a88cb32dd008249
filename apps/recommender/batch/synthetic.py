"""A synthetic catalogue for batch-scoring throughput: seeded unit item vectors, seeded histories.

The scorer is a plain content-based recommender (user vector = normalised mean of the history's
item vectors, inner-product search in a :class:`core.index.VectorIndex`, seen items removed,
reason = the closest history item), so its cost per user is the cost of the real text-similarity
stage at any catalogue size.

Two catalogues:

* ``clusters=0`` (default): uniform random unit vectors and random histories, the hardest case for
  approximate search (no structure to exploit);
* ``clusters=C``: a mixture of ``C`` Gaussians (unit centres, each item its centre plus noise of
  norm ``spread``, normalised), and each user's history drawn from two clusters, closer to real
  text embeddings and tastes.

The index is exact (``flat``) by default; ``index="auto"`` lets the core index pick HNSW above 50k
items and IVF-SQ8 above 500k, as a real catalogue would. An approximate index is calibrated for the
job's search size (``k`` + history) before the first chunk: the cheapest ``efSearch``/``nprobe``
whose recall against exact search reaches ``target_recall`` on held-out synthetic users
(:meth:`core.index.VectorIndex.calibrate`). :meth:`SyntheticCatalogue.build_index` builds,
calibrates and saves the index once; a catalogue with ``index_dir`` loads it instead of building
it in every job and worker.

Everything is derived from the seed: item ``i`` and user ``u`` are the same in every process,
which is what lets Ray workers rebuild the catalogue instead of shipping it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from apps.recommender.text_vectors import normalise
from core.index import VectorIndex

logger = logging.getLogger(__name__)

_BLOCK = 100_000  # items generated per random block (bounded temporary memory)
_CALIBRATION_USERS = 256  # held-out synthetic users (indices past n_users) that calibrate the index


@dataclass(frozen=True)
class SyntheticCatalogue:
    """Picklable factory of a :class:`SyntheticScorer` (a batch :class:`~.engines.ScorerFactory`).

    Attributes:
        n_items: Catalogue size.
        n_users: Users known to the model (``u000000`` ...).
        dim: Vector dimension.
        history: Items each user has seen.
        seed: Everything derives from it.
        index: ``flat`` (exact search), ``auto`` (the core index's approximate kinds when large), or
            ``hnsw`` / ``ivf`` at any size.
        clusters: 0 for uniform random vectors, else the number of Gaussian clusters.
        spread: Norm of an item's offset from its cluster centre (before normalising).
        index_dir: A saved index of this catalogue (:meth:`build_index`) to load instead of building.
        target_recall: Recall@(k + history) against exact search an approximate index is tuned to.
    """

    n_items: int = 10_000
    n_users: int = 1_000
    dim: int = 64
    history: int = 20
    seed: int = 0
    index: str = "flat"
    clusters: int = 0
    spread: float = 1.0
    index_dir: str | None = None
    target_recall: float = 0.95

    def __post_init__(self) -> None:
        if self.index not in ("flat", "auto", "hnsw", "ivf"):
            raise ValueError(f"index must be flat, auto, hnsw or ivf, got {self.index!r}")
        if self.clusters < 0 or self.spread <= 0 or not 0 < self.target_recall <= 1:
            raise ValueError(
                f"need clusters >= 0, spread > 0 and 0 < target_recall <= 1; "
                f"got {self.clusters}, {self.spread}, {self.target_recall}"
            )

    def __call__(self) -> SyntheticScorer:
        """Build the catalogue and its index (or load the saved index)."""
        return SyntheticScorer(self)

    def catalogue_id(self) -> str:
        """The items' identity (what a saved index must have been built from)."""
        text = (
            f"synthetic:items={self.n_items}:users={self.n_users}:dim={self.dim}:"
            f"history={self.history}:seed={self.seed}"
        )
        return text if not self.clusters else f"{text}:clusters={self.clusters}:spread={self.spread:g}"

    def fingerprint(self) -> str:
        """The parameters (they determine the model)."""
        text = self.catalogue_id()
        if self.index != "flat":
            text += f":index={self.index}:recall={self.target_recall:g}"
        return text if self.index_dir is None else f"{text}:index_dir={Path(self.index_dir).resolve()}"

    def build_index(self, directory: str | Path, k: int) -> Path:
        """Build this catalogue's index, calibrate it for top-``k`` jobs and save it to ``directory``.

        Returns:
            The directory (pass it as ``index_dir``).
        """
        scorer = SyntheticScorer(dataclasses.replace(self, index_dir=None))
        scorer.calibrate(k)
        return scorer.index.save(directory)


class SyntheticScorer:
    """Content-based top-k over a seeded catalogue (see the module docs)."""

    def __init__(self, spec: SyntheticCatalogue) -> None:
        if spec.history >= spec.n_items:
            raise ValueError(f"history ({spec.history}) must be smaller than n_items ({spec.n_items})")
        self.spec = spec
        self.item_ids = [f"i{i:07d}" for i in range(spec.n_items)]
        self.vectors, self._members, self._bounds = self._item_vectors()
        if spec.index_dir is not None:
            self.index = VectorIndex.load(spec.index_dir, expected_model=spec.catalogue_id())
            if len(self.index) != spec.n_items:
                raise ValueError(f"{spec.index_dir} holds {len(self.index)} items, not {spec.n_items}")
        else:
            self.index = VectorIndex(spec.dim, spec.catalogue_id(), kind=spec.index)  # type: ignore[arg-type]
            self.index.add(self.item_ids, self.vectors)
        self._position = {item: i for i, item in enumerate(self.item_ids)}

    def _item_vectors(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Vectors, and for a clustered catalogue the items ordered by cluster with cluster bounds."""
        spec = self.spec
        out = np.empty((spec.n_items, spec.dim), dtype=np.float32)
        centres = assignment = None
        if spec.clusters:
            centres = normalise(
                np.random.default_rng([spec.seed, 3]).standard_normal(
                    (spec.clusters, spec.dim), dtype=np.float32
                )
            )
            assignment = np.empty(spec.n_items, dtype=np.int64)
        for block, start in enumerate(range(0, spec.n_items, _BLOCK)):
            rng = np.random.default_rng([spec.seed, 1, block])
            stop = min(start + _BLOCK, spec.n_items)
            noise = rng.standard_normal((stop - start, spec.dim), dtype=np.float32)
            if centres is None or assignment is None:
                out[start:stop] = noise
                continue
            assignment[start:stop] = rng.integers(0, spec.clusters, stop - start)
            out[start:stop] = centres[assignment[start:stop]] + noise * np.float32(
                spec.spread / np.sqrt(spec.dim)
            )
        if assignment is None:
            return normalise(out), None, None
        members = np.argsort(assignment, kind="stable")
        bounds = np.searchsorted(assignment[members], np.arange(spec.clusters + 1))
        return normalise(out), members, bounds

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
        return self._history_of(u)

    def _history_of(self, u: int) -> np.ndarray:
        rng = np.random.default_rng([self.spec.seed, 2, u])
        if self._members is None or self._bounds is None:
            return rng.choice(self.spec.n_items, self.spec.history, replace=False)
        # Two clusters a user likes; history items drawn from both (all of them if they are small).
        liked = rng.choice(self.spec.clusters, min(2, self.spec.clusters), replace=False)
        pool = np.concatenate([self._members[self._bounds[c] : self._bounds[c + 1]] for c in liked])
        if len(pool) < self.spec.history:
            rest = np.setdiff1d(np.arange(self.spec.n_items), pool)
            pool = np.concatenate([pool, rng.choice(rest, self.spec.history - len(pool), replace=False)])
        return rng.choice(pool, self.spec.history, replace=False)

    def _query_vectors(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        vectors = np.stack(
            [
                self.vectors[h].mean(axis=0) if len(h) else np.zeros(self.spec.dim, np.float32)
                for h in histories
            ]
        )
        return normalise(vectors)

    def calibrate(self, k: int) -> None:
        """Tune an approximate index for top-``k`` lists (searches of ``k`` + history), once per size.

        The queries are held-out synthetic users (past ``n_users``), never the users being scored.
        """
        search = min(k + self.spec.history, self.spec.n_items)
        found = self.index.calibration
        if self.index.kind == "flat" or (
            found is not None and found.k >= search and found.target_recall >= self.spec.target_recall
        ):
            return
        users = range(self.spec.n_users, self.spec.n_users + _CALIBRATION_USERS)
        queries = self._query_vectors([self._history_of(u) for u in users])
        self.index.calibrate(queries, search, self.spec.target_recall, vectors=self.vectors)

    def recommend_chunk(self, user_ids: Sequence[str], k: int) -> pd.DataFrame:
        """Top-``k`` unseen items per user; users without history get the first items (fallback)."""
        self.calibrate(k)
        histories = [self.history(str(u)) for u in user_ids]
        vectors = self._query_vectors(histories)
        ids, scores = self.index.search(vectors, min(k + self.spec.history, self.spec.n_items))
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

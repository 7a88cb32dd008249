"""Baseline scorers: popularity, ItemKNN, BPR-MF (through ``implicit``) and frozen-encoder text.

All follow :class:`~apps.recommender.scorer.Scorer`: ``fit(train)`` then ``score(user_ids)``.

* :class:`PopularityScorer`: training interactions per item.
* :class:`ItemKNNScorer`: cosine item-item similarity of binary co-occurrence
  (``|U_i & U_j| / (sqrt|U_i| sqrt|U_j| + shrink)``), pruned to each item's top neighbours;
  a user's score for item ``i`` sums the similarities from the items in their history.
  Built in blocks of items with sparse products, so memory stays ``O(block * n_items)``.
* :class:`EASEScorer`: EASE (Steck 2019), the closed-form item-item ridge regression
  ``B = argmin ||X - XB||^2 + l2 ||B||^2`` with ``diag(B) = 0``; a user's scores are ``x_u B``.
* :class:`BPRScorer`: Bayesian personalised ranking matrix factorisation from ``implicit``
  (CPU, one thread by default so runs are reproducible).
* :class:`TextScorer`: cosine similarity between item vectors from a frozen text encoder and the
  user's recency-weighted mean history vector (:mod:`apps.recommender.text_vectors`). Items with
  no interactions score like any other, so this is the baseline that can recommend cold items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import sparse
from scipy.linalg import lapack

from apps.recommender.interactions import Dataset
from apps.recommender.scorer import Scorer
from apps.recommender.text_vectors import TextEncoder, embed_items, history_matrix, normalise
from core.progress import progress_bar

logger = logging.getLogger(__name__)


class PopularityScorer(Scorer):
    """Scores every item by its number of training interactions (the same list for everyone)."""

    name = "popularity"

    def _fit(self, train: Dataset) -> None:
        logger.debug("Popularity fitted", extra={"items": train.n_items})

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity, (len(user_idx), len(self.popularity))).copy()


class ItemKNNScorer(Scorer):
    """Item-based collaborative filtering on cosine co-occurrence similarity.

    Args:
        neighbours: Similar items kept per item.
        shrink: Added to the cosine denominator; damps similarities between rare items.
        block_size: Items per block when building the similarity matrix.
        show_progress_bar: Show a tqdm bar over blocks.
    """

    name = "itemknn"

    def __init__(
        self,
        neighbours: int = 100,
        shrink: float = 0.0,
        block_size: int = 1024,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__()
        if neighbours < 1 or block_size < 1 or shrink < 0:
            raise ValueError(
                f"need neighbours >= 1, block_size >= 1, shrink >= 0; "
                f"got {neighbours}, {block_size}, {shrink}"
            )
        self.neighbours = neighbours
        self.shrink = shrink
        self.block_size = block_size
        self.show_progress_bar = show_progress_bar
        self.similarity: sparse.csr_matrix | None = None

    def _fit(self, train: Dataset) -> None:
        users_items = self.seen
        items_users = users_items.T.tocsr()
        n_items = train.n_items
        norms = np.sqrt(np.asarray(users_items.sum(axis=0)).ravel())
        k = min(self.neighbours, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        starts = range(0, n_items, self.block_size)
        for start in progress_bar(starts, desc="ItemKNN", unit="block", disable=not self.show_progress_bar):
            stop = min(start + self.block_size, n_items)
            co = (items_users[start:stop] @ users_items).toarray()
            denominator = norms[start:stop, None] * norms[None, :] + self.shrink
            sim = np.divide(co, denominator, out=np.zeros_like(co), where=denominator > 0)
            sim[np.arange(stop - start), np.arange(start, stop)] = 0.0
            best = (
                np.argpartition(-sim, k - 1, axis=1)[:, :k]
                if k < n_items
                else np.tile(np.arange(n_items), (stop - start, 1))
            )
            best_vals = np.take_along_axis(sim, best, axis=1)
            keep = best_vals > 0
            rows.append(np.nonzero(keep)[0] + start)
            cols.append(best[keep])
            vals.append(best_vals[keep])
        self.similarity = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(n_items, n_items),
            dtype=np.float32,
        )
        logger.info("ItemKNN fitted", extra={"items": n_items, "similarities": self.similarity.nnz})

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        assert self.similarity is not None
        return np.asarray((self.seen[user_idx] @ self.similarity).toarray(), dtype=np.float32)

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted similarity as CSR arrays, and the settings (for a safetensors file)."""
        if self.similarity is None:
            raise RuntimeError("ItemKNNScorer is not fitted; call fit(train) first")
        return _csr_tensors(self.similarity), {"neighbours": self.neighbours, "shrink": self.shrink}

    @classmethod
    def from_tensors(
        cls, train: Dataset, tensors: Mapping[str, np.ndarray], settings: Mapping[str, Any]
    ) -> ItemKNNScorer:
        """A scorer fitted on ``train`` from :meth:`to_tensors` output, without fitting again.

        Raises:
            ValueError: The arrays do not describe an items x items matrix of ``train``.
        """
        scorer = cls(neighbours=int(settings["neighbours"]), shrink=float(settings["shrink"]))
        scorer._attach(train)
        scorer.similarity = _csr_from_tensors(tensors, (train.n_items, train.n_items))
        return scorer

    def similar_items(self, item_idx: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items to one item: ``(indices, similarities)``, best first."""
        if self.similarity is None:
            raise RuntimeError("ItemKNNScorer is not fitted; call fit(train) first")
        row = self.similarity.getrow(item_idx)
        order = np.lexsort((row.indices, -row.data))[:k]
        return row.indices[order].astype(np.int64), row.data[order]


class EASEScorer(Scorer):
    """EASE: closed-form item-item ridge regression with a zero diagonal (Steck, WWW 2019).

    With the Gram matrix ``G = X^T X + l2 I`` of the binary user-item matrix and ``P = G^-1``,
    ``B = I - P / diag(P)`` (so ``B_ii = 0``). Only the ``max_items`` most interacted-with items with
    at least ``min_support`` interactions take part (the inverse is dense: memory ``O(max_items^2)``,
    time ``O(max_items^3)``); others score 0.

    ``G`` is symmetric positive definite, so ``P`` comes from its Cholesky factor in float32
    (LAPACK ``potrf`` + ``potri``: about a quarter of the CPU time of ``numpy.linalg.inv``, which
    computes in float64 with an LU factorisation; on ml-latest-small's 6,000 most popular items the
    weights differ from float64 by at most 7e-7, measured against weights up to 0.13).

    Args:
        l2: Ridge penalty (larger: smoother, more popularity-like scores).
        max_items: Most items in the model (by training interactions).
        min_support: Items with fewer training interactions stay out of the model (score 0).
        keep: Per target item, keep only the ``keep`` weights of largest magnitude (a sparse
            ``B``: less memory, and scoring costs history length x ``keep`` instead of x items);
            ``None`` keeps the dense matrix.
    """

    name = "ease"

    def __init__(
        self, l2: float = 200.0, max_items: int = 20_000, min_support: int = 1, keep: int | None = None
    ) -> None:
        super().__init__()
        if l2 <= 0 or max_items < 1 or min_support < 1 or (keep is not None and keep < 1):
            raise ValueError(
                f"need l2 > 0, max_items >= 1, min_support >= 1 and keep >= 1 or None, "
                f"got {l2}, {max_items}, {min_support}, {keep}"
            )
        self.l2 = l2
        self.max_items = max_items
        self.min_support = min_support
        self.keep = keep
        self.items: np.ndarray | None = None
        self.weights: np.ndarray | sparse.csr_matrix | None = None

    def _fit(self, train: Dataset) -> None:
        counts = np.asarray(self.seen.sum(axis=0)).ravel()
        order = np.argsort(-counts, kind="stable")[: self.max_items]
        self.items = np.sort(order[counts[order] >= self.min_support])
        x = self.seen[:, self.items].astype(np.float32)
        gram = np.asarray((x.T @ x).todense(), dtype=np.float32)
        gram[np.diag_indices_from(gram)] += self.l2
        weights = ease_weights(gram)
        del gram
        self.weights = weights if self.keep is None else sparsify_columns(weights, self.keep)
        logger.info("EASE fitted", extra={"items": len(self.items), "l2": self.l2, "keep": self.keep})

    def item_scores(self, rows: sparse.csr_matrix) -> np.ndarray:
        """Scores over the whole catalogue for users x items rows (binary history)."""
        assert self.items is not None and self.weights is not None
        out = np.zeros((rows.shape[0], self.train.n_items), dtype=np.float32)
        if len(self.items):
            scores = rows[:, self.items] @ self.weights
            out[:, self.items] = scores.toarray() if sparse.issparse(scores) else scores
        return out

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.item_scores(self.seen[user_idx])

    def to_tensors(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted items and weights (dense, or CSR when sparsified), and the settings."""
        if self.items is None or self.weights is None:
            raise RuntimeError("EASEScorer is not fitted; call fit(train) first")
        weights = _csr_tensors(self.weights) if sparse.issparse(self.weights) else {"weights": self.weights}
        settings = {
            "l2": self.l2,
            "max_items": self.max_items,
            "min_support": self.min_support,
            "keep": self.keep,
        }
        return {"items": self.items.astype(np.int64), **weights}, settings

    @classmethod
    def from_tensors(
        cls, train: Dataset, tensors: Mapping[str, np.ndarray], settings: Mapping[str, Any]
    ) -> EASEScorer:
        """A scorer fitted on ``train`` from :meth:`to_tensors` output, without fitting again.

        Raises:
            ValueError: Items outside ``train``'s catalogue, or weights of the wrong shape.
        """
        keep = settings.get("keep")
        scorer = cls(
            l2=float(settings["l2"]),
            max_items=int(settings["max_items"]),
            min_support=int(settings.get("min_support", 1)),
            keep=None if keep is None else int(keep),
        )
        scorer._attach(train)
        items = np.asarray(tensors["items"], dtype=np.int64)
        if len(items) and (items.min() < 0 or items.max() >= train.n_items):
            raise ValueError(f"EASE items outside the catalogue of {train.n_items} items")
        shape = (len(items), len(items))
        if "weights" in tensors:
            # Scoring only reads the weights: a read-only view of a mapped file is kept as it is.
            weights = np.ascontiguousarray(tensors["weights"], dtype=np.float32)
            if weights.shape != shape:
                raise ValueError(f"EASE weights of shape {weights.shape}, expected {shape}")
            scorer.weights = weights
        else:
            scorer.weights = _csr_from_tensors(tensors, shape)
        scorer.items = items
        return scorer


def ease_weights(gram: np.ndarray) -> np.ndarray:
    """``B = I - P / diag(P)`` with ``P = gram^-1`` and ``diag(B) = 0``, for a positive definite ``gram``.

    The inverse comes from the Cholesky factor (LAPACK ``spotrf`` then ``spotri``, float32, in place).

    Raises:
        numpy.linalg.LinAlgError: ``gram`` is not positive definite.
    """
    if not len(gram):
        return np.zeros((0, 0), dtype=np.float32)
    # The transpose of a symmetric C-ordered matrix is the same matrix in Fortran order: LAPACK works on
    # it in place instead of on a copy.
    fortran = np.asarray(gram, dtype=np.float32).T
    factor, info = lapack.spotrf(fortran, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        inverse, info = lapack.spotri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"EASE: the Gram matrix is not positive definite (LAPACK info {info})")
    _mirror_upper(inverse)
    inverse /= -np.diag(inverse).copy()
    inverse[np.diag_indices_from(inverse)] = 0.0
    return np.ascontiguousarray(inverse, dtype=np.float32)


def sparsify_columns(weights: np.ndarray, keep: int, block: int = 1024) -> sparse.csr_matrix:
    """Per column, the ``keep`` entries of largest magnitude of a dense matrix, as CSR.

    Works in blocks of columns, so the temporaries stay ``O(block * n_rows)``.
    """
    n_rows, n_cols = weights.shape
    keep = min(keep, n_rows)
    rows, cols, vals = [], [], []
    for start in range(0, n_cols, block):
        stop = min(start + block, n_cols)
        magnitude = np.abs(weights[:, start:stop]).T  # one row per column of the block
        if keep < n_rows:
            best = np.sort(np.argpartition(-magnitude, keep - 1, axis=1)[:, :keep], axis=1)
        else:
            best = np.broadcast_to(np.arange(n_rows), magnitude.shape)
        rows.append(best.ravel())
        cols.append(np.repeat(np.arange(start, stop), best.shape[1]))
        vals.append(weights[best, np.arange(start, stop)[:, None]].ravel())
    matrix = sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=weights.shape,
        dtype=np.float32,
    )
    matrix.eliminate_zeros()
    return matrix


def _mirror_upper(matrix: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place (``potri`` fills only the upper one).

    Works in blocks of rows, so no full-size temporary is made (9,724 items: 378 MB each).
    """
    for start in range(0, len(matrix), block):
        stop = min(start + block, len(matrix))
        square = matrix[start:stop, start:stop]
        square[np.tril_indices(stop - start, -1)] = square.T[np.tril_indices(stop - start, -1)]
        matrix[stop:, start:stop] = matrix[start:stop, stop:].T


def _csr_tensors(matrix: sparse.csr_matrix) -> dict[str, np.ndarray]:
    matrix = matrix.tocsr()
    return {
        "indptr": matrix.indptr.astype(np.int64),
        "indices": matrix.indices.astype(np.int32),
        "data": matrix.data.astype(np.float32),
    }


def _csr_from_tensors(tensors: Mapping[str, np.ndarray], shape: tuple[int, int]) -> sparse.csr_matrix:
    """The CSR matrix of :func:`_csr_tensors` arrays, checked against ``shape``.

    Raises:
        ValueError: Arrays that do not form a ``shape`` CSR matrix.
    """
    indptr, indices, data = (np.asarray(tensors[k]) for k in ("indptr", "indices", "data"))
    if (
        len(indptr) != shape[0] + 1
        or len(indices) != len(data)
        or indptr[-1] != len(data)
        or (len(indices) and (indices.min() < 0 or indices.max() >= shape[1]))
    ):
        raise ValueError(f"stored sparse arrays do not form a {shape[0]} x {shape[1]} matrix")
    # Copies: the arrays may be read-only views of a mapped file, and scipy sorts indices in place.
    return sparse.csr_matrix((data.astype(np.float32), indices.copy(), indptr.copy()), shape=shape)


def bpr_available() -> bool:
    """Whether the ``implicit`` package (BPR-MF) is installed."""
    try:
        import implicit  # noqa: F401
    except ImportError:
        return False
    return True


class BPRScorer(Scorer):
    """BPR matrix factorisation from the ``implicit`` package (CPU).

    Args:
        factors: Latent dimensions.
        iterations: Training epochs.
        learning_rate: SGD step.
        regularization: L2 penalty.
        seed: Random state of the initial factors and the sampler.
        num_threads: Threads; 1 keeps runs reproducible (more threads race on updates).
    """

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        iterations: int = 100,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        super().__init__()
        self.params: dict[str, Any] = {
            "factors": factors,
            "iterations": iterations,
            "learning_rate": learning_rate,
            "regularization": regularization,
            "random_state": seed,
            "num_threads": num_threads,
        }
        self.user_factors: np.ndarray | None = None
        self.item_factors: np.ndarray | None = None

    def _fit(self, train: Dataset) -> None:
        try:
            from implicit.cpu.bpr import BayesianPersonalizedRanking
        except ImportError as err:
            raise ImportError("BPRScorer needs the 'implicit' package: pip install implicit") from err
        model = BayesianPersonalizedRanking(**self.params)
        model.fit(self.seen.astype(np.float32), show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
        logger.info(
            "BPR fitted", extra={"params": self.params, "users": train.n_users, "items": train.n_items}
        )

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        assert self.user_factors is not None and self.item_factors is not None
        return self.user_factors[user_idx] @ self.item_factors.T


class TextScorer(Scorer):
    """Cosine similarity of item text vectors to the user's recency-weighted history vector.

    Args:
        encoder: A frozen text encoder (:class:`core.embeddings.Embedder`); used when
            ``item_vectors`` is not given.
        item_vectors: Precomputed ``(n_items, dim)`` vectors in item-index order (shared between
            fits on different splits of the same catalogue).
        half_life: Recency half-life in interactions (``None``: plain mean).
        max_history: Most recent items used per user.
        batch_size: Encoder batch size.
        show_progress_bar: Show the encoder's progress bar.
    """

    name = "text"

    def __init__(
        self,
        encoder: TextEncoder | None = None,
        item_vectors: np.ndarray | None = None,
        half_life: float | None = 10.0,
        max_history: int | None = 50,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> None:
        super().__init__()
        if encoder is None and item_vectors is None:
            raise ValueError("TextScorer needs an encoder or precomputed item_vectors")
        self.encoder = encoder
        self.item_vectors = (
            None if item_vectors is None else normalise(np.asarray(item_vectors, dtype=np.float32))
        )
        self.half_life = half_life
        self.max_history = max_history
        self.batch_size = batch_size
        self.show_progress_bar = show_progress_bar
        self._weights: sparse.csr_matrix | None = None

    def _fit(self, train: Dataset) -> None:
        if self.item_vectors is None:
            assert self.encoder is not None
            self.item_vectors = embed_items(train, self.encoder, self.batch_size, self.show_progress_bar)
        if self.item_vectors.shape[0] != train.n_items:
            raise ValueError(
                f"item_vectors has {self.item_vectors.shape[0]} rows "
                f"but {train.name} has {train.n_items} items"
            )
        self._weights = history_matrix(train.histories(), train.n_items, self.half_life, self.max_history)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        assert self._weights is not None and self.item_vectors is not None
        users = normalise(np.asarray(self._weights[user_idx] @ self.item_vectors, dtype=np.float32))
        return users @ self.item_vectors.T

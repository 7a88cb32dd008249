"""A FAISS vector index keyed by string ids, saved beside a JSON manifest.

:class:`VectorIndex` stores vectors under external string ids and answers top-k inner-product
queries. Index kinds:

* ``flat``: exact search (``IndexIDMap2`` over ``IndexFlatIP``); removal compacts the index.
* ``hnsw``: approximate graph search (``IndexIDMap2`` over ``IndexHNSWFlat``), high recall at 1M
  vectors. HNSW cannot delete, so removal marks *tombstones* that searches filter out through a
  FAISS ``IDSelector``; once tombstones exceed ``compact_ratio`` of the stored vectors the graph
  is rebuilt from the live vectors.
* ``ivf``: approximate inverted lists (``IndexIVFFlat`` with native ids, so removal is real). It
  is trained on the first batch passed to :meth:`VectorIndex.add`; pass a representative batch.
* ``auto`` (default): starts flat, converts to HNSW when the count exceeds ``flat_threshold`` and
  to IVF with 8-bit codes (``ivf_storage="sq8"``) when it would exceed ``ivf_threshold``: at a
  million 384-d vectors HNSW over floats needs ~1.8 GB, IVF-SQ8 ~0.6 GB at p50 < 1 ms and
  recall@10 ~0.97 (``aigc bench index``).

Approximate search trades recall for speed, and the setting that finds 97 % of the top 10 finds far
fewer of the top 100 (measured: HNSW efSearch 128 found 80 % of the exact top-100 on 100k random
vectors; IVF nprobe 32 of 4,000 lists 20 % at 1M). :meth:`VectorIndex.calibrate` measures recall@k
against exact search on a sample of queries and keeps the cheapest ``hnsw_ef_search`` or
``ivf_nprobe`` that reaches a target; the choice is saved with the index (:class:`Calibration`).

Every index records the embedding model that made its vectors. :meth:`VectorIndex.load` and
:meth:`VectorIndex.add` refuse vectors from another model with :class:`IndexMismatchError`.

On disk an index is a directory: ``manifest.json`` (format version, embedding model, dimension,
count, kind, metric, built_at, file names, tuning), ``index.faiss`` and ``ids.json``.

Example:
    >>> index = VectorIndex(dim=384, embedding_model="minilm-l6")
    >>> index.add(["faq-1", "faq-2"], embedder.encode(["reset password", "opening hours"]))
    >>> ids, scores = index.search(embedder.encode(["forgot my password"]), k=1)
    >>> ids
    [['faq-1']]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from core.io.artifacts import ArtifactError, open_artifact, verify_artifact

logger = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "hnsw", "ivf"]
Metric = Literal["ip", "cosine"]
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
#: Kind of the artifact directory (``artifact.json``, :mod:`core.io.artifacts`) an index is saved as.
ARTIFACT_KIND = "aigc-vector-index"
# Directories saved before artifact manifests: their manifest.json records the FAISS kind.
_LEGACY_KINDS = ("flat", "hnsw", "ivf")
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"
# Manifest fields and their checks (format_version 1).
_MANIFEST_FIELDS: dict[str, Any] = {
    "format_version": lambda v: v == FORMAT_VERSION,
    "embedding_model": lambda v: isinstance(v, str) and bool(v),
    "dim": lambda v: isinstance(v, int) and v > 0,
    "count": lambda v: isinstance(v, int) and v >= 0,
    "kind": lambda v: v in ("flat", "hnsw", "ivf"),
    "metric": lambda v: v in ("ip", "cosine"),
    "built_at": lambda v: isinstance(v, str),
    "ids_file": lambda v: isinstance(v, str) and bool(v),
}


# Fewer queries than this run on one OpenMP thread: a parallel region for a handful of queries costs more
# than it saves, and on a busy machine its barrier waits for descheduled threads (measured: a 10k exact
# single query p50 0.4 ms on one thread vs ~100 ms on two, 2 cores under load).
_PARALLEL_QUERIES = 16
_OMP_LOCK = threading.Lock()


def _search_one_thread(index: Any, matrix: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
    with _OMP_LOCK:
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return index.search(matrix, k, params=params)
        finally:
            faiss.omp_set_num_threads(threads)


class IndexMismatchError(ValueError):
    """Vectors or an index directory that do not match the index (embedding model or dimension)."""


class IndexFormatError(ValueError):
    """An index directory whose manifest or files are corrupt or inconsistent."""


@dataclass(frozen=True)
class IndexConfig:
    """How a :class:`VectorIndex` is built and searched."""

    kind: IndexKind = field(default="auto", metadata={"help": "auto | flat | hnsw | ivf"})
    metric: Metric = field(
        default="ip", metadata={"help": "ip, or cosine (normalises vectors on the way in)"}
    )
    flat_threshold: int = field(default=50_000, metadata={"help": "auto: switch to HNSW above this count"})
    ivf_threshold: int = field(
        default=500_000, metadata={"help": "auto: switch to IVF with 8-bit codes above this count (memory)"}
    )
    hnsw_m: int = field(default=32, metadata={"help": "HNSW neighbours per node"})
    hnsw_ef_construction: int = field(default=200, metadata={"help": "HNSW candidate list size when adding"})
    hnsw_ef_search: int = field(default=128, metadata={"help": "HNSW candidate list size when searching"})
    ivf_nlist: int | None = field(default=None, metadata={"help": "IVF lists; None: 4*sqrt(training size)"})
    ivf_nprobe: int = field(default=32, metadata={"help": "IVF lists visited per query"})
    ivf_storage: Literal["flat", "sq8"] = field(
        default="flat",
        metadata={"help": "IVF storage: flat float32, or sq8 (8-bit codes, a quarter of the memory)"},
    )
    compact_ratio: float = field(default=0.25, metadata={"help": "HNSW: rebuild when this share is removed"})

    def __post_init__(self) -> None:
        if self.kind not in ("auto", "flat", "hnsw", "ivf"):
            raise ValueError(f"IndexConfig.kind must be auto, flat, hnsw or ivf, got {self.kind!r}")
        if self.metric not in ("ip", "cosine"):
            raise ValueError(f"IndexConfig.metric must be ip or cosine, got {self.metric!r}")
        for name in (
            "flat_threshold",
            "ivf_threshold",
            "hnsw_m",
            "hnsw_ef_construction",
            "hnsw_ef_search",
            "ivf_nprobe",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"IndexConfig.{name} must be positive, got {getattr(self, name)}")
        if self.ivf_nlist is not None and self.ivf_nlist < 1:
            raise ValueError(f"IndexConfig.ivf_nlist must be positive or None, got {self.ivf_nlist}")
        if self.ivf_storage not in ("flat", "sq8"):
            raise ValueError(f"IndexConfig.ivf_storage must be flat or sq8, got {self.ivf_storage!r}")
        if not 0 < self.compact_ratio <= 1:
            raise ValueError(f"IndexConfig.compact_ratio must be in (0, 1], got {self.compact_ratio}")


@dataclass(frozen=True)
class Calibration:
    """The search setting :meth:`VectorIndex.calibrate` chose (saved in the index manifest).

    Attributes:
        k: Results per query it was measured for.
        target_recall: Mean recall@k against exact search it had to reach.
        recall: What the chosen setting reached on the sample (below the target when no setting did).
        setting: ``hnsw_ef_search``, ``ivf_nprobe`` or ``exact`` (a flat index).
        value: The chosen value (0 for ``exact``).
        queries: Sample size.
        tried: ``{value: recall}`` of every setting measured.
    """

    k: int
    target_recall: float
    recall: float
    setting: str
    value: int
    queries: int
    tried: dict[int, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Rebuild from :func:`dataclasses.asdict` output (JSON turns the ``tried`` keys into strings)."""
        return cls(
            **{**data, "tried": {int(key): float(value) for key, value in data.get("tried", {}).items()}}
        )


def _ladder(kind: str, k: int, limit: int) -> list[int]:
    """Settings to try, cheapest first: HNSW efSearch from k up, IVF nprobe in powers of two."""
    if kind == "hnsw":
        values = {max(k, int(k * f)) for f in (1, 1.25, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)}
    else:
        values = {min(2**i, limit) for i in range(0, max(limit, 1).bit_length() + 1)}
    return sorted(v for v in values if v <= (max(limit, k) if kind == "hnsw" else limit))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class VectorIndex:
    """Top-k inner-product search over vectors keyed by string ids.

    Args:
        dim: Vector dimension.
        embedding_model: Id of the model that makes the vectors (e.g. ``Embedder.model_id``).
        kind: ``auto``, ``flat``, ``hnsw`` or ``ivf`` (see module docs).
        metric: ``ip`` scores by inner product (use L2-normalised vectors for cosine);
            ``cosine`` normalises vectors and queries itself.
        config: Tuning (thresholds, HNSW/IVF parameters). Its ``kind`` and ``metric`` are
            replaced by the arguments above; use :meth:`from_config` to take them from the config.
    """

    def __init__(
        self,
        dim: int,
        embedding_model: str,
        kind: IndexKind = "auto",
        metric: Metric = "ip",
        config: IndexConfig | None = None,
    ) -> None:
        if int(dim) < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if not embedding_model:
            raise ValueError("embedding_model must name the model that makes the vectors")
        self.dim = int(dim)
        self.embedding_model = str(embedding_model)
        self.config = dataclasses.replace(config or IndexConfig(), kind=kind, metric=metric)
        self.built_at = _now()
        self._kind = "flat" if self.config.kind == "auto" else self.config.kind
        self._index: Any = self._new_index(self._kind)
        self._id_to_label: dict[str, int] = {}
        self._label_to_id: dict[int, str] = {}
        self._tombstones: set[int] = set()
        self._next_label = 0
        self._hnsw_params: Any = None
        self.calibration: Calibration | None = None

    @classmethod
    def from_config(cls, dim: int, embedding_model: str, config: IndexConfig) -> VectorIndex:
        """Build an empty index with kind, metric and tuning taken from ``config``."""
        return cls(dim, embedding_model, kind=config.kind, metric=config.metric, config=config)

    # ----------------------------------------------------------------------------------- basics
    @property
    def kind(self) -> str:
        """The FAISS index in use now: ``flat``, ``hnsw`` or ``ivf`` (``auto`` resolved)."""
        return self._kind

    @property
    def metric(self) -> str:
        """``ip`` or ``cosine``."""
        return self.config.metric

    @property
    def ids(self) -> list[str]:
        """The stored ids, in insertion order."""
        return [self._label_to_id[label] for label in sorted(self._label_to_id)]

    def __len__(self) -> int:
        return len(self._id_to_label)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._id_to_label

    def contains(self, id_: str) -> bool:
        """Whether ``id_`` is stored."""
        return id_ in self._id_to_label

    def __repr__(self) -> str:
        return (
            f"VectorIndex(count={len(self)}, dim={self.dim}, kind={self.kind!r}, metric={self.metric!r}, "
            f"embedding_model={self.embedding_model!r})"
        )

    # ------------------------------------------------------------------------------ internals
    def _new_index(self, kind: str, nlist: int = 1) -> Any:
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        if kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = self.config.hnsw_ef_construction
            return faiss.IndexIDMap2(hnsw)
        # IVF keeps ids in its inverted lists; IndexIDMap2 over IVF would break on removal,
        # because IDMap2 assumes the sub-index renumbers like IndexFlat.
        quantizer = faiss.IndexFlatIP(self.dim)
        if self.config.ivf_storage == "sq8":
            return faiss.IndexIVFScalarQuantizer(
                quantizer, self.dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
        return faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)

    def _as_matrix(self, vectors: Any, what: str) -> np.ndarray:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2:
            raise ValueError(f"{what} must be a 1-D or 2-D array, got shape {arr.shape}")
        if arr.shape[1] != self.dim:
            raise IndexMismatchError(
                f"{what} have dimension {arr.shape[1]} but the index holds {self.dim}-d vectors "
                f"from '{self.embedding_model}'"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        arr = np.ascontiguousarray(arr)
        if self.metric == "cosine":
            arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
        return arr

    def _stored(self) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, vectors)`` of everything FAISS holds (flat and HNSW), tombstones included."""
        labels = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        vectors = self._index.index.reconstruct_n(0, self._index.ntotal)
        return labels, vectors

    def _rebuild(self, kind: str) -> None:
        """Rebuild as ``kind`` from the live vectors (drops tombstones)."""
        labels, vectors = self._live_stored()
        logger.info(
            "Rebuilding vector index", extra={"from_kind": self._kind, "to_kind": kind, "count": len(labels)}
        )
        self._index = self._new_index(kind)
        self._kind = kind
        self._tombstones.clear()
        self._hnsw_params = None
        if len(labels):
            self._index.add_with_ids(vectors, labels)

    def _live_stored(self) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, vectors)`` of the live (not tombstoned) vectors of a flat or HNSW index."""
        labels, vectors = self._stored()
        live = np.fromiter((label not in self._tombstones for label in labels), bool, len(labels))
        return labels[live], vectors[live]

    def _convert_to_ivf(self, incoming: np.ndarray) -> None:
        """``auto`` past ``ivf_threshold``: move the live vectors into an IVF-SQ8 index trained on a
        sample of them and of ``incoming`` (the batch about to be added)."""
        labels, vectors = self._live_stored() if self._index.ntotal else (np.zeros(0, np.int64), incoming[:0])
        logger.info(
            "Converting vector index to IVF-SQ8", extra={"from_kind": self._kind, "count": len(labels)}
        )
        total = len(vectors) + len(incoming)
        # Sample positions over both sets and gather them, rather than concatenating every vector.
        picked = np.sort(np.random.default_rng(0).choice(total, min(total, 200_000), replace=False))
        old = picked[picked < len(vectors)]
        sample = np.concatenate([vectors[old], incoming[picked[len(old) :] - len(vectors)]])
        self.config = dataclasses.replace(self.config, ivf_storage="sq8")
        self._kind = "ivf"
        self._tombstones.clear()
        self._hnsw_params = None
        self._train_ivf(sample, nlist_for=total)
        if len(labels):
            self._index.add_with_ids(vectors, labels)

    def _train_ivf(self, vectors: np.ndarray, nlist_for: int | None = None) -> None:
        n = len(vectors)
        nlist = self.config.ivf_nlist or int(4 * np.sqrt(nlist_for or n))
        # FAISS wants ~39 training points per list; fewer lists beats poorly trained ones.
        nlist = max(1, min(nlist, n // 39))
        if nlist < (self.config.ivf_nlist or 0):
            logger.warning(
                "IVF training batch is small; using fewer lists",
                extra={"requested_nlist": self.config.ivf_nlist, "nlist": nlist, "train_size": n},
            )
        self._index = self._new_index("ivf", nlist)
        self._index.train(vectors)

    def _search_params(self) -> Any:
        if self._kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=min(self.config.ivf_nprobe, self._index.nlist))
        if self._kind == "hnsw":
            if self._hnsw_params is None:
                # Cached until the tombstones change: building the selector is O(tombstones).
                self._hnsw_params = faiss.SearchParametersHNSW(efSearch=self.config.hnsw_ef_search)
                if self._tombstones:
                    dead = np.fromiter(self._tombstones, np.int64, len(self._tombstones))
                    self._hnsw_params.sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
            return self._hnsw_params
        return None

    # ------------------------------------------------------------------------------- mutation
    def add(self, ids: Sequence[str], vectors: Any, embedding_model: str | None = None) -> None:
        """Add vectors under string ids; an id already stored is replaced (upsert).

        Args:
            ids: One unique, non-empty string per row.
            vectors: Array ``(len(ids), dim)`` (or ``(dim,)`` for one id).
            embedding_model: The model that made ``vectors``; when given it must match the index's.

        Raises:
            IndexMismatchError: Wrong dimension or another embedding model.
            ValueError: Id count differs from the row count, duplicate or empty ids, non-finite values.
        """
        if embedding_model is not None and embedding_model != self.embedding_model:
            raise IndexMismatchError(
                f"Vectors come from '{embedding_model}' but this index holds vectors from "
                f"'{self.embedding_model}'; re-embed with '{self.embedding_model}' or build a new index"
            )
        if isinstance(ids, str):
            raise TypeError("ids must be a sequence of strings; wrap a single id in a list")
        ids = list(ids)
        if not ids and np.size(vectors) == 0:
            return
        matrix = self._as_matrix(vectors, "vectors")
        if len(ids) != len(matrix):
            raise ValueError(f"Got {len(ids)} ids for {len(matrix)} vectors")
        bad = [i for i in ids if not isinstance(i, str) or not i]
        if bad:
            raise ValueError(f"ids must be non-empty strings, got {bad[:5]!r}")
        if len(set(ids)) != len(ids):
            dupes = [i for i, n in Counter(ids).items() if n > 1]
            raise ValueError(f"Duplicate ids in one add() call: {dupes[:5]}")
        existing = [i for i in ids if i in self._id_to_label]
        if existing:
            self._discard(existing)
        if (
            self.config.kind == "auto"
            and self._kind != "ivf"
            and len(self) + len(ids) > self.config.ivf_threshold
        ):
            self._convert_to_ivf(matrix)
        if self._kind == "ivf" and not self._index.is_trained:
            self._train_ivf(matrix)
        labels = np.arange(self._next_label, self._next_label + len(ids), dtype=np.int64)
        self._next_label += len(ids)
        self._index.add_with_ids(matrix, labels)
        for label, id_ in zip(labels.tolist(), ids, strict=True):
            self._id_to_label[id_] = label
            self._label_to_id[label] = id_
        self.built_at = _now()
        if self.config.kind == "auto" and self._kind == "flat" and len(self) > self.config.flat_threshold:
            self._rebuild("hnsw")
        self._maybe_compact()

    def remove(self, ids: Iterable[str], missing_ok: bool = False) -> int:
        """Remove ids.

        Args:
            ids: Ids to remove.
            missing_ok: Skip unknown ids instead of raising.

        Returns:
            How many ids were removed.

        Raises:
            KeyError: An id is not stored and ``missing_ok`` is false.
        """
        ids = [ids] if isinstance(ids, str) else list(dict.fromkeys(ids))
        unknown = [i for i in ids if i not in self._id_to_label]
        if unknown and not missing_ok:
            raise KeyError(f"{len(unknown)} id(s) not in the index, e.g. {unknown[:5]}")
        known = [i for i in ids if i in self._id_to_label]
        if known:
            self._discard(known)
            self.built_at = _now()
            self._maybe_compact()
        return len(known)

    def _discard(self, ids: list[str]) -> None:
        labels = np.array([self._id_to_label.pop(i) for i in ids], dtype=np.int64)
        for label in labels.tolist():
            del self._label_to_id[label]
        if self._kind == "hnsw":
            self._tombstones.update(labels.tolist())
            self._hnsw_params = None
        else:
            self._index.remove_ids(faiss.IDSelectorBatch(labels))

    def _maybe_compact(self) -> None:
        if self._kind == "hnsw" and len(self._tombstones) > self.config.compact_ratio * self._index.ntotal:
            self._rebuild("hnsw")

    def compact(self) -> None:
        """Rebuild an HNSW index without its tombstones (a no-op for flat and IVF)."""
        if self._kind == "hnsw" and self._tombstones:
            self._rebuild("hnsw")

    # --------------------------------------------------------------------------------- search
    def search(self, queries: Any, k: int) -> tuple[list[list[str]], np.ndarray]:
        """Top-k ids and scores per query, best first.

        Args:
            queries: Array ``(n, dim)``, or ``(dim,)`` for one query (still answered as one row).
            k: Results per query; capped at the number of stored vectors.

        Returns:
            ``(ids, scores)``: ``ids[i]`` lists up to ``k`` ids for query ``i``; ``scores`` is float32
            of shape ``(n, min(k, len(self)))`` with inner products (higher is better). An
            approximate index may return fewer ids; their missing scores are ``-inf``.

        Raises:
            IndexMismatchError: Queries of the wrong dimension.
            ValueError: ``k`` is not positive.
        """
        if int(k) < 1:
            raise ValueError(f"k must be positive, got {k}")
        matrix = self._as_matrix(queries, "queries")
        k_eff = min(int(k), len(self))
        if k_eff == 0:
            return [[] for _ in range(len(matrix))], np.empty((len(matrix), 0), dtype=np.float32)
        if len(matrix) < _PARALLEL_QUERIES:
            scores, labels = _search_one_thread(self._index, matrix, k_eff, self._search_params())
        else:
            scores, labels = self._index.search(matrix, k_eff, params=self._search_params())
        scores[labels < 0] = -np.inf
        lookup = self._label_to_id
        ids = [[lookup[label] for label in row if label >= 0] for row in labels.tolist()]
        return ids, scores

    def calibrate(
        self, queries: Any, k: int, target_recall: float = 0.95, vectors: Any | None = None
    ) -> Calibration:
        """Keep the cheapest search setting whose mean recall@k against exact search reaches the target.

        HNSW tries ``hnsw_ef_search`` from ``k`` up to 32 ``k``; IVF tries ``ivf_nprobe`` in powers of two
        up to every list. Exact neighbours come from a brute-force scan (``faiss.knn``) of ``vectors``, or
        of the vectors the index stores (flat and HNSW) when ``vectors`` is None. When no setting reaches
        the target the largest one tried is kept, with a warning. A flat index is exact: nothing to choose.

        Args:
            queries: ``(n, dim)`` sample queries, as the searches that follow will ask them.
            k: Results per query to measure (what the searches will ask for).
            target_recall: Mean recall@k to reach.
            vectors: Every stored vector, one row per id of :attr:`ids` in that order (needed for IVF,
                which keeps only quantised codes).

        Returns:
            The choice (also kept in :attr:`calibration` and saved with the index).

        Raises:
            ValueError: No queries, ``k`` not positive, an IVF index without ``vectors``, or ``vectors``
                that do not match the stored ids.
        """
        matrix = self._as_matrix(queries, "queries")
        if not len(matrix) or int(k) < 1 or not 0 < target_recall <= 1:
            raise ValueError(
                f"need queries, k >= 1 and 0 < target_recall <= 1; got {len(matrix)}, {k}, {target_recall}"
            )
        k = min(int(k), len(self))
        if self._kind == "flat" or k == 0:
            self.calibration = Calibration(k, target_recall, 1.0, "exact", 0, len(matrix))
            return self.calibration
        labels, corpus = self._calibration_corpus(vectors)
        _, positions = faiss.knn(matrix, corpus, k, metric=faiss.METRIC_INNER_PRODUCT)
        exact = labels[positions]
        setting = "hnsw_ef_search" if self._kind == "hnsw" else "ivf_nprobe"
        tried: dict[int, float] = {}
        for value in _ladder(self._kind, k, self._index.nlist if self._kind == "ivf" else len(self)):
            self._set_search(setting, value)
            _, found = self._index.search(matrix, k, params=self._search_params())
            tried[value] = float(
                np.mean([len(np.intersect1d(f, e)) / k for f, e in zip(found, exact, strict=True)])
            )
            if tried[value] >= target_recall:
                break
        value = max(tried)
        if tried[value] < target_recall:
            logger.warning(
                "No search setting reaches the recall target; keeping the largest tried",
                extra={"setting": setting, "value": value, "recall": tried[value], "target": target_recall},
            )
        self.calibration = Calibration(k, target_recall, tried[value], setting, value, len(matrix), tried)
        logger.info("Calibrated vector index", extra=dataclasses.asdict(self.calibration))
        return self.calibration

    def _calibration_corpus(self, vectors: Any | None) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, vectors)`` of every live stored vector, for the exact side of a calibration."""
        if vectors is None:
            if self._kind == "ivf":
                raise ValueError("calibrating an IVF index needs the original vectors (it stores codes)")
            return self._live_stored()
        corpus = self._as_matrix(vectors, "vectors")
        if len(corpus) != len(self):
            raise ValueError(f"got {len(corpus)} vectors for the {len(self)} ids of the index")
        return np.array(sorted(self._label_to_id), dtype=np.int64), corpus

    def _set_search(self, setting: str, value: int) -> None:
        self.config = dataclasses.replace(self.config, **{setting: int(value)})
        self._hnsw_params = None

    def get_vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors of ``ids`` (flat and HNSW only), shape ``(len(ids), dim)``.

        Raises:
            KeyError: An id is not stored.
            NotImplementedError: On an IVF index, which does not keep a direct id map.
        """
        if self._kind == "ivf":
            raise NotImplementedError("get_vectors() is not available on an IVF index")
        missing = [i for i in ids if i not in self._id_to_label]
        if missing:
            raise KeyError(f"{len(missing)} id(s) not in the index, e.g. {missing[:5]}")
        if not ids:
            return np.empty((0, self.dim), dtype=np.float32)
        labels = np.fromiter((self._id_to_label[i] for i in ids), dtype=np.int64, count=len(ids))
        # One call for all rows (a reconstruct() per id was most of a recommender load's index time).
        return np.asarray(self._index.reconstruct_batch(labels), dtype=np.float32).reshape(len(ids), self.dim)

    # ------------------------------------------------------------------------------- save/load
    def manifest(self) -> dict[str, Any]:
        """The JSON manifest written by :meth:`save`."""
        return {
            "format_version": FORMAT_VERSION,
            "embedding_model": self.embedding_model,
            "dim": self.dim,
            "count": len(self),
            "kind": self._kind,
            "metric": self.metric,
            "built_at": self.built_at,
            "ids_file": IDS_FILE,
            "index_file": INDEX_FILE,
            "config": dataclasses.asdict(self.config),
            "calibration": dataclasses.asdict(self.calibration) if self.calibration else None,
        }

    def save(self, directory: str | Path) -> Path:
        """Write the index to ``directory`` atomically (a temp dir renamed into place).

        An existing directory is replaced. Readers see the old or the new index, never a mix
        (during the swap the path is briefly absent).

        Returns:
            The directory.
        """
        directory = Path(directory)
        with open_artifact(directory, ARTIFACT_KIND, version=FORMAT_VERSION, legacy=_LEGACY_KINDS) as tmp:
            faiss.write_index(self._index, str(tmp / INDEX_FILE))
            labels = sorted(self._label_to_id)
            ids_payload = {
                "labels": labels,
                "ids": [self._label_to_id[label] for label in labels],
                "tombstones": sorted(self._tombstones),
                "next_label": self._next_label,
            }
            (tmp / IDS_FILE).write_text(json.dumps(ids_payload), encoding="utf-8")
            (tmp / MANIFEST_FILE).write_text(json.dumps(self.manifest(), indent=2) + "\n", encoding="utf-8")
        logger.info(
            "Saved vector index", extra={"path": str(directory), "count": len(self), "kind": self._kind}
        )
        return directory

    @classmethod
    def load(
        cls, directory: str | Path, expected_model: str | None = None, verify: bool = True
    ) -> VectorIndex:
        """Load an index saved by :meth:`save`.

        Args:
            directory: The index directory.
            expected_model: When given, the embedding model the index must have been built with.
            verify: Check the files against the index's ``artifact.json``. Callers that verify an
                enclosing artifact (a KB, a recommender model: its hashes cover the index's files) pass
                ``False`` so a load hashes the index once, not twice.

        Raises:
            FileNotFoundError: The directory, manifest, FAISS file or ids file is missing.
            IndexFormatError: The manifest or ids file is corrupt or disagrees with the FAISS file.
            IndexMismatchError: The index was built with another embedding model than ``expected_model``.
        """
        directory = Path(directory)
        manifest = _read_manifest(directory)
        try:  # file hashes; indexes saved before artifact manifests have none and rely on their own checks
            if verify:
                verify_artifact(directory, kinds=(ARTIFACT_KIND,))
        except ArtifactError as err:
            raise IndexFormatError(str(err)) from err
        if expected_model is not None and manifest["embedding_model"] != expected_model:
            raise IndexMismatchError(
                f"Index at {directory} was built with embedding model '{manifest['embedding_model']}', "
                f"not '{expected_model}'; rebuild it with '{expected_model}'"
            )
        index_path = directory / manifest.get("index_file", INDEX_FILE)
        ids_path = directory / manifest["ids_file"]
        for path in (index_path, ids_path):
            if not path.is_file():
                raise FileNotFoundError(f"Vector index file {path} is missing")
        try:
            config = IndexConfig(**manifest.get("config", {}))
            payload = json.loads(ids_path.read_text(encoding="utf-8"))
            labels = [int(label) for label in payload["labels"]]
            ids = [str(i) for i in payload["ids"]]
            tombstones = {int(label) for label in payload.get("tombstones", [])}
            next_label = int(payload["next_label"])
        except (TypeError, ValueError, KeyError) as err:
            raise IndexFormatError(f"{ids_path} (or the manifest's config) is malformed: {err!r}") from err
        try:
            faiss_index = faiss.read_index(str(index_path))
        except RuntimeError as err:
            raise IndexFormatError(f"{index_path} is not a readable FAISS index: {err}") from err
        self = cls(manifest["dim"], manifest["embedding_model"], config.kind, manifest["metric"], config)
        self._kind = manifest["kind"]
        self._index = faiss_index
        self.built_at = manifest["built_at"]
        self._label_to_id = dict(zip(labels, ids, strict=False))
        self._id_to_label = {id_: label for label, id_ in self._label_to_id.items()}
        self._tombstones = tombstones
        self._next_label = next_label
        try:
            calibration = manifest.get("calibration")
            self.calibration = Calibration.from_dict(calibration) if calibration else None
        except (TypeError, ValueError) as err:
            raise IndexFormatError(f"{directory / MANIFEST_FILE}: malformed calibration: {err!r}") from err
        if self._kind in ("flat", "hnsw") and not isinstance(faiss_index, faiss.IndexIDMap2):
            raise IndexFormatError(f"{index_path} holds {type(faiss_index).__name__}, expected IndexIDMap2")
        self._check_consistent(directory, manifest, len(labels), len(ids))
        return self

    def _check_consistent(self, directory: Path, manifest: dict[str, Any], n_labels: int, n_ids: int) -> None:
        problems = []
        if n_labels != n_ids or len(self._id_to_label) != n_ids:
            problems.append(f"{n_ids} ids for {n_labels} labels (or duplicate ids)")
        if self._index.d != self.dim:
            problems.append(f"FAISS dimension {self._index.d} != manifest dim {self.dim}")
        if self._index.ntotal != n_ids + len(self._tombstones):
            problems.append(f"FAISS holds {self._index.ntotal} vectors, ids file lists {n_ids}")
        if manifest["count"] != n_ids:
            problems.append(f"manifest count {manifest['count']} != {n_ids} ids")
        if problems:
            raise IndexFormatError(f"Vector index at {directory} is inconsistent: {'; '.join(problems)}")


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise FileNotFoundError(f"Vector index directory {directory} does not exist")
    if not path.is_file():
        raise FileNotFoundError(f"Vector index manifest {path} is missing")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise IndexFormatError(f"Vector index manifest {path} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict):
        raise IndexFormatError(f"Vector index manifest {path} must hold a JSON object")
    missing = [key for key in _MANIFEST_FIELDS if key not in manifest]
    if missing:
        raise IndexFormatError(f"Vector index manifest {path} lacks field(s) {missing}")
    for key, ok in _MANIFEST_FIELDS.items():
        if not ok(manifest[key]):
            raise IndexFormatError(f"Vector index manifest {path}: invalid field {key}={manifest[key]!r}")
    return manifest

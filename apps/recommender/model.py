"""The saved recommender: catalogue, training history, item index, ranker and encoder adapter.

A model directory holds (no pickles)::

    artifact.json          kind, format and the sha256 of every file (core.io.artifacts)
    manifest.json          format, encoder, config, counts, training metrics
    items.parquet          item_id, text (+ title, timestamp when known)
    users.parquet          user ids in index order
    interactions.parquet   the training history (user_id, item_id, timestamp, event, rating)
    ranker.json            the ranker (see apps.recommender.ranker); LambdaRank trees also
                           write ranker.txt, LightGBM's text model file
    collaborative.safetensors
                           the fitted ItemKNN similarity (CSR: top neighbours per item) and EASE
                           weights (dense float32, or CSR when sparsified), settings in its metadata
    index/                 core VectorIndex of the item text vectors (FAISS + JSON manifest)
    encoder/               LoRA adapter of the fine-tuned text encoder (peft safetensors), optional

:meth:`RecommenderModel.save` writes everything into a temporary directory next to the target
and renames it into place (:func:`core.io.artifacts.open_artifact`), so a reader sees the old model
or the new one, never a mix; the file hashes in ``artifact.json`` catch a directory altered
afterwards (:meth:`RecommenderModel.load` raises :class:`ModelError`).

Serving (:meth:`RecommenderModel.recommend`) needs only the item vectors, not the encoder, and
loading fits nothing heavy (ItemKNN and EASE are read back, not fitted again; models saved before
``collaborative.safetensors`` existed fit them on load), so a batch worker loads in seconds;
:meth:`RecommenderModel.embedder` loads the (adapted) encoder for new text.

Loading checks every file's hash before it parses it. ``collaborative.safetensors`` (on
ml-latest-small 145 of the 160 MB: the dense EASE weights) is hashed on a second thread while the
other files are read (:func:`core.io.artifacts.verifying_artifact`), and its arrays are read-only
views of a memory map, not copies (safetensors' torch reader maps the file; its numpy reader copies
every array): processes that load the same model share those pages. A loaded model therefore
relies on its files not being rewritten in place while it runs; :meth:`RecommenderModel.save` never
does (it replaces the directory).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.baselines import EASEScorer, ItemKNNScorer
from apps.recommender.config import RankerConfig
from apps.recommender.hybrid import HybridScorer
from apps.recommender.interactions import Dataset
from apps.recommender.ranker import load_ranker
from core.config import ConfigError, from_dict, to_dict
from core.index import IndexFormatError, IndexMismatchError, VectorIndex
from core.io.artifacts import (
    ArtifactCheck,
    ArtifactError,
    open_artifact,
    sha256_file,
    verify_files,
    verifying_artifact,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "aigc-recommender"
MANIFEST = "manifest.json"
COLLABORATIVE_FILE = "collaborative.safetensors"
OUTPUT_COLUMNS = ("user_id", "rank", "item_id", "score", "reason")
_ITEM_COLUMNS = ("item_id", "text", "title", "timestamp")
_INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp", "event", "rating")

Recommendation = tuple[str, float, str]


class ModelError(RuntimeError):
    """A model directory is missing, incomplete, corrupt or of another format."""


@dataclass(frozen=True)
class EncoderInfo:
    """Which text encoder produced the item vectors."""

    base: str = "minilm-l6"
    model_id: str = "minilm-l6"
    adapter: str | None = None
    max_length: int | None = None


class RecommenderModel:
    """A trained hybrid recommender, ready to score users.

    Args:
        scorer: The fitted :class:`~apps.recommender.hybrid.HybridScorer`.
        encoder: The encoder that made the item vectors.
        index: Vector index of the item vectors (keyed by item id).
        metrics: Training metrics recorded in the manifest (e.g. encoder fine-tuning gain).
        path: Where the model was loaded from (``None`` for a model not saved yet).
    """

    def __init__(
        self,
        scorer: HybridScorer,
        encoder: EncoderInfo,
        index: VectorIndex,
        metrics: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.scorer = scorer
        self.encoder = encoder
        self.index = index
        self.metrics = dict(metrics or {})
        self.path = path
        self._adapter_source: Path | None = None
        self._embedder: Any = None

    # ------------------------------------------------------------------------------- queries

    @property
    def train(self) -> Dataset:
        """The training data (catalogue, users and their history)."""
        return self.scorer.train

    @property
    def items(self) -> pd.DataFrame:
        """The catalogue: ``item_id``, ``text`` and the other item columns."""
        return self.train.items

    def user_ids(self) -> list[str]:
        """Every user the model knows, in index order (``--users all`` of a batch job)."""
        return [str(u) for u in self.train.user_ids]

    def history(self, user_id: str) -> pd.DataFrame:
        """A user's training interactions, oldest first, with item titles (empty when unknown)."""
        frame = self.train.interactions
        rows = frame.loc[frame["user_id"] == str(user_id), ["item_id", "timestamp", "event", "rating"]]
        titles = self.items.set_index("item_id")
        column = "title" if "title" in titles.columns else "text"
        return rows.assign(title=rows["item_id"].map(titles[column])).reset_index(drop=True)

    def recommend(
        self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True
    ) -> list[list[Recommendation]]:
        """Top-``k`` items per user as ``(item_id, score, reason)``, best first.

        Unknown users and users without history get popular items (a documented fallback).

        Args:
            user_ids: The users.
            k: Items per user.
            exclude_seen: Must be True: the model never recommends an item the user had.

        Returns:
            One list per user, in input order.
        """
        if not exclude_seen:
            raise ValueError("RecommenderModel always excludes items the user has seen")
        frame = self.recommend_frame(user_ids, k)
        grouped = {u: g for u, g in frame.groupby("user_id", sort=False)}
        out = []
        for user_id in user_ids:
            group = grouped.get(str(user_id))
            rows = [] if group is None else group.itertuples(index=False)
            out.append([(str(r.item_id), float(r.score), str(r.reason)) for r in rows])
        return out

    def recommend_frame(self, user_ids: Sequence[str], k: int = 10) -> pd.DataFrame:
        """Top-``k`` per user as a frame: ``user_id``, ``rank``, ``item_id``, ``score``, ``reason``,
        ``similar_item_id``, ``similar_score``, ``cold_slot`` (see
        :meth:`HybridScorer.recommend_with_reasons`)."""
        return self.scorer.recommend_with_reasons([str(u) for u in user_ids], k)

    def recommend_chunk(self, user_ids: Sequence[str], k: int) -> pd.DataFrame:
        """Batch-job form of :meth:`recommend_frame`: only :data:`OUTPUT_COLUMNS`."""
        frame = self.recommend_frame(user_ids, k)
        return frame.loc[:, list(OUTPUT_COLUMNS)].reset_index(drop=True)

    def similar_items(self, item_id: str, k: int = 10) -> pd.DataFrame:
        """The ``k`` items whose text vectors are closest to ``item_id``'s (itself excluded).

        Raises:
            KeyError: Unknown item id.
        """
        if str(item_id) not in self.index:
            raise KeyError(f"unknown item id {item_id!r}")
        vector = self.index.get_vectors([str(item_id)])
        ids, scores = self.index.search(vector, min(k + 1, len(self.index)))
        pairs = [(i, float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != str(item_id)][:k]
        frame = pd.DataFrame(pairs, columns=["item_id", "score"])
        titles = self.items.set_index("item_id")
        column = "title" if "title" in titles.columns else "text"
        return frame.assign(title=frame["item_id"].map(titles[column]))

    def embedder(self) -> Any:
        """The text encoder of the item vectors (with its LoRA adapter), loaded on first use."""
        if self._embedder is None:
            from apps.recommender.encoder_training import load_embedder

            adapter = self._adapter_dir()
            self._embedder = load_embedder(self.encoder.base, adapter, self.encoder.max_length)
        return self._embedder

    def _adapter_dir(self) -> Path | None:
        if self.encoder.adapter is None:
            return None
        if self.path is not None:
            return self.path / self.encoder.adapter
        return self._adapter_source

    def fingerprint(self) -> str:
        """Identity of a saved model: its path and the sha256 of its manifest."""
        if self.path is None:
            raise ModelError("the model is not saved; save() it first")
        return f"{self.path.resolve()}@{sha256_file(self.path / MANIFEST)[:16]}"

    # ------------------------------------------------------------------------------- save/load

    def save(self, directory: str | Path) -> Path:
        """Write the model directory atomically (temp dir renamed into place).

        A directory holding another kind of artifact (a knowledge base, a classifier), or a non-empty
        one that is no artifact, is refused (see :func:`core.io.artifacts.open_artifact`).

        Returns:
            The directory.

        Raises:
            core.io.artifacts.ArtifactError: ``directory`` must not be written.
        """
        directory = Path(directory)
        with open_artifact(directory, KIND, version=FORMAT_VERSION) as tmp:
            self._write(tmp)
        self.path = directory
        logger.info("Saved recommender", extra={"path": str(directory)})
        return directory

    def _write(self, tmp: Path) -> None:
        train = self.train
        items = train.items.loc[:, [c for c in _ITEM_COLUMNS if c in train.items.columns]].copy()
        items["item_id"] = items["item_id"].astype(str)
        items.to_parquet(tmp / "items.parquet", index=False)
        pd.DataFrame({"user_id": self.user_ids()}).to_parquet(tmp / "users.parquet", index=False)
        train.interactions.loc[:, list(_INTERACTION_COLUMNS)].to_parquet(
            tmp / "interactions.parquet", index=False
        )
        assert self.scorer.ranker is not None
        self.scorer.ranker.save(tmp)
        self.index.save(tmp / "index")
        _save_collaborative(tmp / COLLABORATIVE_FILE, self.scorer)
        adapter = self._adapter_dir()
        if self.encoder.adapter is not None:
            if adapter is None or not adapter.is_dir():
                raise ModelError(f"encoder adapter directory {adapter} is missing")
            shutil.copytree(adapter, tmp / self.encoder.adapter)
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "encoder": to_dict(self.encoder),
            "ranker_config": to_dict(self.scorer.config),
            "counts": {
                "items": train.n_items,
                "users": train.n_users,
                "interactions": len(train.interactions),
            },
            "metrics": to_dict(self.metrics),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> RecommenderModel:
        """Load a model saved by :meth:`save`.

        Raises:
            ModelError: The directory is missing, incomplete, altered or not a recommender model.
        """
        directory = Path(directory)
        manifest = _read_manifest(directory)
        # The collaborative arrays (most of the directory's bytes) are hashed on another thread
        # while the verified rest is read; they are read only once their hash has matched.
        with _verifying(directory, manifest) as check:
            try:
                encoder = from_dict(EncoderInfo, manifest["encoder"])
                config = from_dict(RankerConfig, manifest["ranker_config"])
                train = _read_dataset(directory)
                # The model's hashes cover the index's files.
                index = VectorIndex.load(directory / "index", expected_model=encoder.model_id, verify=False)
                ranker = load_ranker(directory)
                if len(index) != train.n_items:
                    raise ModelError(
                        f"{directory}: index holds {len(index)} items, catalogue {train.n_items}"
                    )
                vectors = index.get_vectors(train.item_ids.astype(str).tolist())
                _wait(check)
                cf, ease = _load_collaborative(directory / COLLABORATIVE_FILE, train)
            except (ConfigError, IndexFormatError, IndexMismatchError, KeyError, ValueError, OSError) as err:
                raise ModelError(f"{directory}: cannot load the recommender model ({err})") from err
        scorer = HybridScorer(vectors, config, ranker=ranker, index=index, cf=cf, ease=ease).fit(train)
        model = cls(scorer, encoder, index, manifest.get("metrics"), path=directory)
        logger.info("Loaded recommender", extra={"path": str(directory), "counts": manifest["counts"]})
        return model


class ModelLoader:
    """A picklable recipe that loads a saved model (for batch jobs and Ray workers).

    Args:
        path: The model directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __call__(self) -> RecommenderModel:
        """Load the model."""
        return RecommenderModel.load(self.path)

    def fingerprint(self) -> str:
        """Path and manifest hash of the model (changes whenever the model is saved again)."""
        manifest = self.path / MANIFEST
        if not manifest.is_file():
            raise ModelError(f"{manifest} is missing: not a recommender model directory")
        return f"{self.path.resolve()}@{sha256_file(manifest)[:16]}"


def _save_collaborative(path: Path, scorer: HybridScorer) -> None:
    """Write the fitted ItemKNN and EASE of ``scorer`` (keys ``itemknn.*``, ``ease.*``) as safetensors."""
    from safetensors.numpy import save

    generator = scorer.generator
    assert generator is not None
    tensors: dict[str, np.ndarray] = {}
    settings: dict[str, Any] = {}
    for name, fitted in (("itemknn", generator.cf), ("ease", generator.ease)):
        if fitted is None:
            continue
        arrays, settings[name] = fitted.to_tensors()
        tensors.update({f"{name}.{key}": value for key, value in arrays.items()})
    # Serialised in memory and written like the other files (save_file creates it owner-only).
    path.write_bytes(save(tensors, metadata={"settings": json.dumps(settings)}))


def _load_collaborative(path: Path, train: Dataset) -> tuple[ItemKNNScorer | None, EASEScorer | None]:
    """The stored ItemKNN and EASE scorers, bound to ``train``; ``(None, None)`` for a model saved
    without them (the hybrid then fits them).

    Raises:
        ValueError: A corrupt file or arrays that do not fit the catalogue.
    """
    if not path.is_file():
        logger.info("Model has no stored ItemKNN/EASE: fitting them", extra={"path": str(path)})
        return None, None
    from safetensors import SafetensorError, safe_open

    try:
        # framework="pt" maps the file and slices tensors out of the map (framework="numpy" copies
        # each one): the dense EASE weights are read in place and shared by every process that
        # loads this model. Marked read-only, since a write would only change this process's copy.
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: _read_only(handle.get_tensor(key).numpy()) for key in handle.keys()}  # noqa: SIM118
        settings = json.loads(metadata["settings"])
    except (SafetensorError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name}: {err!r}") from err

    def part(name: str) -> dict[str, np.ndarray]:
        return {key.split(".", 1)[1]: value for key, value in tensors.items() if key.startswith(f"{name}.")}

    cf = (
        ItemKNNScorer.from_tensors(train, part("itemknn"), settings["itemknn"])
        if "itemknn" in settings
        else None
    )
    ease = EASEScorer.from_tensors(train, part("ease"), settings["ease"]) if "ease" in settings else None
    return cf, ease


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such model directory; run `aigc recommend train` first")
    if not path.is_file():
        raise ModelError(f"{path} is missing: not a (complete) recommender model directory")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelError(f"{path}: corrupt manifest ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("kind") != KIND:
        raise ModelError(f"{path}: not a recommender model manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelError(f"{path}: format {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    return manifest


@contextmanager
def _verifying(directory: Path, manifest: dict[str, Any]) -> Iterator[ArtifactCheck]:
    """Check every file against ``artifact.json`` (or, for models saved before it, ``manifest.json``);
    :data:`COLLABORATIVE_FILE` is hashed on a thread until :func:`_wait` (see
    :func:`core.io.artifacts.verifying_artifact`)."""
    try:
        with verifying_artifact(directory, kinds=(KIND,), background=(COLLABORATIVE_FILE,)) as check:
            if check.manifest is None:
                _verify_legacy(directory, manifest)
            yield check
    except (FileNotFoundError, ArtifactError) as err:  # a file missing or altered, another kind
        raise _checksum_error(err) from err


def _verify_legacy(directory: Path, manifest: dict[str, Any]) -> None:
    """The hashes of a model saved before ``artifact.json``, listed in its ``manifest.json``."""
    if not isinstance(manifest.get("files"), dict):
        raise ModelError(f"{directory / MANIFEST}: manifest lists no files")
    try:
        verify_files(directory, manifest["files"], MANIFEST)
    except (FileNotFoundError, ValueError) as err:
        raise _checksum_error(err) from err


def _wait(check: ArtifactCheck) -> None:
    """:meth:`ArtifactCheck.wait` with its errors as :class:`ModelError` (not a load error)."""
    try:
        check.wait()
    except (FileNotFoundError, ArtifactError) as err:
        raise _checksum_error(err) from err


def _checksum_error(err: Exception) -> ModelError:
    if isinstance(err, FileNotFoundError):
        return ModelError(f"{err} Train the model again.")
    return ModelError(f"{err} (corrupt model)")


def _read_dataset(directory: Path) -> Dataset:
    items = pd.read_parquet(directory / "items.parquet")
    items["item_id"] = items["item_id"].astype(str)
    if "timestamp" in items.columns:
        items["timestamp"] = items["timestamp"].astype("Int64")
    user_ids = pd.read_parquet(directory / "users.parquet")["user_id"].astype(str).tolist()
    frame = pd.read_parquet(directory / "interactions.parquet")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["user_idx"] = _positions(frame["user_id"], user_ids, "users")
    frame["item_idx"] = _positions(frame["item_id"], items["item_id"], "items")
    frame = frame.astype({"timestamp": np.int64})
    columns = ["user_id", "item_id", "user_idx", "item_idx", "timestamp", "event", "rating"]
    return Dataset(items, frame[columns], user_ids, name=str(directory))


def _positions(values: pd.Series, ids: Sequence[str] | pd.Series, what: str) -> np.ndarray:
    """The position of each of ``values`` in ``ids`` (int64), by Arrow's hash lookup: a dict
    ``.map()`` over the interactions' Arrow strings was a third of a model's load.

    Raises:
        ValueError: ``ids`` repeats an id, or a value is not among them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    known = pa.array(ids, pa.large_string())
    if pc.count_distinct(known).as_py() != len(known):
        raise ValueError(f"the model's {what} repeat an id")
    found = pc.index_in(pa.array(values, pa.large_string()), value_set=known)
    if found.null_count:
        raise ValueError(f"interactions.parquet names {what} missing from the catalogue")
    return found.to_numpy().astype(np.int64)

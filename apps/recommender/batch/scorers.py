"""What a batch job scores with: chunk scorers for models, picked by the CLI's ``--model``.

Each is a :class:`~apps.recommender.batch.engines.ChunkScorer`:

* :class:`HybridChunkScorer` wraps a fitted :class:`~apps.recommender.hybrid.HybridScorer`
  (candidates + learned ranker, reasons from its top features and most similar history item).
* :class:`~apps.recommender.model.ModelLoader` is the picklable factory of a saved model
  directory (``aigc recommend train``, or the demo model that ``aigc demo`` writes).
* :func:`resolve_model` turns the CLI's ``--model`` value into a factory; ``synthetic:...``
  selects the seeded synthetic catalogue used by the throughput benchmark.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apps.recommender.batch.engines import ScorerFactory
from apps.recommender.batch.job import OUTPUT_COLUMNS, BatchError
from apps.recommender.batch.synthetic import SyntheticCatalogue

logger = logging.getLogger(__name__)

SYNTHETIC_PREFIX = "synthetic:"


class HybridChunkScorer:
    """A fitted hybrid scorer as a chunk scorer.

    Args:
        scorer: A fitted :class:`~apps.recommender.hybrid.HybridScorer`.
    """

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer

    def user_ids(self) -> list[str]:
        """Users of the training data, in user-index order."""
        return [str(u) for u in self.scorer.train.user_ids]

    def recommend_chunk(self, user_ids: Sequence[str], k: int) -> pd.DataFrame:
        """Top-``k`` unseen items with the ranker's logit as score and its reason.

        Unknown users and users without history get popular items (the candidate fallback).
        """
        frame = self.scorer.recommend_with_reasons([str(u) for u in user_ids], k=k)
        if frame.empty:
            return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
        return frame[list(OUTPUT_COLUMNS)].astype({"rank": np.int32, "score": np.float64})


def default_model_dir() -> Path:
    """Where ``aigc demo`` puts the demo model: ``<data dir>/recommend/model``."""
    from core.paths import data_dir

    return data_dir() / "recommend" / "model"


def parse_synthetic(spec: str) -> SyntheticCatalogue:
    """``synthetic:items=10000,users=1000,dim=64,history=20,seed=0,clusters=10,index=auto,index_dir=DIR``
    (any subset of the keys).

    Raises:
        BatchError: Unknown key or a value that is not a positive integer.
    """
    fields = {
        "items": "n_items",
        "users": "n_users",
        "dim": "dim",
        "history": "history",
        "seed": "seed",
        "clusters": "clusters",
    }
    kwargs: dict[str, Any] = {}
    for part in filter(None, spec.removeprefix(SYNTHETIC_PREFIX).split(",")):
        key, _, value = (x.strip() for x in part.partition("="))
        if key == "index" and value in ("flat", "auto", "hnsw", "ivf"):
            kwargs["index"] = value
            continue
        if key == "index_dir" and value:
            kwargs["index_dir"] = value
            continue
        if key not in fields or not value.isdigit():
            keys = ", ".join([*fields, "index (flat|auto|hnsw|ivf)", "index_dir"])
            raise BatchError(f"bad synthetic model spec {spec!r} at {part!r}; keys: {keys}")
        kwargs[fields[key]] = int(value)
    return SyntheticCatalogue(**kwargs)


def resolve_model(model: str | Path | None) -> ScorerFactory:
    """The factory for a ``--model`` value: a directory, ``synthetic:...``, or the demo model.

    Raises:
        BatchError: The directory does not exist (with what to run to make one).
    """
    if model is not None and str(model).startswith(SYNTHETIC_PREFIX):
        return parse_synthetic(str(model))
    path = Path(model) if model is not None else default_model_dir()
    if not path.is_dir():
        hint = (
            "run `aigc demo` for the demo model" if model is None else "train one with `aigc recommend train`"
        )
        raise BatchError(f"{path}: no model directory; {hint} or pass --model DIR")
    from apps.recommender.model import ModelLoader

    return ModelLoader(path)

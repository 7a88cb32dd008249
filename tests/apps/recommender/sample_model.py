"""A hybrid model fit on the shipped sample and saved once per session (for batch, UI and Ray tests)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

_CACHE: dict[str, Path] = {}


def saved_sample_model(root: Path, dataset, vectors: tuple) -> Path:
    """Fit :class:`HybridScorer` on the sample with MiniLM vectors, save it under ``root`` (once)."""
    if "model" in _CACHE:
        return _CACHE["model"]
    from apps.recommender.candidates import build_item_index
    from apps.recommender.hybrid import HybridScorer
    from apps.recommender.model import EncoderInfo, RecommenderModel

    item_vectors, model_id = vectors
    index = build_item_index(dataset, item_vectors, model_id)
    scorer = HybridScorer(item_vectors, index=index).fit(dataset)
    path = RecommenderModel(scorer, EncoderInfo(model_id=model_id), index).save(root / "model")
    _CACHE["model"] = path
    return path


def install_demo_state(data_dir: Path, model_dir: Path, report: dict | None = None) -> Path:
    """Copy the model (and an evaluation report) to where the pages look: ``data_dir/recommend``."""
    root = data_dir / "recommend"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_dir, root / "model")
    if report is not None:
        (root / "eval.json").write_text(json.dumps(report), encoding="utf-8")
    return root

"""Demo state of the recommender, built from the shipped sample catalogue (``aigc demo``).

:func:`prepare` writes, under ``data_dir/recommend/``:

* ``model/``: a hybrid model fit on the sample (frozen MiniLM item vectors, candidates and the
  logistic-regression ranker; no encoder fine-tuning, to stay fast), the default ``--model`` of
  ``aigc recommend score`` and of the UI;
* ``recommendations.parquet``: top-20 for every sample user, written by the batch job, which also
  writes them to the database (``AIGC_DB_URL`` or ``data_dir/aigc.db``), where the API serves them;
* ``eval.json``: the evaluation protocol on the sample (popularity, ItemKNN, text, hybrid, and the
  cold-start section), which the UI's evaluation page charts.

It is idempotent: ``demo.json`` records the sha256 of the sample files, and nothing is rebuilt
while the sample and all three outputs are unchanged.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from core.config import write_json_atomic
from core.io.artifacts import sha256_file

logger = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
SAMPLE_FILES = ("items.csv", "interactions.csv")
ENCODER = "minilm-l6"
DEMO_K = 20
STAMP = "demo.json"


def demo_dir(data_dir: Path) -> Path:
    """``data_dir/recommend``: where the demo model and its outputs live."""
    return Path(data_dir) / "recommend"


def _sample_hashes() -> dict[str, str]:
    return {name: sha256_file(SAMPLE_DIR / name) for name in SAMPLE_FILES}


def is_current(data_dir: Path) -> bool:
    """Whether the demo outputs exist and were built from the current sample files."""
    root = demo_dir(data_dir)
    needed = [root / "model" / "manifest.json", root / "recommendations.parquet", root / "eval.json"]
    try:
        stamp = json.loads((root / STAMP).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return all(p.is_file() for p in needed) and stamp.get("sample") == _sample_hashes()


def fit_sample_model(model_dir: Path) -> tuple[Any, Any]:
    """Fit the hybrid model on the sample with frozen MiniLM vectors and save it to ``model_dir``.

    Returns:
        The saved :class:`~apps.recommender.model.RecommenderModel` and the item vectors.
    """
    from apps.recommender.candidates import build_item_index
    from apps.recommender.hybrid import HybridScorer
    from apps.recommender.model import EncoderInfo, RecommenderModel
    from apps.recommender.public_datasets import load_folder
    from apps.recommender.text_vectors import embed_items
    from core.embeddings import Embedder

    dataset = load_folder(SAMPLE_DIR)
    embedder = Embedder(ENCODER)
    vectors = embed_items(dataset, embedder)
    index = build_item_index(dataset, vectors, embedder.model_id)
    scorer = HybridScorer(vectors, index=index).fit(dataset)
    model = RecommenderModel(scorer, EncoderInfo(base=ENCODER, model_id=embedder.model_id), index)
    model.save(model_dir)
    return model, vectors


def evaluate_sample(dataset: Any, vectors: Any) -> dict[str, Any]:
    """The evaluation protocol on the sample: popularity, ItemKNN, text (frozen) and hybrid."""
    from apps.recommender.baselines import ItemKNNScorer, PopularityScorer, TextScorer
    from apps.recommender.evaluation import evaluate
    from apps.recommender.hybrid import HybridScorer

    scorers = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
        "hybrid": lambda: HybridScorer(vectors),
    }
    return evaluate(dataset, scorers)


def prepare(data_dir: Path) -> None:
    """Build (or refresh) the demo model, its batch recommendations and the sample evaluation.

    Args:
        data_dir: The suite's data directory.
    """
    from apps.recommender.batch.job import run_batch
    from apps.recommender.config import BatchConfig
    from apps.recommender.model import ModelLoader
    from apps.recommender.storage import latest_run
    from core.schema import migrate
    from core.storage import DB_URL_ENV, create_engine

    root = demo_dir(data_dir)
    db = create_engine(os.environ.get(DB_URL_ENV) or f"sqlite:///{Path(data_dir) / 'aigc.db'}")
    try:
        migrate(db)
        if is_current(data_dir):
            if latest_run(db, ModelLoader(root / "model").fingerprint()) is None:  # e.g. a new database
                run_batch(ModelLoader(root / "model"), None, config=BatchConfig(k=DEMO_K, chunk_size=100),
                          db=db, restart=True, show_progress_bar=False)  # fmt: skip
            logger.info("Recommender demo is current", extra={"path": str(root)})
            return
        root.mkdir(parents=True, exist_ok=True)
        model, vectors = fit_sample_model(root / "model")
        result = run_batch(
            ModelLoader(root / "model"),
            root / "recommendations.parquet",
            config=BatchConfig(k=DEMO_K, chunk_size=100),
            db=db,
            restart=True,
            show_progress_bar=False,
        )
    finally:
        db.dispose()
    write_json_atomic(root / "eval.json", evaluate_sample(model.train, vectors))
    write_json_atomic(root / STAMP, {"sample": _sample_hashes(), "k": DEMO_K, "encoder": ENCODER})
    logger.info("Prepared recommender demo", extra={"path": str(root), "rows": result.n_rows})

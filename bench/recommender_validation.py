"""Benchmark: the choices behind the recommender's defaults, on validation splits only.

The validation split is carved from the training part of the evaluation protocol's split:
``leave_last_out(leave_last_out(data).train)`` (each user's last *training* interaction), so the
test items of ``bench.recommender_eval`` are never seen while choosing. Scored with the frozen
MiniLM vectors: popularity, ItemKNN, BPR, text, EASE over a grid of ``l2``, and the hybrid with and
without its EASE source, on ml-latest-small and the MIND sample.

Run (results: ``bench/results/recommender_validation.json``)::

    nice -n 5 .venv/bin/python -m bench.recommender_validation
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from apps.recommender.baselines import (
    BPRScorer,
    EASEScorer,
    ItemKNNScorer,
    PopularityScorer,
    TextScorer,
    bpr_available,
)
from apps.recommender.config import RankerConfig
from apps.recommender.encoder_training import load_embedder
from apps.recommender.evaluation import evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.public_datasets import load_mind, load_movielens
from apps.recommender.scorer import Scorer
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import embed_items
from core.config import write_json_atomic

logger = logging.getLogger("bench.recommender_validation")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "recsys"
RESULTS = ROOT / "bench" / "results"
LOADERS = {
    "ml-latest-small": lambda folder: load_movielens(folder, use_tags=False),
    "mind-small-subset": load_mind,
}
L2_GRID = (10.0, 50.0, 200.0, 500.0, 1000.0)


def _models(vectors: Any) -> dict[str, Callable[[], Scorer]]:
    models: dict[str, Callable[[], Scorer]] = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
        **{f"ease_l2={l2:g}": (lambda l2=l2: EASEScorer(l2=l2)) for l2 in L2_GRID},
        "hybrid_no_ease": lambda: HybridScorer(vectors, replace(RankerConfig(), ease=False)),
        "hybrid": lambda: HybridScorer(vectors, RankerConfig()),
    }
    if bpr_available():
        models["bpr"] = BPRScorer
    return models


def main() -> None:
    """Score every model on each data set's validation split and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(LOADERS))
    parser.add_argument("--out", type=Path, default=RESULTS / "recommender_validation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    report: dict[str, Any] = {"split": "leave_last_out(leave_last_out(data).train)", "datasets": {}}
    for name in args.datasets.split(","):
        dataset = LOADERS[name](DATA / name)
        vectors = embed_items(dataset, load_embedder("minilm-l6", None, 64), 64)
        split = leave_last_out(leave_last_out(dataset).train)
        rows = {}
        for model, factory in _models(vectors).items():
            started = time.perf_counter()
            result = evaluate_next_item(factory().fit(split.train), split)
            rows[model] = {k: result[k] for k in ("ndcg@10", "hr@10", "recall@50", "n_users")}
            rows[model]["seconds"] = round(time.perf_counter() - started, 1)
            logger.info("%s %s %s", name, model, rows[model])
        best = max((m for m in rows if not m.startswith("hybrid")), key=lambda m: rows[m]["ndcg@10"])
        report["datasets"][name] = {
            "models": rows,
            "best_baseline": best,
            "hybrid_over_best_baseline": rows["hybrid"]["ndcg@10"] / rows[best]["ndcg@10"],
        }
    write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()

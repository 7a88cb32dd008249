"""Benchmark: EASE fit cost (LU inverse vs Cholesky) and what pruning does to quality, on validation.

On ml-latest-small (``leave_last_out`` of the evaluation protocol's training part: the test items
are never seen), single-threaded, CPU seconds (``time.process_time``; the machine is shared, wall
time is noise):

* the inverse behind the EASE weights at 6,000 items (the hybrid's source) and at every item (the
  baseline): ``numpy.linalg.inv`` (what the code did before: LU in float64) against the float32
  Cholesky inverse now used (:func:`apps.recommender.baselines.ease_weights`), back to back in one
  process, and the largest weight difference;
* validation NDCG@10 of EASE with items pruned by minimum support (``min_support``) and with the
  weights sparsified to the largest ``keep`` per item, and of the hybrid with a sparsified EASE
  source (frozen MiniLM vectors, read from the model cache when there).

Run (results: ``bench/results/recommender_ease.json``)::

    nice -n 5 .venv/bin/python -m bench.recommender_ease
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from apps.recommender.baselines import EASEScorer, ease_weights
from apps.recommender.config import RankerConfig
from apps.recommender.encoder_training import load_embedder
from apps.recommender.evaluation import evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.public_datasets import load_movielens
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import cached_item_vectors
from core.config import write_json_atomic

logger = logging.getLogger("bench.recommender_ease")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "recsys" / "ml-latest-small"
RESULTS = ROOT / "bench" / "results"
KEYS = ("hr@10", "ndcg@10", "recall@50", "mrr")


def _inverse_costs(train: Any) -> list[dict[str, Any]]:
    seen = train.user_item_matrix()
    counts = np.asarray(seen.sum(axis=0)).ravel()
    out = []
    for max_items in (6000, 20000):
        order = np.argsort(-counts, kind="stable")[:max_items]
        items = np.sort(order[counts[order] > 0])
        x = seen[:, items].astype(np.float32)
        gram = np.asarray((x.T @ x).todense(), dtype=np.float32)
        gram[np.diag_indices_from(gram)] += 200.0
        cpu = time.process_time()
        inverse = np.linalg.inv(gram)
        before = inverse / -np.diag(inverse)
        np.fill_diagonal(before, 0.0)
        lu = time.process_time() - cpu
        cpu = time.process_time()
        after = ease_weights(gram.copy())
        cholesky = time.process_time() - cpu
        row = {
            "items": len(items),
            "lu_inverse_cpu_s": round(lu, 2),
            "cholesky_cpu_s": round(cholesky, 2),
            "speed_up": round(lu / cholesky, 2),
            "max_abs_weight_difference": float(np.abs(after - before.astype(np.float32)).max()),
            "max_abs_weight": float(np.abs(before).max()),
        }
        logger.info("inverse %s", row)
        out.append(row)
    return out


def _quality(name: str, make: Any, split: Any) -> dict[str, Any]:
    cpu = time.process_time()
    scorer = make().fit(split.train)
    fit = time.process_time() - cpu
    result = evaluate_next_item(scorer, split)
    row = {"model": name, **{k: round(result[k], 4) for k in KEYS}, "fit_cpu_s": round(fit, 1)}
    logger.info("quality %s", row)
    return row


def main() -> None:
    """Measure and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "recommender_ease.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    threadpool_limits(limits=1)
    load_start = round(os.getloadavg()[0], 1)
    dataset = load_movielens(DATA, use_tags=False)
    validation = leave_last_out(leave_last_out(dataset).train)
    costs = _inverse_costs(validation.train)
    vectors = cached_item_vectors(dataset, load_embedder("minilm-l6", None, 64), 64)
    models = {
        **{
            f"ease min_support={m}": (lambda m=m: EASEScorer(l2=200.0, max_items=20_000, min_support=m))
            for m in (1, 2, 3, 5)
        },
        **{
            f"ease 6,000 items keep={k}": (lambda k=k: EASEScorer(l2=200.0, max_items=6000, keep=k))
            for k in (None, 500, 200, 100)
        },
        **{
            f"hybrid ease keep={k}": (lambda k=k: HybridScorer(vectors, replace(RankerConfig(), ease_keep=k)))
            for k in (None, 500, 200)
        },
    }
    quality = [_quality(name, make, validation) for name, make in models.items()]
    report = {
        "benchmark": "recommender_ease",
        "what": "EASE inverse CPU time (LU vs Cholesky) and validation NDCG@10 with pruning, ml-latest-small",
        "split": "validation: leave_last_out(leave_last_out(data).train)",
        "threads": 1,
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 1)},
        "inverse": costs,
        "quality": quality,
    }
    write_json_atomic(args.out, report)
    logger.info("report %s", report)


if __name__ == "__main__":
    main()

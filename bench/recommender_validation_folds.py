"""Benchmark: hybrid variants on several validation folds per data set (less noisy choices).

One validation split (``bench.recommender_validation``) gives each user one target: on the MIND
sample one user moving into the top 10 changes NDCG@10 by 1.5 %, on ml-latest-small by 3.4 %, so
settings that differ by a user or two cannot be told apart. Here every data set gets ``--folds``
validation splits, all carved from the evaluation protocol's training part (the test items are
never seen)::

    T_1 = leave_last_out(data).train          # what the test split trains on
    fold k: leave_last_out(T_k)               # target: each user's k-th last training item
    T_{k+1} = leave_last_out(T_k).train

Fold 1 is ``bench.recommender_validation``'s split. Each fold is scored the way
``aigc recommend eval`` scores the test split: the hybrid serves vectors of the encoder head tuned
on the fold's training part and its ranker learns from vectors of a head tuned without the
ranker's own targets (``ftmix``); baselines popularity, ItemKNN and EASE (l2 200: the best
baselines of every split so far; BPR and text, never the best, are left out to save CPU).

Per data set and variant: NDCG@10 of every fold, its ratio to that fold's best baseline, and the
mean ratio over the folds; ``choice`` ranks the variants by the smaller of the two data sets' mean
ratios (the one set of defaults has to hold on both). Tuned vectors are cached under ``--cache``
(one ``.npy`` per data set, fold and split), so later runs with other variants reuse them.

Run (results: ``--out``, default ``bench/results/recommender_validation_folds.json``; the runs of
docs/benchmarks/recommender_round2.md section 8 are ``recommender_validation_folds_*.json``)::

    nice -n 10 .venv/bin/python -m bench.recommender_validation_folds --folds 3 \\
        --variant "listwise:model=listwise" \\
        --variant "listwise_act:model=listwise;activity_interactions=true" \\
        --variant "ease300_cf50:candidates.n_ease=300;candidates.n_cf=50"

    # round 6 (section 10, run on the round-5 defaults, EASE source l2 200): the EASE source's penalty,
    # with EASE baselines at other penalties too
    nice -n 10 .venv/bin/python -m bench.recommender_validation_folds --folds 3 --ease-l2 50,100 \\
        --variant "ease_l2_50:ease_l2=50" --variant "blend25:model=blend;listwise_weight=0.25"
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from apps.recommender.baselines import EASEScorer, ItemKNNScorer, PopularityScorer
from apps.recommender.config import RankerConfig, load_settings
from apps.recommender.encoder_training import load_embedder, train_encoder
from apps.recommender.evaluation import evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.interactions import Dataset
from apps.recommender.ranker import fit_ranker, training_rows
from apps.recommender.splits import Split, leave_last_out
from apps.recommender.text_vectors import cached_item_vectors, embed_items
from bench.recommender_validation import DATA, LOADERS, RESULTS
from core.config import write_json_atomic

logger = logging.getLogger("bench.recommender_validation_folds")

BASELINES = {
    "popularity": PopularityScorer,
    "itemknn": ItemKNNScorer,
    "ease": lambda: EASEScorer(l2=200.0),
}


def folds(dataset: Dataset, n: int) -> list[Split]:
    """The ``n`` validation splits of the module docstring (fewer when users run out)."""
    out: list[Split] = []
    current = leave_last_out(dataset).train
    for _ in range(n):
        split = leave_last_out(current)
        if not len(split):
            break
        out.append(split)
        current = split.train
    return out


def _tuned(train: Dataset, dataset: Dataset, settings: Any, frozen: np.ndarray, path: Path) -> np.ndarray:
    """Vectors of the head tuned on ``train`` (``finetune`` section), cached at ``path``."""
    if path.is_file():
        return np.load(path)
    with tempfile.TemporaryDirectory(prefix="aigc-val-folds-") as work:
        run = train_encoder(
            train, Path(work) / "encoder", "minilm-l6", settings.finetune, item_vectors=frozen
        )
    vectors = run.item_vectors if run.item_vectors is not None else embed_items(dataset, run.embedder, 64)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(vectors, dtype=np.float32))
    return vectors


def _variants(base: RankerConfig, specs: list[str]) -> dict[str, RankerConfig]:
    """``hybrid`` (the configured defaults) and ``NAME:key=value;...`` variants of the ranker section."""
    configs = {"hybrid": base}
    for spec in specs:
        name, _, sets = spec.partition(":")
        overrides = [f"ranker.{kv}" for kv in sets.split(";") if kv]
        configs[f"hybrid_{name}"] = load_settings(None, overrides).ranker
    return configs


def _row(result: dict[str, Any], started: float) -> dict[str, Any]:
    row = {k: result[k] for k in ("ndcg@10", "hr@10", "recall@50", "mrr", "n_users")}
    row["seconds"] = round(time.perf_counter() - started, 1)
    return row


def run_fold(
    name: str,
    k: int,
    split: Split,
    dataset: Dataset,
    settings: Any,
    frozen: np.ndarray,
    configs: dict,
    cache: Path,
    ease_l2: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Baselines and every hybrid variant on one validation fold.

    ``ease_l2``: more EASE baselines (``ease_l2_<value>``), reported with the ratio of every variant
    to the best baseline *including* them (``over_best_tuned_baseline``: EASE with its own best
    penalty on this fold, the strictest comparison); ``over_best_baseline`` stays the criterion.
    """
    rows: dict[str, Any] = {}
    extra = {f"ease_l2_{value:g}": lambda value=value: EASEScorer(l2=value) for value in ease_l2}
    for model, factory in {**BASELINES, **extra}.items():
        started = time.perf_counter()
        rows[model] = _row(evaluate_next_item(factory().fit(split.train), split), started)
        logger.info("%s fold %d %s %s", name, k, model, rows[model])
    outer = _tuned(split.train, dataset, settings, frozen, cache / f"{name}-fold{k}-outer.npy")
    inner = _tuned(
        leave_last_out(split.train).train, dataset, settings, frozen, cache / f"{name}-fold{k}-inner.npy"
    )
    shared: dict[str, Any] = {}
    base = settings.ranker
    for model, config in configs.items():
        started = time.perf_counter()
        # Variants differing only in the ranking model share their training rows.
        key = repr(
            replace(config, model="logistic", gbdt=base.gbdt, c=base.c, listwise_weight=base.listwise_weight)
        )
        if key not in shared:
            shared[key] = training_rows(split.train, inner, config)
        ranker = fit_ranker(*shared[key], config)
        scorer = HybridScorer(outer, config, ranker=ranker).fit(split.train)
        rows[model] = _row(evaluate_next_item(scorer, split), started)
        logger.info("%s fold %d %s %s", name, k, model, rows[model])
    best = max(BASELINES, key=lambda m: rows[m]["ndcg@10"])
    top = rows[best]["ndcg@10"]
    out = {
        "models": rows,
        "best_baseline": best,
        "over_best_baseline": {m: round(rows[m]["ndcg@10"] / top, 4) for m in configs},
    }
    if extra:
        tuned = max([*BASELINES, *extra], key=lambda m: rows[m]["ndcg@10"])
        out["best_tuned_baseline"] = tuned
        out["over_best_tuned_baseline"] = {
            m: round(rows[m]["ndcg@10"] / rows[tuned]["ndcg@10"], 4) for m in configs
        }
    return out


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """Per variant: mean ratio over folds per data set, and the smaller of the data sets' means."""
    table: dict[str, Any] = {}
    for name, entry in report["datasets"].items():
        for k, fold in entry["folds"].items():
            for model, ratio in fold["over_best_baseline"].items():
                table.setdefault(model, {}).setdefault(name, {})[k] = ratio
    n = len(report["datasets"])
    for ratios in table.values():
        means = {d: round(float(np.mean(list(r.values()))), 4) for d, r in ratios.items()}
        # Weighted by the fold's users (deeper folds have fewer users with that many interactions).
        for d, r in ratios.items():
            folds_ = report["datasets"][d]["folds"]
            users = np.array([folds_[k]["models"]["popularity"]["n_users"] for k in r], dtype=float)
            ratios[d]["users_weighted"] = round(float(np.average(list(r.values()), weights=users)), 4)
        for d, m in means.items():
            ratios[d]["mean"] = m
        ratios["min_of_means"] = min(means.values()) if len(means) == n else None
    return dict(sorted(table.items(), key=lambda kv: -(kv[1]["min_of_means"] or 0)))


def main() -> None:
    """Score every variant on each data set's folds and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(LOADERS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument(
        "--variant", action="append", default=[], help="NAME:key=value;key=value (ranker keys)"
    )
    parser.add_argument(
        "--ease-l2",
        default="",
        help="comma-separated extra EASE baseline penalties (reported, and a stricter ratio)",
    )
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "aigc-val-folds")
    parser.add_argument("--out", type=Path, default=RESULTS / "recommender_validation_folds.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(None, [])  # configs/recommender.yaml
    configs = _variants(settings.ranker, args.variant)
    extra_l2 = tuple(float(v) for v in args.ease_l2.split(",") if v)
    report: dict[str, Any] = {
        "splits": "fold k: leave_last_out applied k+1 times (fold 1 = recommender_validation's split)",
        "vectors": "ftmix (rows: head tuned without the ranker's targets; serving: head tuned on the "
        "fold's training part)",
        "variants": args.variant,
        "extra_ease_l2": list(extra_l2),
        "load_average_start": list(os.getloadavg()),
        "datasets": {},
    }
    started = time.process_time()
    for name in args.datasets.split(","):
        dataset = LOADERS[name](DATA / name)
        frozen = cached_item_vectors(dataset, load_embedder("minilm-l6", None, 64), 64)
        entry: dict[str, Any] = {"folds": {}}
        report["datasets"][name] = entry
        for k, split in enumerate(folds(dataset, args.folds), start=1):
            try:
                entry["folds"][str(k)] = run_fold(
                    name, k, split, dataset, settings, frozen, configs, args.cache, extra_l2
                )
            except ValueError as err:  # too few (history, next item) pairs left to tune the head
                logger.warning("%s fold %d skipped: %s", name, k, err)
                entry.setdefault("skipped", {})[str(k)] = str(err)
                break
            report["cpu_seconds"] = round(time.process_time() - started, 1)
            write_json_atomic(args.out, report)  # partial results survive a stopped run
    report["choice"] = summarise(report)
    report["load_average_end"] = list(os.getloadavg())
    report["cpu_seconds"] = round(time.process_time() - started, 1)
    write_json_atomic(args.out, report)
    for model, ratios in report["choice"].items():
        logger.info("%s %s", model, ratios)


if __name__ == "__main__":
    main()

"""Benchmark: the choices behind the recommender's defaults, on validation splits only.

The validation split is carved from the training part of the evaluation protocol's split:
``leave_last_out(leave_last_out(data).train)`` (each user's last *training* interaction), so the
test items of ``bench.recommender_eval`` are never seen while choosing. Scored with the frozen
MiniLM vectors: popularity, ItemKNN, BPR, text, EASE (l2 200; ``--ease-grid``: over a grid of
``l2``), and the hybrid with the logistic-regression ranker (``hybrid``) and with LambdaRank trees
(``hybrid_lambdarank``), both ranking models fit on one set of training rows, on ml-latest-small
and the MIND sample. ``--tuned`` adds ``text_ft`` and the hybrids over the vectors of the encoder
fine-tuned (``finetune`` section of ``configs/recommender.yaml``) on the validation split's training
part; ``--variant NAME:key=value;...`` adds hybrids with other ranker settings.

Which vectors the ranker is trained on (``--tuned``): the hybrid fits its ranker on a leave-last-out
split of the training part it is given, so vectors tuned on that whole training part have seen the
ranker's target items. ``_ft`` hybrids use them anyway (what ``aigc recommend eval`` did); ``_ftin``
hybrids use vectors tuned on the ranker's inner training part, for the rows and for serving (what
``aigc recommend train`` does: its encoder is tuned on the leave-last-out training part, its
ranker's targets are the held-out items); ``_ftmix`` trains the ranker on the inner vectors and
serves the vectors tuned on the whole training part. ``--vectors`` picks which of
``frozen,ft,ftin,ftmix`` the hybrids run on; the last table of the JSON, ``choice``, is each hybrid's
ratio to the best baseline on every data set and the smallest of them (the one set of defaults has
to hold on both).

Run (results: ``bench/results/recommender_validation.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.recommender_validation
    nice -n 5 .venv/bin/python -m bench.recommender_validation --no-baselines --tuned \\
        --variant "hybrid_lr_small:model=lambdarank;gbdt.num_leaves=7;gbdt.min_child_samples=100"
    nice -n 10 .venv/bin/python -m bench.recommender_validation --tuned --vectors ft,ftin,ftmix \\
        --out bench/results/recommender_validation_tuned.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from apps.recommender.baselines import (
    BPRScorer,
    EASEScorer,
    ItemKNNScorer,
    PopularityScorer,
    TextScorer,
    bpr_available,
)
from apps.recommender.config import RankerConfig, load_settings
from apps.recommender.encoder_training import load_embedder, train_encoder
from apps.recommender.evaluation import evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.public_datasets import load_mind, load_movielens
from apps.recommender.ranker import GBDTRanker, fit_ranker, training_rows
from apps.recommender.scorer import Scorer
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import cached_item_vectors, embed_items
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


def _baselines(vectors: Any, grid: bool) -> dict[str, Callable[[], Scorer]]:
    models: dict[str, Callable[[], Scorer]] = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "text": lambda: TextScorer(item_vectors=vectors),
        "ease_l2=200": lambda: EASEScorer(l2=200.0),
    }
    if grid:
        models.update({f"ease_l2={l2:g}": (lambda l2=l2: EASEScorer(l2=l2)) for l2 in L2_GRID})
    if bpr_available():
        models["bpr"] = BPRScorer
    return models


def _hybrids(base: RankerConfig, variants: list[str]) -> dict[str, RankerConfig]:
    """Hybrid variants: ``hybrid`` (logistic regression), ``hybrid_lambdarank`` and ``--set``-style
    variants ``NAME:key=value;key=value`` of the ranker section."""
    configs = {
        "hybrid": replace(base, model="logistic"),
        "hybrid_lambdarank": replace(base, model="lambdarank"),
    }
    for variant in variants:
        name, _, sets = variant.partition(":")
        name = name if name.startswith("hybrid") else f"hybrid_{name}"  # told apart from baselines
        overrides = [f"ranker.{kv}" for kv in sets.split(";") if kv]
        configs[name] = load_settings(None, overrides).ranker
    return configs


def _score(name: str, scorer: Scorer, split: Any, started: float) -> dict[str, Any]:
    result = evaluate_next_item(scorer, split)
    row = {k: result[k] for k in ("ndcg@10", "hr@10", "recall@50", "mrr", "n_users")}
    row["seconds"] = round(time.perf_counter() - started, 1)
    row["cpu_seconds"] = round(time.process_time(), 1)
    logger.info("%s %s", name, row)
    return row


def plot(report: dict[str, Any], path: Path) -> None:
    """Bars of validation NDCG@10 per model, one panel per data set (hybrids in orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    names = list(report["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(7 * len(names), 4.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        models = report["datasets"][name]["models"]
        labels = list(models)
        values = [models[m]["ndcg@10"] for m in labels]
        colors = ["tab:orange" if m.startswith("hybrid") else "tab:blue" for m in labels]
        ax.bar(labels, values, color=colors)
        ax.set_title(f"{name}: NDCG@10 on the validation split")
        ax.tick_params(axis="x", rotation=45)
        for i, v in enumerate(values):
            ax.text(i, v, f"{v:.4f}", ha="center", va="bottom", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _tune(train: Any, dataset: Any, settings: Any, frozen: np.ndarray) -> tuple[np.ndarray, Any]:
    """Vectors of the encoder fine-tuned on ``train`` (``finetune`` section), and its run."""
    with tempfile.TemporaryDirectory(prefix="aigc-val-encoder-") as work:
        tuned = train_encoder(
            train, Path(work) / "encoder", "minilm-l6", settings.finetune, item_vectors=frozen
        )
    vectors = tuned.item_vectors
    if vectors is None:
        vectors = embed_items(dataset, tuned.embedder, 64)
    return vectors, tuned


def _vector_sets(
    name: str, dataset: Any, split: Any, settings: Any, frozen: np.ndarray, wanted: list[str], rows: dict
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Suffix -> (vectors the ranker's rows are built from, vectors served) for ``--vectors``."""
    sets: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if "frozen" in wanted:
        sets[""] = (frozen, frozen)
    if not {"ft", "ftin", "ftmix"} & set(wanted):
        return sets
    started = time.perf_counter()
    outer, run = _tune(split.train, dataset, settings, frozen)
    text_ft = TextScorer(item_vectors=outer).fit(split.train)
    rows["text_ft"] = _score(f"{name} text_ft", text_ft, split, started)
    rows["text_ft"]["encoder"] = {k: v for k, v in run.summary().items() if k != "adapter_dir"}
    if "ft" in wanted:
        sets["_ft"] = (outer, outer)
    if {"ftin", "ftmix"} & set(wanted):
        # The ranker's own split: its targets are each user's last item of split.train.
        inner, _ = _tune(leave_last_out(split.train).train, dataset, settings, frozen)
        if "ftin" in wanted:
            sets["_ftin"] = (inner, inner)
        if "ftmix" in wanted:
            sets["_ftmix"] = (inner, outer)
    return sets


def _choice(report: dict[str, Any]) -> dict[str, Any]:
    """Per hybrid: its ratio to the best baseline on each data set and the smallest of them."""
    table: dict[str, Any] = {}
    for name, entry in report["datasets"].items():
        for model, ratio in entry.get("over_best_baseline", {}).items():
            table.setdefault(model, {})[name] = ratio
    n = len(report["datasets"])
    for ratios in table.values():
        ratios["min"] = min(ratios.values()) if len(ratios) == n else None
    return dict(sorted(table.items(), key=lambda kv: -(kv[1]["min"] or 0)))


def _run_hybrids(
    name: str,
    split: Any,
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    base: RankerConfig,
    variants: list[str],
) -> dict[str, Any]:
    """Each hybrid of :func:`_hybrids` on each vector set, scored on the validation split."""
    rows: dict[str, Any] = {}
    for suffix, (row_vectors, item_vectors) in sets.items():
        # Variants that differ only in the ranking model share one set of training rows.
        shared: dict[str, Any] = {}
        for model, config in _hybrids(base, variants).items():
            started = time.perf_counter()
            key = repr(replace(config, model="logistic", gbdt=base.gbdt, c=base.c))
            if key not in shared:
                shared[key] = training_rows(split.train, row_vectors, config)
            ranker = fit_ranker(*shared[key], config)
            scorer = HybridScorer(item_vectors, config, ranker=ranker).fit(split.train)
            rows[model + suffix] = _score(f"{name} {model}{suffix}", scorer, split, started)
            if isinstance(ranker, GBDTRanker):
                rows[model + suffix]["ranker"] = ranker.report
    return rows


def main() -> None:
    """Score every model on each data set's validation split and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(LOADERS))
    parser.add_argument("--ease-grid", action="store_true", help="also EASE over the l2 grid")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="extra hybrid, NAME:key=value;key=value (keys of the ranker section)",
    )
    parser.add_argument("--no-baselines", action="store_true", help="hybrids only")
    parser.add_argument(
        "--baselines-from",
        type=Path,
        default=None,
        help="with --no-baselines: copy the baseline rows (same splits) from this earlier report, "
        "so the ratios and the choice table are computed",
    )
    parser.add_argument(
        "--tuned",
        action="store_true",
        help="also text_ft and the hybrids on vectors of the encoder fine-tuned on the validation "
        "split's training part (finetune section of configs/recommender.yaml); same as --vectors frozen,ft",
    )
    parser.add_argument(
        "--vectors",
        default=None,
        help="comma list of frozen, ft, ftin, ftmix: the vectors the hybrids run on (module docstring)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "recommender_validation.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    wanted = (args.vectors or ("frozen,ft" if args.tuned else "frozen")).split(",")
    report: dict[str, Any] = {
        "split": "leave_last_out(leave_last_out(data).train)",
        "load_average_start": list(os.getloadavg()),
        "vectors": wanted,
        "variants": args.variant,
        "datasets": {},
    }
    settings = load_settings(None, [])  # configs/recommender.yaml
    for name in args.datasets.split(","):
        dataset = LOADERS[name](DATA / name)
        frozen = cached_item_vectors(dataset, load_embedder("minilm-l6", None, 64), 64)
        split = leave_last_out(leave_last_out(dataset).train)
        rows: dict[str, Any] = {}
        if not args.no_baselines:
            for model, factory in _baselines(frozen, args.ease_grid).items():
                started = time.perf_counter()
                rows[model] = _score(f"{name} {model}", factory().fit(split.train), split, started)
        elif args.baselines_from is not None:
            earlier = json.loads(args.baselines_from.read_text())["datasets"][name]["models"]
            rows.update(
                {
                    m: {**r, "from": str(args.baselines_from.name)}
                    for m, r in earlier.items()
                    if not m.startswith(("hybrid", "text_ft"))
                }
            )
        sets = _vector_sets(name, dataset, split, settings, frozen, wanted, rows)
        rows.update(_run_hybrids(name, split, sets, settings.ranker, args.variant))
        baselines = [m for m in rows if not m.startswith(("hybrid", "text_ft"))]
        entry: dict[str, Any] = {"models": rows}
        if baselines:
            best = max(baselines, key=lambda m: rows[m]["ndcg@10"])
            entry["best_baseline"] = best
            top = rows[best]["ndcg@10"]
            entry["over_best_baseline"] = {
                m: round(rows[m]["ndcg@10"] / top, 3) for m in rows if m.startswith("hybrid")
            }
        report["datasets"][name] = entry
        write_json_atomic(args.out, report)  # partial results survive a stopped run
    report["choice"] = _choice(report)
    report["load_average_end"] = list(os.getloadavg())
    write_json_atomic(args.out, report)
    plot(report, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()

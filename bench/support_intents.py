"""Benchmark: intent accuracy on BANKING77 (train 10,003 -> test 3,080), 2 CPU threads.

Peers, measured in one run on the same split (validation carved from train only, stratified, 10%):

* ``frozen_lr`` — frozen MiniLM sentence embeddings + logistic regression (C picked on validation);
  the published reference for this kind of baseline is 0.80 accuracy;
* ``lora`` — the app's path: :func:`apps.customer_service.intents.train_intents` (MiniLM + LoRA +
  linear head, best epoch by validation macro-F1, temperature calibrated) then
  :func:`~apps.customer_service.intents.evaluate_intents` on the test set;
* ``full`` (``--methods full``) — the same classifier with every encoder weight trained.

Target: accuracy >= 0.93 (published fine-tuned BERT-base: 0.937).

Run (results: ``bench/results/support_intents.json`` and ``.png``)::

    nice -n 5 .venv/bin/python -m bench.support_intents
    nice -n 5 .venv/bin/python -m bench.support_intents --methods frozen_lr,full --epochs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.customer_service.intents import HEAD, evaluate_intents, load_banking77, train_intents
from core.classification import TextClassifier
from core.config import write_json_atomic
from core.finetune import ClassifierTrainConfig, LabelledTexts, fit_classifier, split_indices
from core.lora import LoraSettings
from core.metrics import accuracy, f1

logger = logging.getLogger("bench.support_intents")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "support" / "banking77"
RESULTS = ROOT / "bench" / "results"
NAME = "support_intents"
TARGET_ACCURACY = 0.93
PUBLISHED = {"bert_base_finetuned": 0.937, "frozen_minilm_lr": 0.80}
SEED = 42
VAL_FRACTION = 0.1


def _subset(data: LabelledTexts, rows: list[int]) -> LabelledTexts:
    return LabelledTexts(
        [data.texts[i] for i in rows], {HEAD: [data.labels[HEAD][i] for i in rows]}, data.source
    )


def _targets(modules: str, layers: str) -> tuple[str, ...]:
    """Module-name suffixes ``layer.{i}.{module}`` (peft matches a target by name suffix)."""
    names = [m for m in modules.split(",") if m]
    if not layers:
        return tuple(names)
    return tuple(f"layer.{i}.{m}" for i in layers.split(",") for m in names)


def per_intent_rows(data: LabelledTexts, n: int, seed: int = SEED) -> list[int]:
    """Rows of a stratified sample of ``n`` utterances per intent (the paper's few-shot setting)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(data.labels[HEAD]):
        by_label.setdefault(str(label), []).append(i)
    return sorted(i for rows in by_label.values() for i in rng.permutation(rows)[:n].tolist())


def _fit_lr(x: np.ndarray, y: np.ndarray) -> tuple[Any, dict[float, float]]:
    """Logistic regression with C picked on a stratified validation split, refit on all of ``x``."""
    from sklearn.linear_model import LogisticRegression

    fit_idx, val_idx = split_indices(len(y), VAL_FRACTION, SEED, strata=list(y))
    if not val_idx:  # too few rows per intent to hold any out
        return LogisticRegression(C=10.0, max_iter=2000).fit(x, y), {}
    scores = {}
    for c in (1.0, 10.0, 100.0):
        clf = LogisticRegression(C=c, max_iter=2000).fit(x[fit_idx], y[fit_idx])
        scores[c] = float(accuracy(y[val_idx], clf.predict(x[val_idx])))
    best_c = max(scores, key=scores.get)
    return LogisticRegression(C=best_c, max_iter=2000).fit(x, y), scores


def frozen_lr(
    train: LabelledTexts, test: LabelledTexts, model: str, per_intent: int = 0, shots_only: bool = False
) -> dict[str, dict[str, Any]]:
    """Frozen sentence embeddings + multinomial logistic regression (C chosen on validation).

    Returns ``{"frozen_lr": ...}`` trained on all of ``train``, plus ``"frozen_lr_{n}shot"`` trained
    on the ``per_intent`` sample (same embeddings) when ``per_intent`` is set; ``shots_only`` embeds
    and reports only that sample.
    """
    if per_intent and shots_only:
        train = _subset(train, per_intent_rows(train, per_intent))
    from core.embeddings import Embedder

    start = time.perf_counter()
    embedder = Embedder(model)
    x_train = embedder.encode(train.texts, show_progress_bar=True)
    embed_s = time.perf_counter() - start
    y_train = np.array(train.labels[HEAD])
    tick = time.perf_counter()
    x_test = embedder.encode(test.texts, show_progress_bar=True)
    test_embed_s = time.perf_counter() - tick
    gold = test.labels[HEAD]
    variants = {} if shots_only else {"frozen_lr": list(range(len(y_train)))}
    if per_intent and shots_only:
        variants[f"frozen_lr_{per_intent}shot"] = list(range(len(y_train)))
    elif per_intent:
        variants[f"frozen_lr_{per_intent}shot"] = per_intent_rows(train, per_intent)
    out = {}
    for name, rows in variants.items():
        tick = time.perf_counter()
        clf, scores = _fit_lr(x_train[rows], y_train[rows])
        predicted = list(clf.predict(x_test))
        out[name] = {
            "accuracy": round(accuracy(gold, predicted), 4),
            "macro_f1": round(f1(gold, predicted, average="macro"), 4),
            # embedding the training texts (time scaled to the rows used) plus fitting the regression
            "train_wall_s": round(embed_s * len(rows) / len(y_train) + time.perf_counter() - tick, 1),
            "test_wall_s": round(test_embed_s, 1),
            "train_examples": len(rows),
            "val_accuracy_by_C": scores,
        }
    return out


def lora(
    train: LabelledTexts, test: LabelledTexts, model: str, config: ClassifierTrainConfig
) -> dict[str, Any]:
    """The app's training path (train_intents) and its evaluation (evaluate_intents)."""
    with tempfile.TemporaryDirectory(prefix="bench-intents-") as tmp:
        start = time.perf_counter()
        report = train_intents(train, Path(tmp) / "model", model, config)
        train_s = time.perf_counter() - start
        tick = time.perf_counter()
        result = evaluate_intents(Path(tmp) / "model", test)
        test_s = time.perf_counter() - tick
    return {
        "accuracy": result["accuracy"],
        "macro_f1": result["macro_f1"],
        "train_wall_s": round(train_s, 1),
        "loop_wall_s": report["wall_time_s"],
        "samples_per_s": report["samples_per_s"],
        "test_wall_s": round(test_s, 1),
        "best_epoch": report["best_epoch"],
        "epochs_run": report["epochs_run"],
        "temperature": report.get("temperature"),
        "history": report["history"],
        "config": report["config"],
    }


def full(
    train: LabelledTexts, test: LabelledTexts, model: str, config: ClassifierTrainConfig
) -> dict[str, Any]:
    """Every encoder weight trained (no LoRA), same loop, split and head."""
    with tempfile.TemporaryDirectory(prefix="bench-intents-full-") as tmp:
        start = time.perf_counter()
        torch.manual_seed(config.seed)
        classifier = TextClassifier(
            model, {HEAD: sorted(set(train.labels[HEAD]))}, pooling=config.pooling,
            max_length=config.max_length, dropout=config.dropout, full_finetune=True,
        )  # fmt: skip
        report = fit_classifier(classifier, train, tmp, config)
        train_s = time.perf_counter() - start
    tick = time.perf_counter()
    predicted = classifier.predict(test.texts)
    gold = test.labels[HEAD]
    return {
        "accuracy": round(accuracy(gold, predicted), 4),
        "macro_f1": round(f1(gold, predicted, average="macro"), 4),
        "train_wall_s": round(train_s, 1),
        "loop_wall_s": report["wall_time_s"],
        "samples_per_s": report["samples_per_s"],
        "test_wall_s": round(time.perf_counter() - tick, 1),
        "best_epoch": report["best_epoch"],
        "epochs_run": report["epochs_run"],
        "history": report["history"],
        "config": report["config"],
    }


def _run_method(method: str, args: argparse.Namespace, base: ClassifierTrainConfig) -> dict[str, Any]:
    """Run one method; write its results to ``<out>.<method>.json`` as soon as they exist."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    train, test = load_banking77(args.data, "train"), load_banking77(args.data, "test")
    if args.limit:
        train, test = (
            _subset(train, list(range(0, 10003, 10003 // args.limit))),
            _subset(test, list(range(0, 3080, 60))),
        )
    shots = f"_{args.per_intent}shot" if args.per_intent else ""
    few = _subset(train, per_intent_rows(train, args.per_intent)) if args.per_intent else train
    logger.info("running %s", method)
    if method == "frozen_lr":
        results = frozen_lr(train, test, args.model, args.per_intent, args.frozen_shots_only)
    elif method == "lora":
        results = {f"lora{shots}": lora(few, test, args.model, base)}
    elif method == "full":
        results = {f"full{shots}": full(few, test, args.model, replace(base, lr=args.full_lr))}
    else:
        raise SystemExit(f"unknown method {method!r}; use frozen_lr, lora or full")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name, result in results.items():
        result["measured_at"] = stamp
        logger.info("%s: accuracy %.4f macro-F1 %.4f", name, result["accuracy"], result["macro_f1"])
    write_json_atomic(_partial(args.out, method), results)
    return results


def _partial(out: Path, method: str) -> Path:
    return out.with_name(f"{out.stem}.{method}.json")


def plot(results: dict[str, Any], path: Path) -> None:
    """Bar chart of accuracy and macro-F1 per method, with the target line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    methods = list(results["methods"])
    x = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for offset, metric in ((-0.2, "accuracy"), (0.2, "macro_f1")):
        values = [results["methods"][m][metric] for m in methods]
        bars = ax.bar(x + offset, values, 0.4, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(TARGET_ACCURACY, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_ACCURACY}")
    ax.set_xticks(x, [f"{m}\n{results['methods'][m]['train_wall_s']:.0f} s train" for m in methods])
    ax.set_ylim(0.5, 1.0)
    ax.set_title("BANKING77 test (3,080), MiniLM-L6, 2 CPU threads")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA, help="BANKING77 folder")
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--methods", default="lora,frozen_lr", help="comma list: frozen_lr, lora, full")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3, help="LoRA lr (full: --full-lr)")
    parser.add_argument("--full-lr", type=float, default=1e-4)
    parser.add_argument("--head-lr", type=float, default=1e-2)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument(
        "--lora-targets",
        default="attention.self.query,attention.self.key,attention.self.value,attention.output.dense,"
        "intermediate.dense,output.dense",
        help="comma list of module names (suffixes) inside each adapted layer",
    )
    parser.add_argument(
        "--lora-layers",
        default="4,5",
        help="encoder layers to adapt (comma list); lower layers get no LoRA, so no backward pass runs "
        "through them: the cheapest fine-tune on 2 shared CPU threads",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    parser.add_argument(
        "--merge",
        type=Path,
        action="append",
        default=[],
        help="fold the methods of another results file (e.g. a separate run) into --out",
    )
    parser.add_argument(
        "--per-intent",
        type=int,
        default=0,
        help="train the fine-tuned methods on N utterances per intent (0: all); frozen_lr reports both",
    )
    parser.add_argument(
        "--frozen-shots-only",
        action="store_true",
        help="with --per-intent: frozen_lr embeds and reports the per-intent sample only",
    )
    parser.add_argument("--limit", type=int, default=0, help="smoke test: about N train rows, 52 test rows")
    parser.add_argument(
        "--parallel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the methods at the same time, one process each",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    if not (args.data / "train.csv").is_file():
        raise SystemExit(f"BANKING77 not found at {args.data} (expected ../shared/data/support/banking77)")
    train, test = load_banking77(args.data, "train"), load_banking77(args.data, "test")
    base = ClassifierTrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, head_lr=args.head_lr,
        val_fraction=VAL_FRACTION, seed=SEED, max_length=64, warmup_ratio=0.06, patience=0,
        lora=LoraSettings(r=args.lora_r, alpha=2 * args.lora_r, dropout=0.1,
                          target_modules=_targets(args.lora_targets, args.lora_layers)),
    )  # fmt: skip
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results: dict[str, Any] = {
        "benchmark": NAME,
        "data": {
            "train": len(train.texts),
            "test": len(test.texts),
            "labels": 77,
            "val_fraction": VAL_FRACTION,
        },
        "model": args.model,
        "threads": args.threads,
        "machine": platform.processor() or platform.machine(),
        "target_accuracy": TARGET_ACCURACY,
        "published": PUBLISHED,
        "command": "nice -n 5 .venv/bin/python -m bench." + " ".join([NAME, *sys.argv[1:]]),
        "args": {k: str(v) for k, v in vars(args).items()},
        "methods": dict(previous.get("methods", {})),
    }
    for other in args.merge:
        extra = json.loads(other.read_text())
        for name, row in extra["methods"].items():
            results["methods"][name] = {**row, "command": extra.get("command")}
    methods = [m for m in args.methods.split(",") if m]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.parallel and len(methods) > 1:
        # One process per method, started together: on a shared machine every peer then sees the
        # same load, and the run takes as long as the slowest method instead of the sum. Each child
        # writes its own partial file, so one that fails or is stopped loses only its own numbers.
        import multiprocessing

        procs = [multiprocessing.Process(target=_run_method, args=(m, args, base)) for m in methods]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
    else:
        for method in methods:
            _run_method(method, args, base)
    for method in methods:
        partial = _partial(args.out, method)
        if partial.is_file():
            results["methods"].update(json.loads(partial.read_text()))
            partial.unlink()
        else:
            logger.error("%s produced no results", method)
    plot(results, args.out.with_suffix(".png"))
    if "frozen_lr" in results["methods"]:
        ref = results["methods"]["frozen_lr"]["accuracy"]
        results["accuracy_ratio_vs_frozen_lr"] = {
            m: round(r["accuracy"] / ref, 3) for m, r in results["methods"].items()
        }
    # Each fine-tuned method against the frozen baseline trained on the same utterances.
    results["accuracy_ratio_vs_frozen_lr_same_train_data"] = {
        m: round(r["accuracy"] / results["methods"][peer]["accuracy"], 3)
        for m, r in results["methods"].items()
        if not m.startswith("frozen_lr")
        and (peer := "frozen_lr" + (m[m.index("_") :] if "_" in m else "")) in results["methods"]
    }
    write_json_atomic(args.out, results)
    print(json.dumps({m: {k: r[k] for k in ("accuracy", "macro_f1", "train_wall_s")}
                      for m, r in results["methods"].items()}, indent=2))  # fmt: skip
    return results


if __name__ == "__main__":
    main()

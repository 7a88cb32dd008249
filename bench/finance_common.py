"""Shared runner of the finance benchmarks (PhraseBank, TFNS sentiment, TFN topic).

Each benchmark loads real data from ``../shared/data/finance`` (never copied into the project),
trains one classifier per configuration with :func:`apps.finance_monitor.classifiers.train`
(validation for best epoch and calibration carved from the training part only), evaluates on
the held-out part, times training and scoring, and writes ``bench/results/finance_<name>.json``.
``python -m bench.finance_report`` merges them into ``finance.json``, a PNG and the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apps.finance_monitor.presets import TRAIN_PRESETS
from core.atomic import write_bytes_atomic
from core.log_fields import FieldsFormatter

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "finance"
RESULTS = ROOT / "bench" / "results"
# share of the training part the loop holds out (the run's validation carve-out)
VAL_FRACTION = 0.1
RUNS = Path(os.environ.get("FINANCE_BENCH_RUNS", "/tmp/finance_bench_runs"))

# name -> training overrides. "lora-attn" is the core default (LoRA r=8 on query/value... of the
# attention); "lora-all" adapts every linear layer of the encoder with r=16 (closest to a full
# fine-tune the core classifier can save).
CONFIGS: dict[str, dict[str, Any]] = {
    "lora-attn": {"lora": {"r": 8, "alpha": 16}},
    "lora-all": {"lora": {"r": 16, "alpha": 32, "target_modules": ["query", "key", "value", "dense"]}},
    # every encoder weight trained (no LoRA); the model directory then carries the whole encoder
    "full": {"full_finetune": True, "lr": 1e-4},
    # the one-model presets of `aigc finance train --task sentiment --preset NAME`
    # (apps/finance_monitor/config.py); an ensemble preset is measured by bench.finance_product
    **{
        f"preset-{name}": dict(fields)
        for name, fields in TRAIN_PRESETS.items()
        if "ensemble_seeds" not in fields
    },
}
# --aux-data NAME: (file under DATA, label map) of a labelled set trained as an auxiliary head.
AUX_DATA: dict[str, tuple[str, str]] = {
    "tfns": ("twitter_financial_news_sentiment/sent_train.csv", "tfns"),
}
# What a run trains with unless its configuration or the command line says otherwise.
BASE = {"model": "minilm-l6", "batch_size": 16}


def parse_args(description: str, default_epochs: int) -> argparse.Namespace:
    """Common command-line options of the finance benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), help="configurations to run")
    parser.add_argument(
        "--epochs", type=int, default=None, help=f"default: the configuration's, else {default_epochs}"
    )
    parser.add_argument("--threads", type=int, default=int(os.environ.get("FINANCE_BENCH_THREADS", "2")))
    parser.add_argument("--batch-size", type=int, default=None, help="default: the configuration's, else 16")
    parser.add_argument("--max-train", type=int, default=None, help="subsample the training part")
    parser.add_argument("--model", default=None, help="default: the configuration's, else minilm-l6")
    parser.add_argument("--lr", type=float, default=None, help="override the configuration's encoder lr")
    parser.add_argument("--max-length", type=int, default=None, help="override the token limit")
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: epochs without a better validation metric (default: the loop's)",
    )
    parser.add_argument("--warmup-ratio", type=float, default=None, help="override the warm-up share")
    parser.add_argument("--weight-decay", type=float, default=None, help="override the AdamW weight decay")
    parser.add_argument(
        "--layer-lr-decay", type=float, default=None, help="layer-wise lr decay of the encoder (1: none)"
    )
    parser.add_argument(
        "--label-smoothing", type=float, default=None, help="share of each target spread over the labels"
    )
    parser.add_argument(
        "--tag", default=None, help="names a variant: its own run directory and result row (a lr sweep)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the validation carve-out, initialisation and batch order (the data split stays)",
    )
    parser.add_argument(
        "--split-seed",
        type=int,
        default=None,
        help="seed of the validation carve-out alone (default: --seed); runs of several --seed values "
        "with one --split-seed share their validation rows, so their probabilities can be averaged",
    )
    test = parser.add_mutually_exclusive_group()
    test.add_argument(
        "--no-test",
        action="store_true",
        help="train and record validation only (choose settings without seeing the test part)",
    )
    test.add_argument(
        "--refit",
        action="store_true",
        help="train on the whole training part (no validation carve-out, the configuration's epochs, "
        "no calibration) and score the test part: the final fit once settings were chosen on validation",
    )
    test.add_argument(
        "--test-only",
        action="store_true",
        help="score the test part with the model a --no-test run of the same options left",
    )
    parser.add_argument(
        "--aux-data",
        choices=sorted(AUX_DATA),
        default=None,
        help="another labelled set trained as an auxiliary head of the same encoder (multi-task); "
        "validation, the best epoch and the test score stay on the benchmark's own head",
    )
    parser.add_argument(
        "--aux-rows", type=int, default=None, help="a seeded random sample of the auxiliary set"
    )
    parser.add_argument(
        "--agreement-confidence",
        action="store_true",
        help="PhraseBank only: train each sentence towards its annotator agreement (the middle of its "
        "tier) on its label instead of 1, the rest spread over the other labels",
    )
    parser.add_argument("--progress", action="store_true", help="a progress bar per epoch, epoch logs")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run of the same configuration from its checkpoint (same FINANCE_BENCH_RUNS)",
    )
    return parser.parse_args()


def _settings(config_name: str, args: argparse.Namespace, default_epochs: int) -> dict[str, Any]:
    """Training fields of one run: defaults, then the configuration's, then the command line's."""
    settings: dict[str, Any] = {**BASE, "epochs": default_epochs, **CONFIGS[config_name]}
    cli = {
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_length": args.max_length,
        "patience": args.patience,
        "warmup_ratio": getattr(args, "warmup_ratio", None),
        "weight_decay": getattr(args, "weight_decay", None),
        "layer_lr_decay": getattr(args, "layer_lr_decay", None),
        "label_smoothing": getattr(args, "label_smoothing", None),
        "split_seed": getattr(args, "split_seed", None),
    }
    settings.update({k: v for k, v in cli.items() if v is not None})
    return settings


def run(
    name: str,
    description: str,
    load: Callable[[], tuple[Any, Any, dict[str, Any]]],
    target: tuple[str, float],
    default_epochs: int = 3,
) -> dict[str, Any]:
    """Train and evaluate every configuration on ``load()``'s (train, test) split; write the JSON.

    Args:
        name: Benchmark name (file ``finance_<name>.json``).
        description: For ``--help``.
        load: Returns ``(train LabelledData, test LabelledData, protocol dict)``.
        target: ``(metric, value)`` the issue asks for.
        default_epochs: Epochs unless ``--epochs`` says otherwise.
    """
    args = parse_args(description, default_epochs)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger().handlers[0].setFormatter(FieldsFormatter("%(asctime)s %(name)s %(message)s"))
    if args.progress:
        logging.getLogger("core.finetune").setLevel(logging.INFO)
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}; the finance benchmarks need ../shared/data/finance")
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from apps.finance_monitor.classifiers import evaluate, load_model, train

    train_data, test_data, protocol = load()
    if args.max_train and len(train_data) > args.max_train:
        rng = np.random.default_rng(42)
        keep = sorted(rng.choice(len(train_data), args.max_train, replace=False).tolist())
        train_data = train_data.subset(keep)
        protocol["train_subsampled_to"] = args.max_train
    if args.agreement_confidence:
        if name != "phrasebank":
            raise SystemExit("--agreement-confidence needs PhraseBank's agreement files")
        from bench.finance_agreement import with_agreement_confidence

        train_data = with_agreement_confidence(train_data)
    task = "topic" if name == "topic" else "sentiment"
    results: dict[str, Any] = {
        "benchmark": name,
        "protocol": protocol,
        "target": {"metric": target[0], "value": target[1]},
        "machine": {"threads": args.threads, "cpu": platform.processor() or platform.machine()},
        "load_average_at_start": os.getloadavg(),
        "runs": [],
    }
    out = RESULTS / f"finance_{name}.json"
    # a run replaces an earlier one of the same configuration, epochs, training subsample and tag
    # (so --test-only replaces the validation-only row of its --no-test run)
    running = {
        (c, _settings(c, args, default_epochs)["epochs"], args.max_train, args.tag)
        for c in args.config or ["lora-attn"]
    }
    # Runs measured earlier (the --test-only lookup of the training time reads them).
    earlier: list[dict[str, Any]] = _rows_in(out)
    for config_name in args.config or ["lora-attn"]:
        run_dir = RUNS / "-".join(filter(None, (name, config_name, args.tag)))
        settings = _settings(config_name, args, default_epochs)
        load_at_start = os.getloadavg()
        if args.test_only:
            report = json.loads((run_dir / "report.json").read_text())
            key = (config_name, settings["epochs"], args.max_train, args.tag)
            trained = [
                r for r in earlier if (r["config"], r["epochs"], r.get("max_train"), r.get("tag")) == key
            ]
            train_wall = trained[-1]["train_wall_s"] if trained else None
        else:
            tick = time.perf_counter()
            val_fraction = 0.0 if args.refit else VAL_FRACTION
            common = {"val_fraction": val_fraction, "seed": args.seed, "show_progress_bar": args.progress}
            if args.aux_data:
                report = _train_with_aux(task, train_data, run_dir, args, {**settings, **common})
            else:
                report = train(task, train_data, run_dir, resume=args.resume, **common, **settings)
            train_wall = round(time.perf_counter() - tick, 1)
        row = {
            **_row(config_name, settings, args, report, train_wall, len(test_data)),
            "load_average_at_start": load_at_start,
        }
        model = load_model(run_dir)
        probabilities = {} if args.refit else {"val": _val_probabilities(model, train_data, args, task)}
        if not args.no_test:
            tick = time.perf_counter()
            metrics = evaluate(model, test_data, batch_size=64)  # scoring + metrics (metrics take ms)
            score_s = time.perf_counter() - tick
            probabilities["test"] = _probabilities(model, test_data, task)
            row.update(
                score_items_per_s=round(len(test_data) / score_s, 1),
                **{k: metrics[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                per_class=metrics["per_class"],
                confusion=metrics["confusion"],
                target_met=metrics[target[0]] >= target[1],
            )
        row["probabilities"] = _save_probabilities(name, config_name, args.tag, probabilities)
        results["runs"].append(row)
        _write_results(out, results, running)
        print(
            json.dumps({k: row.get(k) for k in ("config", "tag", "accuracy", "weighted_f1", "train_wall_s")})
        )
    return results


def _rows_in(out: Path) -> list[dict[str, Any]]:
    """Every run row of result file ``out`` (earlier and latest), ``[]`` when there is none."""
    return rows_of(json.loads(out.read_text())) if out.is_file() else []


def rows_of(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every run row of a parsed result file, earlier ones first (a later row of a tag supersedes)."""
    return [*results.get("earlier_runs", []), *results.get("runs", [])]


def _write_results(out: Path, results: dict[str, Any], running: set[tuple[Any, ...]]) -> None:
    """Write ``results`` to ``out``, keeping every row of the file that this run does not replace.

    The file is re-read under a lock at each write, so runs of other tags or seeds that finish while
    this one trains (benches run two at a time on two cores) keep their rows; the write is atomic.
    """
    import fcntl

    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(out.with_name(out.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kept = [
            r
            for r in _rows_in(out)
            if (r.get("config"), r.get("epochs"), r.get("max_train"), r.get("tag")) not in running
        ]
        write_bytes_atomic(out, (json.dumps({**results, "earlier_runs": kept}, indent=2) + "\n").encode())


def _train_with_aux(
    task: str, train_data: Any, run_dir: Path, args: argparse.Namespace, fields: dict[str, Any]
) -> dict[str, Any]:
    """Train ``task`` with ``--aux-data`` as an auxiliary head (its rows after the task's, all training)."""

    import numpy as np

    from apps.finance_monitor.classifiers import train_multitask
    from apps.finance_monitor.config import FinanceTrainConfig
    from apps.finance_monitor.datasets import load_labelled
    from core.finetune import with_overrides

    file, label_map = AUX_DATA[args.aux_data]
    aux = load_labelled(DATA / file, label_map=label_map, dedup="text")
    if args.aux_rows and args.aux_rows < len(aux):
        keep = sorted(
            np.random.default_rng(args.seed).choice(len(aux), args.aux_rows, replace=False).tolist()
        )
        aux = aux.subset(keep)
    head = f"aux-{args.aux_data}"
    config = with_overrides(FinanceTrainConfig(), {**fields, "auxiliary_heads": (head,)})
    return train_multitask({task: train_data, head: aux}, run_dir, config=config, resume=args.resume)


def _probabilities(model: Any, data: Any, head: str) -> dict[str, Any]:
    """Calibrated class probabilities of ``model`` on ``data`` with the true labels (one encoder pass)."""
    from apps.finance_monitor.classifiers import head_probabilities

    return {
        "probs": head_probabilities(model, data.texts, batch_size=64)[head],
        "labels": list(data.labels),
        "rows": list(data.rows),
        "classes": list(model.labels(head)),
    }


def _val_probabilities(model: Any, train_data: Any, args: argparse.Namespace, head: str) -> dict[str, Any]:
    """Probabilities on the validation carve-out the training loop held out (rebuilt from its seed)."""

    from core.finetune import split_indices

    seed = args.seed if args.split_seed is None else args.split_seed
    _, val = split_indices(len(train_data), VAL_FRACTION, seed, strata=list(train_data.labels))
    return _probabilities(model, train_data.subset(val), head)


def _save_probabilities(
    name: str, config_name: str, tag: str | None, parts: dict[str, dict[str, Any]]
) -> str:
    """Write one run's per-row probabilities to ``bench/results/finance_<name>_probs/<run>.json``.

    A ``--test-only`` run keeps the validation part of the file and adds the test part. Returns the
    path relative to ``bench/results`` (recorded in the result row; ``bench.finance_ensemble`` reads it).
    """
    out = RESULTS / f"finance_{name}_probs" / ("-".join(filter(None, (config_name, tag))) + ".json")
    saved = json.loads(out.read_text()) if out.is_file() else {}
    for part, values in parts.items():
        saved[part] = {
            "classes": values["classes"],
            "rows": values["rows"],
            "labels": values["labels"],
            "probs": [[round(float(p), 5) for p in row] for row in values["probs"]],
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(out, (json.dumps(saved) + "\n").encode())  # a kill never leaves half a file
    return str(out.relative_to(RESULTS))


def _row(
    config_name: str,
    settings: dict[str, Any],
    args: argparse.Namespace,
    report: dict[str, Any],
    train_wall: float | None,
    test_rows: int,
) -> dict[str, Any]:
    """The result row of one run before its test scores (``test_scored`` says whether they follow)."""
    best = next((h for h in report["history"] if h["epoch"] == report["best_epoch"]), {})
    return {
        "config": config_name,
        "tag": args.tag,
        "seed": getattr(args, "seed", 42),
        "split_seed": getattr(args, "split_seed", None),
        "model": settings["model"],
        "overrides": {k: v for k, v in settings.items() if k not in ("model", "epochs", "batch_size")},
        "batch_size": settings["batch_size"],
        "epochs": settings["epochs"],
        "max_train": args.max_train,
        "aux_data": getattr(args, "aux_data", None),
        "aux_rows": getattr(args, "aux_rows", None),
        "agreement_confidence": getattr(args, "agreement_confidence", False),
        "epochs_run": report["epochs_run"],
        "resumed": report["resumed"],
        "best_epoch": report["best_epoch"],
        "train_rows": report["train_size"],
        "val_rows": report["val_size"],
        "test_rows": test_rows,
        # with --test-only: the time of the --no-test run that trained the model (None if unknown)
        "train_wall_s": train_wall,
        "train_loop_s": report["wall_time_s"],
        "train_samples_per_s": report["samples_per_s"],
        "calibration": report.get("calibration"),
        "load_average_at_end": os.getloadavg(),
        # what chose this run: the best epoch's validation scores
        "val_macro_f1": best.get("val_macro_f1"),
        "val_accuracy": best.get("val_accuracy"),
        "test_scored": not args.no_test,
        # per-epoch training loss and validation metrics (the epoch is chosen on validation)
        "history": report["history"],
    }

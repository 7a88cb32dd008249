"""PhraseBank with an intermediate task: the accurate preset started from an mpnet encoder first trained
on TFNS sentiment, against the same preset started from mpnet-base, compared on validation.

Issue 17, item 5 (PhraseBank ≥ 0.88) left "intermediate TFNS -> PhraseBank fine-tuning" untried. This
bench:

1. writes every row of TFNS ``sent_train.csv`` (tweets, the ``tfns`` label map) minus any text of the
   PhraseBank benchmark's training or test part as ``intermediate.csv`` under ``FINANCE_BENCH_RUNS``
   (outside the project: the data's licence);
2. trains ``aigc finance train --preset accurate --set epochs=N`` on it (one epoch by default);
3. writes that model's encoder weights into a copy of mpnet-base's directory (config, tokenizer and
   pooling files), a local Hugging Face directory the suite loads like any model;
4. for each ``--seeds`` seed, trains PhraseBank's training part with the product's settings
   (``--confidence-column agreement --preset accurate --set label_smoothing=0.1 --set seed=S``) once
   from mpnet-base and once from the TFNS encoder, and reads each run's validation macro F1 (the 10 %
   carve-out, which depends on the seed): the only numbers a preset may be chosen on.

Runs are kept under ``FINANCE_BENCH_RUNS/intermediate/`` and a finished one (its ``report.json``) is
read instead of trained again, so a killed bench continues where it stopped. With ``--score-test`` the
runs are then scored on the test part, one by one and each arm's averaged (not refitted: they keep
their validation carve-out), to see whether the validation result holds on test; the choice is the
validation comparison's.
Results: ``bench/results/finance_phrasebank_intermediate.json`` and ``.png``.

Run: ``FINANCE_BENCH_RUNS=/work/runs .venv/bin/python -m bench.finance_intermediate --seeds 42,7,1234
[--score-test]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.finance_common import DATA, RESULTS, RUNS
from bench.finance_product import aigc, write_parts
from core.atomic import write_bytes_atomic

logger = logging.getLogger(__name__)

OUT = RESULTS / "finance_phrasebank_intermediate.json"
#: The product settings both arms train PhraseBank with (the accurate preset with agreement targets).
PRODUCT_OPTIONS: tuple[str, ...] = (
    "--confidence-column", "agreement", "--preset", "accurate", "--set", "label_smoothing=0.1",
)  # fmt: skip
#: Files of a model directory that are not the weights (the copy keeps them, the weights are replaced).
_WEIGHT_FILES = frozenset({"model.safetensors", "pytorch_model.bin", "artifact.json", "source.json"})


def write_intermediate(folder: Path, train_csv: Path, test_csv: Path) -> tuple[Path, dict[str, Any]]:
    """TFNS ``sent_train.csv`` (all rows, ``tfns`` labels) minus the PhraseBank parts' texts, as CSV."""
    from apps.finance_monitor.datasets import load_labelled, text_key

    tfns = load_labelled(DATA / "twitter_financial_news_sentiment" / "sent_train.csv", label_map="tfns")
    taken = {text_key(t) for part in (train_csv, test_csv) for t in pd.read_csv(part)["text"]}
    rows = [(t, label) for t, label in zip(tfns.texts, tfns.labels, strict=True) if text_key(t) not in taken]
    path = folder / "intermediate.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    info = {"file": "sent_train.csv", "rows": len(rows), "dropped_as_phrasebank_text": len(tfns) - len(rows)}
    return path, info


def encoder_directory(model_dir: Path, out: Path) -> Path:
    """mpnet-base's directory with the weights of the trained classifier ``model_dir``'s encoder."""
    from core.classification import ENCODER_FILE
    from core.models import model_path

    if (out / "model.safetensors").is_file():
        return out
    base = model_path("mpnet-base")
    building = out.with_name(out.name + ".tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for item in base.iterdir():
        if item.name not in _WEIGHT_FILES:
            (shutil.copytree if item.is_dir() else shutil.copy2)(item, building / item.name)
    shutil.copy2(model_dir / ENCODER_FILE, building / "model.safetensors")
    building.rename(out)
    return out


def train(data: Path, out: Path, *options: str) -> dict[str, Any]:
    """``aigc finance train --task sentiment`` into ``out`` (its report read back when it is there)."""
    report = out / "report.json"
    if not report.is_file():
        started = time.perf_counter()
        aigc("finance", "train", "--task", "sentiment", "--data", str(data), "--out", str(out), *options)
        logger.info("Trained %s in %.0f s", out.name, time.perf_counter() - started)
    return json.loads(report.read_text())


def validation_row(report: dict[str, Any]) -> dict[str, Any]:
    """The validation numbers of one run's report."""
    return {
        "val_macro_f1": round(float(report["best_metric"]), 4),
        "best_epoch": report["best_epoch"],
        "train_wall_s": round(float(report["wall_time_s"]), 1),
        "epochs": [
            {k: round(float(v), 4) for k, v in epoch.items() if k in ("epoch", "val_macro_f1", "val_loss")}
            for epoch in report.get("history", [])
        ],
    }


def test_scores(runs: dict[str, list[Path]], test_csv: Path) -> dict[str, Any]:
    """Test weighted F1 of every run and of each arm's runs averaged (calibrated probabilities), with
    the bootstrap interval of each average (:func:`bench.finance_product.bootstrap_interval`)."""
    import numpy as np
    from sklearn.metrics import f1_score

    from apps.finance_monitor.classifiers import head_probabilities, load_model
    from apps.finance_monitor.datasets import load_labelled
    from bench.finance_product import bootstrap_interval

    test = load_labelled(test_csv)
    labels = list(test.labels)
    scores: dict[str, Any] = {}
    for arm, dirs in runs.items():
        probs, classes = [], []
        for directory in dirs:
            model = load_model(directory)
            probs.append(head_probabilities(model, test.texts)["sentiment"])
            classes = list(model.labels("sentiment"))
        each = [
            round(float(f1_score(labels, np.asarray(classes)[p.argmax(axis=1)], average="weighted")), 4)
            for p in probs
        ]
        scores[arm] = {"runs": each, "mean_of_runs": round(statistics.mean(each), 4)}
        scores[arm]["average_of_runs"] = bootstrap_interval(probs, labels, classes)
    return scores


def plot(result: dict[str, Any], path: Path) -> None:
    """Validation macro F1 per seed for both arms, and (when scored) test weighted F1 beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = result["runs"]
    panels = [("validation macro F1", "val")] + ([("test weighted F1", "test")] if result.get("test") else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (title, kind) in zip(axes[0], panels, strict=True):
        for offset, (arm, color, name) in enumerate(
            (("base", "#8C8C8C", "from mpnet-base"), ("intermediate", "#4C72B0", "from the TFNS encoder"))
        ):
            test = result["test"][arm]["runs"] if kind == "test" else []
            values = test or [r[arm]["val_macro_f1"] for r in runs]
            xs = [i + (offset - 0.5) * 0.38 for i in range(len(runs))]
            ax.bar(xs, values, width=0.36, color=color, label=name)
            for x, v in zip(xs, values, strict=True):
                ax.annotate(f"{v:.3f}", (x, v), ha="center", va="bottom", fontsize=7)
        if kind == "test":
            ax.axhline(0.88, color="#C44E52", linestyle="--", linewidth=1, label="target 0.88")
        ax.set_xticks(range(len(runs)), [f"seed {r['seed']}" for r in runs])
        ax.set_ylim(0.8, 0.91)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("PhraseBank, accurate preset + agreement + label smoothing 0.1", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="42,7,1234", help="comma-separated seeds of the PhraseBank runs")
    parser.add_argument("--intermediate-epochs", type=int, default=1, help="epochs on TFNS")
    parser.add_argument(
        "--score-test",
        action="store_true",
        help="also score every run, and each arm's runs averaged, on the test part (after the "
        "validation comparison, which alone decides)",
    )
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    args = parser.parse_args()
    if args.plot_only:
        plot(json.loads(OUT.read_text()), OUT.with_suffix(".png"))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    seeds = [int(s) for s in args.seeds.split(",")]
    root = RUNS / "intermediate"
    train_csv, test_csv, protocol = write_parts(root / "data", agreement=True)
    data, intermediate = write_intermediate(root / "data", train_csv, test_csv)
    tfns_model = root / f"tfns-{args.intermediate_epochs}ep"
    epochs = f"epochs={args.intermediate_epochs}"
    tfns_report = train(data, tfns_model, "--preset", "accurate", "--set", epochs)
    encoder = encoder_directory(tfns_model, root / f"mpnet-tfns-{args.intermediate_epochs}ep")
    runs = []
    for seed in seeds:
        row: dict[str, Any] = {"seed": seed}
        for arm, extra in (("base", ()), ("intermediate", ("--set", f"model={encoder}"))):
            out = root / f"phrasebank-{arm}-seed{seed}"
            report = train(train_csv, out, *PRODUCT_OPTIONS, "--set", f"seed={seed}", *extra)
            row[arm] = validation_row(report)
        row["gain"] = round(row["intermediate"]["val_macro_f1"] - row["base"]["val_macro_f1"], 4)
        runs.append(row)
        logger.info("Seed %d: base %.4f, intermediate %.4f", seed, row["base"]["val_macro_f1"],
                    row["intermediate"]["val_macro_f1"])  # fmt: skip
    gains = [r["gain"] for r in runs]
    tested = None
    if args.score_test:
        arms = ("base", "intermediate")
        tested = test_scores({a: [root / f"phrasebank-{a}-seed{s}" for s in seeds] for a in arms}, test_csv)
    result = {
        "protocol": protocol,
        "intermediate": {
            **intermediate,
            "command": f"aigc finance train --preset accurate --set epochs={args.intermediate_epochs}",
            "val_macro_f1": round(float(tfns_report["best_metric"]), 4),
            "train_wall_s": round(float(tfns_report["wall_time_s"]), 1),
        },
        "phrasebank_options": " ".join(PRODUCT_OPTIONS) + " --set seed=S [--set model=<TFNS encoder>]",
        "runs": runs,
        "mean_gain": round(statistics.mean(gains), 4),
        "seeds_gaining": sum(g > 0 for g in gains),
        "test": tested,
        "load_average_at_end": list(os.getloadavg()),
    }
    write_bytes_atomic(OUT, (json.dumps(result, indent=2) + "\n").encode())
    plot(result, OUT.with_suffix(".png"))
    print(json.dumps({k: result[k] for k in ("mean_gain", "seeds_gaining")} | {"runs": len(runs)}))


if __name__ == "__main__":
    main()

"""PhraseBank or TFNS through the product's commands: ``aigc finance train`` (any options), then
``aigc finance eval``.

The other PhraseBank and TFNS runs call the training function with settings of the bench; this one
measures what a user gets. It writes the benchmark's training part (PhraseBank: annotator agreement as
a column with ``--agreement-confidence``) and test part as CSV files under ``FINANCE_BENCH_RUNS``
(outside the project: the data's licence), runs the ``aigc`` command in a subprocess with the given
options, scores the test part with ``aigc finance eval --json``, and records the command, its wall
time, the scores and the scoring speed in ``bench/results/finance_<dataset>_product.json`` (a row per
``--tag``).

An ensemble's members are also scored one by one on the test part, and their labels compared with the
bench's own runs of the same seeds (``--compare-runs``), to show that the product trains what was
measured before. ``--teacher-tag TAG`` distils: the model of the run ``TAG`` (same data set) is the
student's ``--teacher``, and the row and its plot put student, teacher and ``--baseline-tag`` (the
student's settings without a teacher) side by side; ``--transfer-set tfn-topic`` adds a transfer set
(``--transfer``): the TFN topic headlines (train and validation files), without the texts of the
benchmark's training and test parts, optionally a seeded sample of ``--transfer-rows``.
An ensemble's row also scores the average of every subset of its members on the test part, by size
(read after the fact, to show how much one k-member ensemble depends on its seeds; ``--subsets``
adds them to an earlier run's row), and a 95 % bootstrap interval over the test rows of the whole
ensemble's score: the test split's own noise, beside the seeds'.

Run: ``.venv/bin/python -m bench.finance_product --tag ens3-refit --agreement-confidence --
--preset accurate --ensemble-seeds 42,7,1234 --refit --set patience=1``;
``.venv/bin/python -m bench.finance_product --dataset tfns --tag fast -- --preset fast``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.finance_common import DATA, RESULTS, RUNS, rows_of
from core.atomic import write_bytes_atomic

AGREEMENT_COLUMN = "agreement"
DATASETS = ("phrasebank", "tfns")


def out_path(dataset: str) -> Path:
    """The result file of ``dataset``'s product runs."""
    return RESULTS / f"finance_{dataset}_product.json"


def write_parts(
    folder: Path, agreement: bool, dataset: str = "phrasebank"
) -> tuple[Path, Path, dict[str, Any]]:
    """The benchmark's training and test parts as CSV files in ``folder`` (and its protocol)."""
    if dataset == "tfns":
        from bench.finance_tfns import load
    else:
        from bench.finance_phrasebank import load

    train, test, protocol = load()
    folder.mkdir(parents=True, exist_ok=True)
    columns: dict[str, Any] = {"text": train.texts, "label": train.labels}
    if agreement:
        from bench.finance_agreement import with_agreement_confidence

        columns[AGREEMENT_COLUMN] = with_agreement_confidence(train).confidence
    train_csv, test_csv = folder / "train.csv", folder / "test.csv"
    pd.DataFrame(columns).to_csv(train_csv, index=False)
    pd.DataFrame({"text": test.texts, "label": test.labels}).to_csv(test_csv, index=False)
    return train_csv, test_csv, {**protocol, "train_rows": len(train), "test_rows": len(test)}


def write_transfer(
    folder: Path, train_csv: Path, test_csv: Path, rows: int | None
) -> tuple[Path, dict[str, Any]]:
    """The TFN topic headlines as a transfer set, minus every text of the benchmark's parts."""
    from apps.finance_monitor.datasets import text_key

    source = DATA / "twitter_financial_news_topic"
    texts = pd.concat(pd.read_parquet(source / f"{part}.parquet")["text"] for part in ("train", "validation"))
    taken = {text_key(t) for part in (train_csv, test_csv) for t in pd.read_csv(part)["text"]}
    kept = list(dict.fromkeys(t for t in texts if text_key(t) not in taken))
    dropped = len(texts) - len(kept)
    if rows is not None and rows < len(kept):
        kept = pd.Series(kept).sample(n=rows, random_state=0).tolist()
    path = folder / "transfer.csv"
    pd.DataFrame({"text": kept}).to_csv(path, index=False)
    info = {"name": "tfn-topic", "rows": len(kept), "dropped_as_repeat_or_benchmark_text": dropped}
    return path, info


def aigc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``aigc ARGS`` (this interpreter's installation) and fail loudly on a non-zero exit."""
    command = [str(Path(sys.executable).with_name("aigc")), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def members_test(model_dir: Path, test_csv: Path, compare: list[str]) -> list[dict[str, Any]]:
    """Each ensemble member's test scores, and its label agreement with a saved bench run's."""
    import numpy as np

    from core.metrics import classification_report

    probs, labels, classes, paths = member_probabilities(model_dir, test_csv)
    rows = []
    for i, (path, member) in enumerate(zip(paths, probs, strict=True)):
        predicted = [classes[j] for j in member.argmax(axis=1)]
        report = classification_report(labels, predicted, labels=classes)
        row = {"member": path, **{k: round(float(report[k]), 4) for k in ("accuracy", "weighted_f1")}}
        if i < len(compare):
            saved = json.loads((RESULTS / "finance_phrasebank_probs" / f"{compare[i]}.json").read_text())[
                "test"
            ]
            same = np.mean(np.asarray(saved["probs"]).argmax(axis=1) == member.argmax(axis=1))
            row.update(compared_with=compare[i], same_label_share=round(float(same), 4))
        rows.append(row)
    return rows


def member_probabilities(
    model_dir: Path, test_csv: Path
) -> tuple[list[Any], list[str], list[str], list[str]]:
    """Each member's calibrated test probabilities (cached beside the model, keyed by its version), the
    test labels, the classes and the members' paths, in the ensemble's order."""
    import numpy as np

    from apps.finance_monitor.classifiers import head_probabilities, model_version
    from apps.finance_monitor.datasets import load_labelled
    from core.classification import TextClassifier
    from core.classifier_ensemble import read_ensemble

    test = load_labelled(test_csv)
    cache = model_dir.parent / "member_test_probs.json"
    paths = [entry["path"] for entry in read_ensemble(model_dir)["members"]]
    version = model_version(model_dir)  # a model retrained under the same tag is scored again
    if cache.is_file():
        saved = json.loads(cache.read_text())
        if saved.get("model_version") == version:
            return [np.asarray(p) for p in saved["probs"]], list(test.labels), saved["classes"], paths
    probs, classes = [], []
    for path in paths:
        member = TextClassifier.from_pretrained(model_dir / path)
        probs.append(head_probabilities(member, test.texts)["sentiment"])
        classes = member.labels("sentiment")
    write_bytes_atomic(
        cache,
        json.dumps(
            {
                "model_version": version,
                "members": paths,
                "classes": classes,
                "probs": [p.tolist() for p in probs],
            }
        ).encode(),
    )
    return probs, list(test.labels), list(classes), paths


def subsets_test(model_dir: Path, test_csv: Path) -> dict[str, Any]:
    """Test weighted F1 of the average of every subset of an ensemble's members, by size.

    Read after the fact: no size is chosen on these numbers. The spread of the k-member subsets shows
    how far one k-member ensemble's score depends on which seeds it drew.
    """
    import numpy as np

    from bench.finance_ensemble import validation_table

    probs, labels, classes, paths = member_probabilities(model_dir, test_csv)
    names = [p.split("/")[-1] for p in paths]
    table = validation_table(probs, labels, classes)  # every subset's scores and each size's mean (any split)
    sizes: dict[str, Any] = {}
    for k in range(1, len(probs) + 1):
        scores = {
            "+".join(names[i] for i in members): s["weighted_f1"]
            for members, s in table["subsets"].items()
            if len(members) == k
        }
        values = list(scores.values())
        sizes[str(k)] = {
            "subsets": scores,
            "min": min(values),
            "mean": table["sizes"][k]["weighted_f1"],
            "max": max(values),
            "share_at_target": round(float(np.mean([v >= 0.88 for v in values])), 4),
        }
    interval = bootstrap_interval(probs, labels, classes)
    return {"members": names, "sizes": sizes, "all_members_interval": interval}


def bootstrap_interval(
    probs: list[Any], labels: list[str], classes: list[str], resamples: int = 2000
) -> dict[str, Any]:
    """A 95 % percentile-bootstrap interval of the averaged members' test weighted F1: how far the score
    moves when other sentences of the same kind are drawn (the test split's own noise, apart from the
    seeds'). Test rows resampled with their predictions, seed 0."""
    import numpy as np
    from scipy.stats import bootstrap
    from sklearn.metrics import f1_score

    predicted = np.asarray(classes)[np.mean(np.stack(probs), axis=0).argmax(axis=1)]
    result = bootstrap(
        (np.asarray(labels), predicted),
        lambda y, p: f1_score(y, p, average="weighted"),
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    low, high = result.confidence_interval
    return {
        "weighted_f1": round(float(f1_score(labels, predicted, average="weighted")), 4),
        "low": round(float(low), 4),
        "high": round(float(high), 4),
        "level": 0.95,
        "resamples": resamples,
        "share_at_target": round(float(np.mean(result.bootstrap_distribution >= 0.88)), 4),
    }


def plot_subsets(row: dict[str, Any], path: Path) -> None:
    """Every subset's test weighted F1 against its size, with the target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = row["subsets_test"]["sizes"]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, entry in sizes.items():
        values = list(entry["subsets"].values())
        ax.scatter([int(k)] * len(values), values, color="#4C72B0", alpha=0.6, s=18)
        ax.plot([int(k) - 0.2, int(k) + 0.2], [entry["mean"]] * 2, color="#222222", linewidth=1.5)
        ax.annotate(
            f"mean {entry['mean']:.3f}\n{entry['share_at_target']:.0%} ≥ 0.88",
            (int(k) + 0.22, entry["mean"]),
            fontsize=7,
            va="center",
        )
    interval = row["subsets_test"].get("all_members_interval")
    if interval:  # the test split's own noise, beside the seeds'
        n = len(sizes)
        ax.errorbar(
            [n + 0.8],
            [interval["weighted_f1"]],
            yerr=[[interval["weighted_f1"] - interval["low"]], [interval["high"] - interval["weighted_f1"]]],
            fmt="o",
            color="#DD8452",
            capsize=3,
            label="all members: 95 % bootstrap over test rows",
        )
    ax.axhline(0.88, color="#C44E52", linestyle="--", linewidth=1, label="target 0.88")
    ax.set_xticks([int(k) for k in sizes])
    ax.set_xlim(0.5, len(sizes) + 1.2)
    ax.set_xlabel("members averaged (every subset of the trained members)")
    ax.set_ylabel(f"{row.get('dataset', 'phrasebank')} test weighted F1")
    ax.set_title(f"{row['tag']}: ensembles by size", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot(row: dict[str, Any], path: Path) -> None:
    """Test weighted F1 of each member and of the average, beside the bench's runs of the same seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from bench.finance_ensemble import score

    members = row.get("members_test") or []
    names = [m["member"].split("/")[-1] for m in members] + ["average"]
    product = [m["weighted_f1"] for m in members] + [row["weighted_f1"]]
    bench: list[float | None] = []
    saved = []
    for m in members:
        if "compared_with" in m:
            part = json.loads(
                (RESULTS / "finance_phrasebank_probs" / f"{m['compared_with']}.json").read_text()
            )
            saved.append(part["test"])
            bench.append(
                score([np.asarray(part["test"]["probs"])], part["test"]["labels"], part["test"]["classes"])[
                    "weighted_f1"
                ]
            )
        else:
            bench.append(None)
    if saved and len(saved) == len(members):
        probs = [np.asarray(s["probs"]) for s in saved]
        bench.append(score(probs, saved[0]["labels"], saved[0]["classes"])["weighted_f1"])
    else:
        bench.append(None)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(x - 0.2, product, 0.4, label="aigc finance train (this run)", color="#4C72B0")
    if any(b is not None for b in bench):
        ax.bar(x + 0.2, [b or 0 for b in bench], 0.4, label="bench runs of the same seeds", color="#8C8C8C")
    for i, (p, b) in enumerate(zip(product, bench, strict=True)):
        ax.annotate(f"{p:.3f}", (i - 0.2, p), ha="center", va="bottom", fontsize=8)
        if b:
            ax.annotate(f"{b:.3f}", (i + 0.2, b), ha="center", va="bottom", fontsize=8)
    ax.axhline(0.88, color="#C44E52", linestyle="--", linewidth=1, label="target 0.88")
    ax.set_xticks(x, names)
    ax.set_ylim(0.85, 0.89)
    ax.set_ylabel(f"{row.get('dataset', 'phrasebank')} test weighted F1")
    ax.set_title(f"{row['tag']}: refitted members and their average")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_distillation(row: dict[str, Any], runs: list[dict[str, Any]], path: Path) -> None:
    """Test weighted F1 and scoring speed of the student beside its teacher and its baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_tag = {r["tag"]: r for r in runs}
    bars = [("baseline (no teacher)", by_tag.get(row.get("baseline_tag") or ""))]
    bars += [("student", by_tag.get(tag)) for tag in row.get("also_tags") or []]
    bars.append(("student", row))
    bars.append(("teacher", by_tag.get(row["teacher_tag"])))
    bars = [(name, r) for name, r in bars if r is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    # long run tags wrap at their hyphens so that neighbouring labels do not overlap
    wrapped = [textwrap.fill(r["tag"].replace("-", "- "), 18).replace("- ", "-") for _, r in bars]
    names = [f"{name}\n{tag}" for (name, _), tag in zip(bars, wrapped, strict=True)]
    colors = {"baseline (no teacher)": "#8C8C8C", "student": "#4C72B0", "teacher": "#DD8452"}
    f1 = [r["weighted_f1"] for _, r in bars]
    speed = [r["eval_items_per_s"] for _, r in bars]
    left.bar(names, f1, color=[colors[n] for n, _ in bars])
    right.bar(names, speed, color=[colors[n] for n, _ in bars])
    for i, (a, b) in enumerate(zip(f1, speed, strict=True)):
        left.annotate(f"{a:.3f}", (i, a), ha="center", va="bottom", fontsize=8)
        right.annotate(f"{b:.0f}", (i, b), ha="center", va="bottom", fontsize=8)
    left.axhline(0.88, color="#C44E52", linestyle="--", linewidth=1, label="target 0.88")
    left.set_ylim(min(f1) - 0.03, max(max(f1), 0.88) + 0.01)
    left.set_ylabel("test weighted F1")
    left.legend(loc="lower right", fontsize=8)
    right.set_ylabel("aigc finance eval, items/s (whole command)")
    for ax in (left, right):
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{row['dataset']}: distilled student {row['tag']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", required=True, help="names the run directory and the result row")
    parser.add_argument("--dataset", choices=DATASETS, default="phrasebank", help="benchmark data set")
    parser.add_argument(
        "--teacher-tag", help="distil: the model of this earlier run (same data set) is the --teacher"
    )
    parser.add_argument("--baseline-tag", help="the run of the student's settings without a teacher")
    parser.add_argument(
        "--transfer-set",
        choices=("tfn-topic",),
        help="with --teacher-tag: unlabelled texts the teacher labels (--transfer of aigc finance train)",
    )
    parser.add_argument("--transfer-rows", type=int, help="a seeded sample of this many transfer texts")
    parser.add_argument(
        "--also-tags", nargs="*", default=[], help="other students drawn beside this one (distillation)"
    )
    parser.add_argument(
        "--agreement-confidence",
        action="store_true",
        help=f"write each training sentence's agreement tier as column {AGREEMENT_COLUMN!r} and train "
        "with --confidence-column on it",
    )
    parser.add_argument(
        "--compare-runs",
        nargs="*",
        default=[],
        help="<config>-<tag> of saved bench runs to compare the members' test labels with, in member order",
    )
    parser.add_argument("train_options", nargs=argparse.REMAINDER, help="options of aigc finance train")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG of --tag from the JSON")
    parser.add_argument(
        "--subsets",
        action="store_true",
        help="score every subset of the ensemble trained by run --tag on the test part (added to its row)",
    )
    args = parser.parse_args()
    out = out_path(args.dataset)
    if args.subsets:
        runs = rows_of(json.loads(out.read_text()))
        (row,) = [r for r in runs if r.get("tag") == args.tag]
        folder = RUNS / f"{args.dataset}-product-{args.tag}"
        row["subsets_test"] = subsets_test(folder / "model", folder / "data" / "test.csv")
        write_bytes_atomic(out, (json.dumps({"runs": runs}, indent=2) + "\n").encode())
        draw(row, runs, out)
        print(
            json.dumps(
                {
                    **{
                        k: {m: v[m] for m in ("min", "mean", "max", "share_at_target")}
                        for k, v in row["subsets_test"]["sizes"].items()
                    },
                    "all_members_interval": row["subsets_test"]["all_members_interval"],
                }
            )
        )
        return
    if args.plot_only:
        runs = rows_of(json.loads(out.read_text()))
        (row,) = [r for r in runs if r.get("tag") == args.tag]
        draw(row, runs, out)
        return
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}; this benchmark needs ../shared/data/finance")
    if args.agreement_confidence and args.dataset != "phrasebank":
        raise SystemExit("--agreement-confidence: only PhraseBank records annotator agreement")
    options = [o for o in args.train_options if o != "--"]
    folder = RUNS / f"{args.dataset}-product-{args.tag}"
    train_csv, test_csv, protocol = write_parts(folder / "data", args.agreement_confidence, args.dataset)
    model_dir = folder / "model"
    if args.teacher_tag:
        teacher_dir = RUNS / f"{args.dataset}-product-{args.teacher_tag}" / "model"
        if not teacher_dir.is_dir():
            raise SystemExit(f"--teacher-tag {args.teacher_tag}: no model at {teacher_dir}")
        options += ["--teacher", str(teacher_dir)]
    transfer = None
    if args.transfer_set:
        transfer_csv, transfer = write_transfer(folder / "data", train_csv, test_csv, args.transfer_rows)
        options += ["--transfer", str(transfer_csv)]
    train_args = [
        "finance",
        "train",
        "--task",
        "sentiment",
        "--data",
        str(train_csv),
        "--out",
        str(model_dir),
    ]
    if args.agreement_confidence:
        train_args += ["--confidence-column", AGREEMENT_COLUMN]
    load_at_start = os.getloadavg()
    tick = time.perf_counter()
    trained = aigc(*train_args, *options)
    train_wall = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    scores = json.loads(
        aigc("finance", "eval", "--model", str(model_dir), "--data", str(test_csv), "--json").stdout
    )
    eval_wall = time.perf_counter() - tick
    report = json.loads((model_dir / "report.json").read_text())
    row: dict[str, Any] = {
        "tag": args.tag,
        "dataset": args.dataset,
        "command": "aigc "
        + " ".join([*train_args[:4], "<train.csv>", "--out", "<model>", *train_args[8:], *options]).replace(
            str(RUNS), "$FINANCE_BENCH_RUNS"
        ),
        "protocol": protocol,
        "train_wall_s": train_wall,
        # one process: model load plus scoring of the test part (what a user waits for)
        "eval_wall_s": round(eval_wall, 1),
        "eval_items_per_s": round(protocol["test_rows"] / eval_wall, 1),
        **{k: scores[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
        "per_class": scores.get("per_class"),
        "confusion": scores.get("confusion"),
        "target": {"metric": "weighted_f1", "value": 0.88},
        "target_met": scores["weighted_f1"] >= 0.88,
        "validation": {k: report.get(k) for k in ("metric", "best_metric", "best_epoch")},
        "ensemble": report.get("ensemble"),
        "train_stdout_tail": trained.stdout.strip().splitlines()[-1:],
        "load_average_at_start": load_at_start,
        "load_average_at_end": os.getloadavg(),
    }
    if report.get("ensemble"):
        row["members_test"] = members_test(model_dir, test_csv, args.compare_runs)
        row["subsets_test"] = subsets_test(model_dir, test_csv)
    if args.teacher_tag:
        row.update(teacher_tag=args.teacher_tag, baseline_tag=args.baseline_tag, also_tags=args.also_tags)
        row["teacher"] = report.get("teacher")
    if transfer is not None:
        row["transfer_set"] = transfer
    earlier = rows_of(json.loads(out.read_text())) if out.is_file() else []
    kept = [r for r in earlier if r.get("tag") != args.tag]
    write_bytes_atomic(out, (json.dumps({"runs": [*kept, row]}, indent=2) + "\n").encode())
    draw(row, [*kept, row], out)
    print(
        json.dumps(
            {k: row[k] for k in ("tag", "weighted_f1", "accuracy", "train_wall_s", "eval_items_per_s")}
        )
    )


def draw(row: dict[str, Any], runs: list[dict[str, Any]], out: Path) -> None:
    """The PNG of a run, where it has one: an ensemble's members, or a student beside its teacher."""
    png = out.with_name(f"{out.stem}-{row['tag']}.png")
    if row.get("teacher_tag"):
        plot_distillation(row, runs, png)
    elif row.get("members_test"):
        plot(row, png)
    if row.get("subsets_test"):
        plot_subsets(row, out.with_name(f"{out.stem}-{row['tag']}-subsets.png"))


if __name__ == "__main__":
    main()

"""Benchmark: does LoRA SFT of the answer model on past question-answer pairs make its answers better?

Data: StackFAQ (``../shared/data/support/stackfaq``). A thread's curated answer is its first (top)
answer; its questions are the title and the human paraphrases, which the upstream ``*`` separator
splits into a dev and a test half (:func:`core.bench.data.stackfaq`). Per thread:

* **train**: the title and every dev paraphrase but the last, each paired with the answer;
* **validation**: the last dev paraphrase (carved from the training side; picks the defaults);
* **test**: the test paraphrases, never trained on or used to choose anything (``--test`` of them,
  a fixed sample, seed 0).

Threads: the first ``--threads`` whose answer has at most ``--max-words`` words (the 2-core machine
cannot train on all 125 threads' long answers in a benchmark run; the cut is stated in the results).

Each configuration (``--config``; ``defaults`` is :class:`core.finetune.CausalLMTrainConfig` as
``aigc support finetune`` uses it, ``previous`` the defaults before issue 16) trains an adapter with
:func:`apps.customer_service.answer_tuning.finetune_answers` and is scored with
:func:`~apps.customer_service.answer_tuning.score_answer_model` (greedy, the served backend: llama.cpp
with the adapter exported to GGUF when installed, else torch) against the curated answer: corpus
BLEU (sacrebleu) and mean ROUGE-L F1, on validation and test; the base model is scored once as
"before".

Run (results: ``bench/results/support_finetune.json`` and ``.png``; one configuration per process
with ``--only NAME`` then ``--combine``)::

    nice -n 5 .venv/bin/python -m bench.support_finetune
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from apps.customer_service.answer_tuning import QAPair, finetune_answers, score_answer_model
from core.bench.data import as_list, stackfaq
from core.config import write_json_atomic

logger = logging.getLogger("bench.support_finetune")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
NAME = "support_finetune"
#: Configurations compared on validation (overrides of CausalLMTrainConfig).
CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "previous": {  # the defaults until issue 16: lr 2e-4, 3 epochs, rank 8 on the attention projections
        "lr": 2e-4,
        "epochs": 3,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": []},
    },
    "attention_only": {"lora": {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": []}},
    "lr_2e-4": {"lr": 2e-4},
    # The defaults with a higher epoch cap: early stopping on the validation loss (patience 2, the best
    # epoch's weights restored) picks the number of epochs; at 5 epochs that loss was still falling.
    "epochs_12": {"epochs": 12, "patience": 2},
}


def stackfaq_splits(n_threads: int, max_words: int, n_test: int, seed: int = 0) -> dict[str, list[QAPair]]:
    """Train / validation / test pairs of the first ``n_threads`` threads with short answers."""
    threads = []
    for t, item in enumerate(stackfaq()):
        answer = (as_list(item.get("answer")) or [""])[0].strip()
        if answer and len(answer.split()) <= max_words:
            threads.append((t, item, answer))
        if len(threads) == n_threads:
            break
    train: list[QAPair] = []
    val: list[QAPair] = []
    test: list[QAPair] = []
    for t, item, answer in threads:
        rephr = [r.strip() for r in as_list(item.get("rephr"))]
        cut = rephr.index("*") if "*" in rephr else len(rephr)
        dev, held = [r for r in rephr[:cut] if r], [r for r in rephr[cut + 1 :] if r]
        questions = [str(item["question"]).strip(), *dev[:-1]]
        train += [QAPair(q, answer, f"t{t:03d}-train{i}") for i, q in enumerate(questions)]
        val.append(QAPair(dev[-1], answer, f"t{t:03d}-val"))
        test += [QAPair(q, answer, f"t{t:03d}-test{i}") for i, q in enumerate(held)]
    if n_test < len(test):
        picked = sorted(np.random.default_rng(seed).choice(len(test), size=n_test, replace=False))
        test = [test[i] for i in picked]
    return {"train": train, "validation": val, "test": test}


def _score(pairs: list[QAPair], adapter: Path | None, max_new_tokens: int) -> dict[str, Any]:
    result = score_answer_model(pairs, adapter, max_new_tokens=max_new_tokens)
    return {k: result[k] for k in ("bleu", "rouge_l", "seconds", "samples")}


def run_config(
    name: str, splits: dict[str, list[QAPair]], out_dir: Path, max_new_tokens: int
) -> dict[str, Any]:
    """Train one configuration and score it on validation and test."""
    overrides = {**CONFIGS[name], "show_progress_bar": False}
    load = os.getloadavg()
    start = time.perf_counter()
    report = finetune_answers(splits["train"], out_dir / name, heldout_fraction=0, **overrides)
    train_s = time.perf_counter() - start
    result = {
        "overrides": CONFIGS[name],
        "config": report["config"],
        "train_wall_s": round(train_s, 1),
        "train_time_s": report["train_time_s"],
        "samples_per_s": report["samples_per_s"],
        "best_epoch": report["best_epoch"],
        "history": report["history"],
        "load_avg_during_training": [load, os.getloadavg()],
    }
    for split in ("validation", "test"):
        result[split] = _score(splits[split], out_dir / name, max_new_tokens)
    return result


def plot(results: dict[str, Any], path: Path) -> None:
    """BLEU (left) and ROUGE-L (right) before and after, per configuration, on validation and test."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from core.bench.harness import save_figure

    names = ["base (before)", *results["configs"]]
    speed = (results.get("training_speed") or {}).get("samples_per_s")
    fig, axes = plt.subplots(1, 3 if speed else 2, figsize=(14 if speed else 10, 3.6))
    if speed:  # training speed of the same LoRA set-up: project loop vs transformers Trainer
        bars = axes[2].bar(list(speed), list(speed.values()), color="#f58518")
        axes[2].bar_label(bars, fmt="%.3f", fontsize=7)
        axes[2].set_title("LoRA SFT training pairs/s (aigc bench finetune --task sft)", fontsize=9)
        axes[2].tick_params(axis="x", labelsize=7)
    for ax, metric in zip(axes, ("bleu", "rouge_l"), strict=False):
        x = np.arange(len(names))
        for offset, split, colour in ((-0.2, "validation", "#72b7b2"), (0.2, "test", "#4c78a8")):
            values = [results["before"][split][metric]]
            values += [results["configs"][n][split][metric] for n in results["configs"]]
            bars = ax.bar(x + offset, values, 0.4, label=split, color=colour)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(x, names, fontsize=7, rotation=15)
        ax.set_title(f"{metric} on StackFAQ paraphrases", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=8, help="StackFAQ threads (with short answers)")
    parser.add_argument("--max-words", type=int, default=30, help="longest curated answer, in words")
    parser.add_argument("--test", type=int, default=40, help="test paraphrases scored (seed 0)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS), default=None)
    parser.add_argument("--only", choices=sorted([*CONFIGS, "before"]), default=None)
    parser.add_argument("--combine", action="store_true", help="merge the --only results and plot")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep the adapters here")
    parser.add_argument("--out", type=Path, default=RESULTS / f"{NAME}.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.torch_threads)
    splits = stackfaq_splits(args.threads, args.max_words, args.test)
    names = args.config or ["defaults", "previous"]
    part = args.out.with_suffix("")
    if args.only or not args.combine:
        work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-support-finetune-"))
        todo = [args.only] if args.only else ["before", *names]
        for name in todo:
            if name == "before":
                load = os.getloadavg()
                result = {s: _score(splits[s], None, args.max_new_tokens) for s in ("validation", "test")}
                result["load_avg"] = [load, os.getloadavg()]
            else:
                result = run_config(name, splits, work, args.max_new_tokens)
            write_json_atomic(Path(f"{part}.{name}.json"), result)
        if args.only:
            return result
    results: dict[str, Any] = {
        "benchmark": NAME,
        "command": "nice -n 5 .venv/bin/python -m bench." + NAME,
        "data": {
            "threads": args.threads,
            "max_answer_words": args.max_words,
            **{f"{k}_pairs": len(v) for k, v in splits.items()},
            "test_paraphrases": f"{len(splits['test'])} (seed 0) of the chosen threads' test paraphrases",
        },
        "max_new_tokens": args.max_new_tokens,
        "torch_threads": args.torch_threads,
        "cpus": os.cpu_count(),
        "before": json.loads(Path(f"{part}.before.json").read_text()),
        "configs": {n: json.loads(Path(f"{part}.{n}.json").read_text()) for n in names},
    }
    speed_file = args.out.parent / "finetune.json"  # written by `aigc bench finetune --task sft`
    if speed_file.is_file():
        results["training_speed"] = json.loads(speed_file.read_text()).get("sft")
    before = results["before"]["test"]
    for result in results["configs"].values():
        result["test_bleu_ratio"] = round(result["test"]["bleu"] / max(before["bleu"], 1e-9), 2)
    write_json_atomic(args.out, results)
    plot(results, args.out.with_suffix(".png"))
    summary = {
        n: {s: {m: r[s][m] for m in ("bleu", "rouge_l")} for s in ("validation", "test")}
        for n, r in [("before", results["before"]), *results["configs"].items()]
    }
    print(json.dumps(summary, indent=2))
    return results


if __name__ == "__main__":
    main()

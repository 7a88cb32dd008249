"""The monitor's model at each precision: CPU per item, and whether the labels stay those of fp32.

Two parts, one command (``python -m bench.finance_scoring_precision``):

* **Cost.** The demo's two-head MiniLM (the model ``aigc bench monitor`` runs; trained first if
  absent) labels 2,000 real headlines and tweets (the bus benchmark's texts) in passes of 32 sorted
  by token count, as the monitor does: CPU ms per item (``process_time``, all threads) for fp32,
  bf16 and int8, with one torch thread and one pass at a time, then bf16 with two torch threads and
  with two passes at once (``TextClassifier.inference_workers``). Also the texts' token counts and
  the tokeniser's share.
* **Labels.** Small "fast"-preset sentiment models (MiniLM-L6, LoRA, one epoch) trained on 4,000
  TFNS and 3,000 PhraseBank training rows (``bench.finance_tfns`` / ``bench.finance_phrasebank``
  splits, seed 42); validation: the rest of each training split; test: the benchmarks' test splits.
  For bf16 and int8: agreement with the fp32 labels and the weighted F1 against fp32's. A precision
  is fit to be a default only if agreement >= 99 % and the F1 drops by <= 0.005 on validation.

Results: ``bench/results/finance_scoring_precision.json`` and ``.md``. Timings on a shared machine
are pessimistic; the load average is recorded beside them.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.harness import environment, markdown_table, write_results

logger = logging.getLogger(__name__)

NAME = "finance_scoring_precision"
PRECISIONS = ("fp32", "bf16", "int8")
TRAIN_ROWS = {"tfns": 4000, "phrasebank": 3000}
MIN_AGREEMENT = 0.99
MAX_F1_DROP = 0.005
PASS = 32  # texts per forward pass (monitor.model_batch_size)
RUNS = Path(os.environ.get("FINANCE_BENCH_RUNS", "/tmp/finance_bench_runs"))


def _splits(name: str) -> tuple[Any, Any, Any]:
    """(training rows used, validation = the rest of the training split, test split)."""
    import bench.finance_phrasebank as phrasebank
    import bench.finance_tfns as tfns

    train, test, _ = {"tfns": tfns, "phrasebank": phrasebank}[name].load()
    keep = sorted(np.random.default_rng(42).choice(len(train), TRAIN_ROWS[name], replace=False).tolist())
    rest = sorted(set(range(len(train))) - set(keep))

    return train.subset(keep), train.subset(rest), test


def _cpu_ms(fn: Any, n: int) -> tuple[float, float]:
    """(CPU ms per item, wall ms per item) of ``fn()``, best of two after a warm-up."""
    fn()
    best = (float("inf"), float("inf"))
    for _ in range(2):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (1000 * (time.process_time() - c0) / n, 1000 * (time.perf_counter() - w0) / n))
    return round(best[0], 2), round(best[1], 2)


def cost(n: int = 2000) -> dict[str, Any]:
    """CPU per item of the demo model at each precision and thread layout, on the bus texts."""
    import torch

    from apps.finance_monitor.classifiers import head_probabilities, load_model
    from bench.finance_monitor_bus import _model_dir, headlines
    from core.batching import token_batches

    texts = headlines()
    sample = [texts[i] for i in np.random.default_rng(0).choice(len(texts), n, replace=False)]
    model_dir = _model_dir()
    rows: list[dict[str, Any]] = []
    reference = None
    layouts = [(p, 1, 1) for p in PRECISIONS] + [("bf16", 2, 1), ("bf16", 1, 2)]
    for precision, threads, workers in layouts:
        torch.set_num_threads(threads)
        model = load_model(model_dir, precision)  # type: ignore[arg-type]
        model.inference_workers = workers
        probs = head_probabilities(model, sample, PASS)
        if reference is None:
            reference = probs
            lengths = np.array([len(ids) for ids in model.tokenizer(sample)["input_ids"]])
            c0 = time.process_time()
            for _ in token_batches(model.tokenizer, sample, model.max_length, PASS):
                pass
            tokens = {
                "mean": round(float(lengths.mean()), 1),
                "p50": int(np.percentile(lengths, 50)),
                "p95": int(np.percentile(lengths, 95)),
                "max": int(lengths.max()),
                "max_length": model.max_length,
                "truncated_share": round(float((lengths > model.max_length).mean()), 4),
                "tokenise_cpu_ms_per_item": round(1000 * (time.process_time() - c0) / n, 3),
            }
        cpu, wall = _cpu_ms(lambda m=model: head_probabilities(m, sample, PASS), n)
        rows.append(
            {
                "precision": precision,
                "torch_threads": threads,
                "workers": workers,
                "cpu_ms_per_item": cpu,
                "wall_ms_per_item": wall,
                "agreement_with_fp32": {
                    h: round(float((probs[h].argmax(1) == reference[h].argmax(1)).mean()), 4) for h in probs
                },
                "loadavg_1m": round(os.getloadavg()[0], 2),
            }
        )
        logger.info("Cost", extra=rows[-1])
    torch.set_num_threads(2)
    return {"texts": n, "model": str(model_dir), "tokens": tokens, "rows": rows}


def labels() -> dict[str, Any]:
    """Agreement with fp32 and weighted F1 per precision on the TFNS and PhraseBank splits."""
    import torch
    from sklearn.metrics import f1_score

    from apps.finance_monitor.classifiers import head_probabilities, load_model, train

    torch.set_num_threads(1)
    out: dict[str, Any] = {}
    for name in TRAIN_ROWS:
        training, validation, test = _splits(name)
        model_dir = RUNS / f"precision-{name}-fast"
        if not (model_dir / "config.json").is_file():
            train("sentiment", training, model_dir, epochs=1, val_fraction=0.1, seed=42)
        reference: dict[str, np.ndarray] = {}
        for precision in PRECISIONS:
            model = load_model(model_dir, precision)  # type: ignore[arg-type]
            head = model.head_names[0]
            names = model.labels(head)
            for split, data in (("validation", validation), ("test", test)):
                c0 = time.process_time()
                predicted = head_probabilities(model, data.texts, PASS)[head].argmax(1)
                cpu = 1000 * (time.process_time() - c0) / len(data.texts)
                reference.setdefault(split, predicted)
                gold = [names.index(label) for label in data.labels]
                out.setdefault(name, {}).setdefault(split, {})[precision] = {
                    "rows": len(data.texts),
                    "agreement_with_fp32": round(float((predicted == reference[split]).mean()), 4),
                    "changed": int((predicted != reference[split]).sum()),
                    "weighted_f1": round(float(f1_score(gold, predicted, average="weighted")), 4),
                    "cpu_ms_per_item": round(cpu, 2),
                }
        out[name]["train_rows"] = len(training)
    torch.set_num_threads(2)
    for precision in PRECISIONS[1:]:  # the decision, on validation only
        checks = []
        for name in TRAIN_ROWS:
            val = out[name]["validation"]
            drop = val["fp32"]["weighted_f1"] - val[precision]["weighted_f1"]
            checks.append(val[precision]["agreement_with_fp32"] >= MIN_AGREEMENT and drop <= MAX_F1_DROP)
        out.setdefault("fit_for_default", {})[precision] = all(checks)
    return out


def run(out: str | Path | None = None) -> dict[str, Any]:
    """Measure both parts and write the result files."""
    result = {"bench": NAME, "cost": cost(), "labels": labels(), "env": environment()}
    write_results(NAME, result, _markdown(result), out)
    return result


def _markdown(result: dict[str, Any]) -> str:
    cost_rows = [
        [
            r["precision"],
            r["torch_threads"],
            r["workers"],
            r["cpu_ms_per_item"],
            r["wall_ms_per_item"],
            " / ".join(f"{100 * v:.2f} %" for v in r["agreement_with_fp32"].values()),
            r["loadavg_1m"],
        ]
        for r in result["cost"]["rows"]
    ]
    text = "### Demo model, 2,000 bus texts, passes of 32\n\n" + markdown_table(
        [
            "precision", "torch threads", "passes at once", "CPU ms per item", "wall ms per item",
            "labels as fp32 (sentiment / topic)", "load avg",
        ],
        cost_rows,
    )  # fmt: skip
    label_rows = []
    for name in TRAIN_ROWS:
        for split in ("validation", "test"):
            for precision, r in result["labels"][name][split].items():
                label_rows.append(
                    [
                        name, split, precision, r["rows"], f"{100 * r['agreement_with_fp32']:.2f} %",
                        r["changed"], f"{r['weighted_f1']:.4f}", r["cpu_ms_per_item"],
                    ]
                )  # fmt: skip
    text += "\n\n### Labels against fp32 (fast-preset sentiment models, one epoch)\n\n" + markdown_table(
        ["data", "split", "precision", "rows", "agreement", "changed", "weighted F1", "CPU ms per item"],
        label_rows,
    )
    fit = result["labels"]["fit_for_default"]
    text += "\n\nFit for a default (validation: agreement >= 0.99, F1 drop <= 0.005): " + ", ".join(
        f"{p} {'yes' if ok else 'no'}" for p, ok in fit.items()
    )
    return text + "\n"


if __name__ == "__main__":  # pragma: no cover - python -m bench.finance_scoring_precision
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(level=logging.WARNING)
    print(run()["labels"]["fit_for_default"])

"""Indicative costs of the accurate preset's encoder (`mpnet-base`) against the default `minilm-l6`.

Two numbers per model, on real Financial PhraseBank sentences (``../shared/data/finance``):

* **encode items/s**: :class:`core.embeddings.Embedder` over ``--sentences`` sentences (batch 64, the
  Embedder's precision ``auto``), after one warm-up batch; best of ``--reps``;
* **s per training step**: a full fine-tune step (forward, backward, clip, AdamW) of the
  :func:`core.finetune.classifier_task` of a ``TextClassifier(full_finetune=True)`` at batch 16, under
  the loop's precision (bf16 autocast where the CPU has fast bf16), median of ``--steps`` random
  batches after one warm-up step.

From the step time it estimates the training time of the full runs in ``docs/benchmarks/finance.md``
(PhraseBank 3,265 training rows x 4 epochs, TFNS 6,871 x 3), without evaluation.

    .venv/bin/python -m bench.accurate_preset --threads 1      # writes bench/results/accurate_preset.json
    .venv/bin/python -m bench.accurate_preset --threads 1 --optimizers --models mpnet-base
        # per-tensor vs fused AdamW, step phases: bench/results/accurate_optimizer.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODELS = ("minilm-l6", "mpnet-base")
BATCH = 16
# Training rows (after the validation carve-out) and epochs of the measured full fine-tunes.
FULL_RUNS = {"phrasebank_50agree": (3265, 4), "tfns_sentiment": (6871, 3)}


def _encode_rate(model: str, texts: list[str], reps: int) -> dict[str, Any]:
    from core.embeddings import Embedder

    started = time.perf_counter()
    embedder = Embedder(model)
    load_s = time.perf_counter() - started
    embedder.encode(texts[:64], show_progress_bar=False)  # warm-up
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        vectors = embedder.encode(texts, show_progress_bar=False)
        times.append(time.perf_counter() - started)
    return {
        "dim": int(vectors.shape[1]),
        "precision": str(embedder.model.dtype).removeprefix("torch."),
        "load_s": round(load_s, 2),
        "encode_s": round(min(times), 2),
        "items_per_s": round(len(texts) / min(times), 1),
    }


def _step_time(model: str, texts: list[str], labels: list[str], steps: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from core.classification import TextClassifier
    from core.finetune import ClassifierTrainConfig
    from core.finetune.classifier import classifier_task
    from core.finetune.data import LabelledTexts
    from core.precision import resolve_precision
    from core.seed import set_seed

    set_seed(0)
    config = ClassifierTrainConfig(batch_size=BATCH, full_finetune=True, use_lora=False, lr=1e-4)
    classifier = TextClassifier(model, sorted(set(labels)), max_length=config.max_length, full_finetune=True)
    task = classifier_task(classifier, LabelledTexts(texts, {"label": labels}, "phrasebank"), config)
    opt = torch.optim.AdamW(task.param_groups)
    bf16 = resolve_precision(config.precision, torch.device("cpu")) == torch.bfloat16
    params = [p for group in opt.param_groups for p in group["params"]]
    rng = np.random.default_rng(0)
    classifier.train()
    times, tokens = [], []
    for _ in range(steps + 1):
        rows = rng.choice(len(task.lengths), BATCH, replace=False).tolist()
        batch = task.collate(rows)
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = task.loss(batch).float()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - started)
        tokens.append(int(batch["input_ids"].shape[1]))
    step_s = statistics.median(times[1:])  # the first step allocates the optimizer state
    trainable = sum(p.numel() for p in params)
    estimates = {
        name: round(math.ceil(rows / BATCH) * epochs * step_s / 3600, 2)
        for name, (rows, epochs) in FULL_RUNS.items()
    }
    return {
        "trainable_params_m": round(trainable / 1e6, 1),
        "train_precision": "bf16-autocast" if bf16 else "fp32",
        "step_s": round(step_s, 2),
        "step_s_all": [round(t, 2) for t in times],
        "padded_tokens": tokens,
        "samples_per_s": round(BATCH / step_s, 1),
        "estimated_train_hours": estimates,
    }


def _optimizer_split(model: str, texts: list[str], labels: list[str], steps: int) -> dict[str, Any]:
    """Seconds of forward+backward, clipping and AdamW step of a full fine-tune, per-tensor vs fused AdamW.

    torch's AdamW updates tensor by tensor on CPU unless asked for its fused kernel; the two optimizers
    take turns on the same batches (medians of ``steps`` each, after one warm-up step each).
    """
    import numpy as np
    import torch

    from core.classification import TextClassifier
    from core.finetune import ClassifierTrainConfig
    from core.finetune.classifier import classifier_task
    from core.finetune.data import LabelledTexts
    from core.precision import resolve_precision
    from core.seed import set_seed

    set_seed(0)
    config = ClassifierTrainConfig(
        batch_size=BATCH, full_finetune=True, use_lora=False, lr=3e-5, max_length=128
    )
    classifier = TextClassifier(model, sorted(set(labels)), max_length=config.max_length, full_finetune=True)
    task = classifier_task(classifier, LabelledTexts(texts, {"label": labels}, "phrasebank"), config)
    bf16 = resolve_precision(config.precision, torch.device("cpu")) == torch.bfloat16
    optimizers = {
        "per-tensor": torch.optim.AdamW([dict(g) for g in task.param_groups], foreach=False),
        "fused": torch.optim.AdamW([dict(g) for g in task.param_groups], fused=True),
    }
    kinds = {
        name: sorted(
            {
                "fused" if g["fused"] else "per-tensor" if g["foreach"] is False else "foreach"
                for g in opt.param_groups
            }
        )
        for name, opt in optimizers.items()
    }
    params = [p for group in task.param_groups for p in group["params"]]
    phases: dict[str, dict[str, list[float]]] = {
        k: {"forward_backward": [], "clip": [], "optimizer": []} for k in optimizers
    }
    rng = np.random.default_rng(0)
    classifier.train()
    for _ in range(steps + 1):
        for name, opt in optimizers.items():
            batch = task.collate(rng.choice(len(task.lengths), BATCH, replace=False).tolist())
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = task.loss(batch).float()
            loss.backward()
            t1 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            t2 = time.perf_counter()
            opt.step()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            for phase, value in zip(phases[name], (t1 - t0, t2 - t1, t3 - t2), strict=True):
                phases[name][phase].append(value)
    out: dict[str, Any] = {"trainable_params_m": round(sum(p.numel() for p in params) / 1e6, 1)}
    for name, by_phase in phases.items():
        medians = {phase: round(statistics.median(v[1:]), 2) for phase, v in by_phase.items()}
        out[name] = {**medians, "step_s": round(sum(medians.values()), 2), "kinds": kinds[name]}
    out["optimizer_speedup"] = round(out["per-tensor"]["optimizer"] / max(out["fused"]["optimizer"], 1e-9), 1)
    out["step_speedup"] = round(out["per-tensor"]["step_s"] / out["fused"]["step_s"], 2)
    return out


def main() -> None:
    """Measure both models and write ``bench/results/accurate_preset.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument(
        "--optimizers",
        action="store_true",
        help="only time the phases of a step with per-tensor vs fused AdamW (accurate_optimizer.json)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import numpy as np
    import torch

    from core.bench.data import phrasebank

    torch.set_num_threads(args.threads)
    texts, labels = phrasebank()
    order = np.random.default_rng(42).permutation(len(texts))
    sample = [texts[i] for i in order[: args.sentences]]
    train_rows = order[: max(10 * BATCH, args.sentences)]
    result: dict[str, Any] = {
        "threads": args.threads,
        "sentences": len(sample),
        "batch": BATCH,
        "loadavg_before": [round(x, 1) for x in os.getloadavg()],
        "models": {},
    }
    if args.optimizers:
        result["optimizer_split"] = {}
        for model in args.models:
            split = _optimizer_split(
                model, [texts[i] for i in train_rows], [labels[i] for i in train_rows], args.steps
            )
            for name in ("per-tensor", "fused"):  # the optimizers really were what their names say
                assert split[name]["kinds"] == [name], split
            result["optimizer_split"][model] = split
            print(model, json.dumps(split), flush=True)
        result["loadavg_after"] = [round(x, 1) for x in os.getloadavg()]
        (RESULTS / "accurate_optimizer.json").write_text(
            json.dumps(result, indent=2) + "\n", encoding="utf-8"
        )
        return
    for model in args.models:
        encode = _encode_rate(model, sample, args.reps)
        train = _step_time(model, [texts[i] for i in train_rows], [labels[i] for i in train_rows], args.steps)
        result["models"][model] = {**encode, **train}
        print(model, json.dumps(result["models"][model]), flush=True)
    result["loadavg_after"] = [round(x, 1) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "accurate_preset.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""``aigc bench finetune``: training samples/s of the core LoRA classifier loop vs transformers ``Trainer``.

Both sides train the same model (MiniLM-L6 with the same LoRA settings and a mean-pooled linear head,
:class:`core.classification.TextClassifier`) on the same Financial PhraseBank sentences, batch 8, one
epoch per repetition, no evaluation or checkpoint inside the timed part. The project loop
(:func:`core.finetune.fit_classifier`, default settings) batches similar lengths together (dynamic
padding + length bucketing) and, on a CPU with fast bf16, trains under bf16 autocast
(``precision="auto"``); ``Trainer`` gets ``DataCollatorWithPadding`` (dynamic padding, its default)
over the same token ids, in fp32 (its default) and, where the project uses bf16, also with
``bf16=True``. Also reported: the wall time of the full PhraseBank run (``train_classifier`` on all 4,846
sentences, default settings) when not in quick mode.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from core.bench.data import phrasebank
from core.bench.harness import (
    BenchSkipped,
    alternate,
    environment,
    has_module,
    markdown_table,
    ratio,
    write_results,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 8


def _project_trains_in_bf16() -> bool:
    """Whether the project side's training config resolves to bf16 autocast on this CPU."""
    import torch

    from core.finetune import ClassifierTrainConfig
    from core.precision import resolve_precision

    return resolve_precision(ClassifierTrainConfig().precision, torch.device("cpu")) == torch.bfloat16


def _fresh_classifier(labels: list[str]) -> Any:
    from core.classification import TextClassifier
    from core.finetune import ClassifierTrainConfig
    from core.seed import set_seed

    set_seed(0)
    config = ClassifierTrainConfig()
    return TextClassifier("minilm-l6", labels, max_length=config.max_length, lora=config.lora)


def _project(rows: list[tuple[str, str]], labels: list[str]) -> Any:
    from core.finetune import ClassifierTrainConfig, fit_classifier
    from core.finetune.data import read_labelled_texts

    data = read_labelled_texts(rows, "text", ["label"])
    config = ClassifierTrainConfig(
        epochs=1, batch_size=BATCH_SIZE, val_fraction=0.0, patience=0, show_progress_bar=False, device="cpu"
    )

    def run() -> None:
        classifier = _fresh_classifier(labels)
        with tempfile.TemporaryDirectory() as out:
            fit_classifier(classifier, data, out, config)

    return run


def _trainer(rows: list[tuple[str, str]], labels: list[str], bf16: bool = False) -> Any:
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    index = {label: i for i, label in enumerate(labels)}

    class Wrapped(torch.nn.Module):
        def __init__(self, clf: Any) -> None:
            super().__init__()
            self.clf = clf

        def forward(self, input_ids, attention_mask, labels=None):  # noqa: ANN001 - Trainer's calling convention
            logits = self.clf(input_ids, attention_mask)["label"]
            loss = torch.nn.functional.cross_entropy(logits, labels)
            return {"loss": loss, "logits": logits}

    def run() -> None:
        clf = _fresh_classifier(labels)
        enc = clf.tokenizer([t for t, _ in rows], truncation=True, max_length=clf.max_length)
        dataset = [
            {"input_ids": ids, "attention_mask": mask, "labels": index[label]}
            for ids, mask, (_, label) in zip(enc["input_ids"], enc["attention_mask"], rows, strict=True)
        ]
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=BATCH_SIZE,
                num_train_epochs=1,
                learning_rate=1e-3,
                save_strategy="no",
                eval_strategy="no",
                logging_strategy="no",
                report_to=[],
                use_cpu=True,
                dataloader_num_workers=0,
                disable_tqdm=True,
                seed=0,
                bf16=bf16,
            )
            trainer = Trainer(
                model=Wrapped(clf.train()),
                args=args,
                train_dataset=dataset,
                data_collator=DataCollatorWithPadding(clf.tokenizer),
            )
            # Trainer prints its metrics dict to stdout, which must stay clean for `aigc bench --json`.
            with contextlib.redirect_stdout(sys.stderr):
                trainer.train()

    return run


def run(reps: int = 5, quick: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run the fine-tuning benchmark; returns the result dict (also written to ``out``)."""
    if not has_module("transformers"):
        raise BenchSkipped("transformers is not installed")
    texts, labels = phrasebank()
    n = 128 if quick else 1_000
    order = np.random.default_rng(0).permutation(len(texts))[:n]
    rows = [(texts[i], labels[i]) for i in order]
    label_set = sorted(set(labels))
    contestants = {"project": _project(rows, label_set), "trainer": _trainer(rows, label_set)}
    # Where the project loop trains in bf16 (precision="auto" on a CPU with fast bf16), Trainer is
    # also measured with its own bf16 switch, so the gain of the loop itself is visible.
    project_bf16 = _project_trains_in_bf16()
    if project_bf16:
        contestants["trainer_bf16"] = _trainer(rows, label_set, bf16=True)
    timings = alternate(contestants, reps=reps, warmup=1, label="finetune")
    rates = {name: round(n / timings.median(name), 2) for name in contestants}
    result: dict[str, Any] = {
        "bench": "finetune",
        "model": "minilm-l6 + LoRA classifier",
        "samples_per_rep": n,
        "batch_size": BATCH_SIZE,
        "reps": reps,
        "samples_per_s": rates,
        "seconds_median": {name: round(timings.median(name), 2) for name in contestants},
        "project_precision": "bf16" if project_bf16 else "fp32",
        "ratio_vs_trainer": ratio(rates["project"], rates["trainer"]),
        "ratio_vs_trainer_bf16": ratio(rates["project"], rates.get("trainer_bf16")),
        "env": environment(),
        "skipped": {} if project_bf16 else {"trainer_bf16": "no fast bf16 on this CPU: both sides run fp32"},
    }
    if not quick:
        from core.finetune import train_classifier

        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            report = train_classifier(list(zip(texts, labels, strict=True)), tmp, show_progress_bar=False)
            result["phrasebank_run"] = {
                "wall_time_s": round(time.perf_counter() - t0, 1),
                "best_metric": report.get("best_metric"),
                "epochs_run": len(report.get("history", [])),
                "precision": result["project_precision"],
            }
    else:
        result["skipped"]["phrasebank_run"] = "quick mode"
    seconds = result["seconds_median"]
    rows_md = [
        [f"project loop ({result['project_precision']})", rates["project"], seconds["project"]],
        ["transformers Trainer (fp32, its default)", rates["trainer"], seconds["trainer"]],
    ]
    if project_bf16:
        rows_md.append(["transformers Trainer (bf16=True)", rates["trainer_bf16"], seconds["trainer_bf16"]])
    table = markdown_table(["contestant", "samples/s", "median s per epoch"], rows_md)
    head = f"### Fine-tuning (LoRA MiniLM classifier, {n} PhraseBank sentences, batch {BATCH_SIZE})\n\n"
    write_results("finetune", result, head + table, out)
    return result

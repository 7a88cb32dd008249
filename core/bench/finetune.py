"""``aigc bench finetune``: training speed of the core loop vs transformers ``Trainer``, two tasks.

``--task classifier`` (the first section), ``--task sft`` (the second) or ``--task all`` (default: both).
The JSON keeps the classifier's keys at the top level (``samples_per_s``, ``ratio_vs_trainer``, ...)
and puts the SFT section under ``"sft"`` (same keys, plus ``tokens_per_epoch``); a task not run is
named in ``skipped``.

**Classifier.**

Both sides train the same model (MiniLM-L6 with the same LoRA settings and a mean-pooled linear head,
:class:`core.classification.TextClassifier`) on the same Financial PhraseBank sentences, batch 8, one
epoch per repetition, no evaluation or checkpoint inside the timed part. The project loop
(:func:`core.finetune.fit_classifier`, default settings) batches similar lengths together (dynamic
padding + length bucketing) and, on a CPU with fast bf16, trains under bf16 autocast
(``precision="auto"``); ``Trainer`` gets ``DataCollatorWithPadding`` (dynamic padding, its default)
over the same token ids, in fp32 (its default) and, where the project uses bf16, also with
``bf16=True``. Also reported: the wall time of the full PhraseBank run (``train_classifier`` on all 4,846
sentences, default settings) when not in quick mode.

**SFT** (LoRA supervised fine-tuning of the answer model, SmolLM2-135M-Instruct): both sides train the
same LoRA set-up (:class:`core.finetune.CausalLMTrainConfig` defaults: rank 16 on every linear layer)
from the same de-quantised base weights, on the same token ids and labels (:func:`encode_pair` of
StackFAQ title -> first-answer pairs with answers of at most 60 words, the support system prompt), batch
8, one epoch per repetition (64 pairs; 16 with ``--quick``), model loading outside the timed part.
The project loop (:func:`core.finetune.fit_causal_lm`) groups similar lengths, packs each batch's
pairs into rows without padding (positions restart per pair, attention stays inside each pair:
:func:`core.finetune.causal_lm.packed_batch`) and computes that attention pair by pair rather than
over the masked row (:mod:`core.finetune.packed_attention`), computes logits only where a response
token is predicted (:func:`core.finetune.causal_lm.answer_token_loss`), draws the LoRA dropout masks
four to a random word (:mod:`core.finetune.lora_dropout`) and uses bf16 autocast where the CPU has fast
bf16. ``Trainer`` gets its defaults (random batches, fused AdamW, the model's own loss over full
logits, SDPA attention with the padding mask) with ``DataCollatorForSeq2Seq`` (dynamic padding to the
batch's longest pair) and the same learning rate, schedule, weight decay and clipping, in fp32 (its
default) and, where the project uses bf16, also with ``bf16=True`` (autocast); see ``TRAINER_SETUP``.
"""

from __future__ import annotations

import contextlib
import logging
import os
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


TASKS = ("classifier", "sft", "all")


def run(
    reps: int = 5, quick: bool = False, out: str | Path | None = None, task: str = "all"
) -> dict[str, Any]:
    """Run the fine-tuning benchmark; returns the result dict (also written to ``out``).

    Args:
        reps: Timed repetitions per contestant.
        quick: Smaller inputs.
        out: Result directory.
        task: ``classifier``, ``sft`` or ``all``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if not has_module("transformers"):
        raise BenchSkipped("transformers is not installed")
    result: dict[str, Any] = {"bench": "finetune", "skipped": {}}
    markdown = ""
    if task in ("classifier", "all"):
        part, markdown = _run_classifier(reps, quick)
        result.update(part)
    else:
        result["skipped"]["classifier"] = f"--task {task}"
    if task in ("sft", "all"):
        result["sft"], table = _run_sft(reps, quick)
        markdown += ("\n" if markdown else "") + table
    else:
        result["skipped"]["sft"] = f"--task {task}"
    result["env"] = environment()
    write_results("finetune", result, markdown, out)
    return result


def _run_classifier(reps: int, quick: bool) -> tuple[dict[str, Any], str]:
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
        "model": "minilm-l6 + LoRA classifier",
        "samples_per_rep": n,
        "batch_size": BATCH_SIZE,
        "reps": reps,
        "samples_per_s": rates,
        "seconds_median": {name: round(timings.median(name), 2) for name in contestants},
        "project_precision": "bf16" if project_bf16 else "fp32",
        "ratio_vs_trainer": ratio(rates["project"], rates["trainer"]),
        "ratio_vs_trainer_bf16": ratio(rates["project"], rates.get("trainer_bf16")),
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
    return result, head + table


SFT_MAX_WORDS = 60


def _sft_pairs(n: int) -> list[tuple[str, str]]:
    """The first ``n`` StackFAQ (title, first answer) pairs whose answer has at most 60 words."""
    from core.bench.data import as_list, stackfaq

    pairs = []
    for item in stackfaq():
        answer = (as_list(item.get("answer")) or [""])[0].strip()
        if answer and len(answer.split()) <= SFT_MAX_WORDS:
            pairs.append((str(item["question"]).strip(), answer))
    if len(pairs) < n:
        raise BenchSkipped(f"StackFAQ has only {len(pairs)} short-answer threads, {n} needed")
    return pairs[:n]


# The answer model's system prompt in the support app (core cannot import apps; the text only sets length).
SFT_SYSTEM_PROMPT = (
    "You are a customer-support assistant for an online store. Answer the customer's question "
    "briefly, politely and factually."
)


class _SFTSetup:
    """The base model loaded once, the encoded pairs, and a fresh LoRA model per repetition."""

    def __init__(self, n: int) -> None:
        from core.finetune import CausalLMTrainConfig, encode_pair
        from core.models import DEFAULT_GENERATOR, load_causal_lm

        self.config = CausalLMTrainConfig(
            epochs=1,
            batch_size=BATCH_SIZE,
            val_fraction=0.0,
            patience=0,
            show_progress_bar=False,
            device="cpu",
            system_prompt=SFT_SYSTEM_PROMPT,
        )
        self.pairs = _sft_pairs(n)
        self.base, self.tokenizer = load_causal_lm(DEFAULT_GENERATOR, fresh=True)
        self.encoded = [
            encode_pair(self.tokenizer, q, a, self.config.max_length, self.config.system_prompt)
            for q, a in self.pairs
        ]

    def fresh_model(self) -> Any:
        import copy

        from core.lora import apply_lora
        from core.seed import set_seed

        set_seed(0)
        return apply_lora(copy.deepcopy(self.base), self.config.lora, task_type="CAUSAL_LM")


def _project_sft(setup: _SFTSetup) -> Any:
    from core.finetune import fit_causal_lm

    def run() -> None:
        model = setup.fresh_model()
        with tempfile.TemporaryDirectory() as out:
            fit_causal_lm(model, setup.tokenizer, setup.pairs, out, setup.config)

    return run


def _trainer_sft(setup: _SFTSetup, bf16: bool = False) -> Any:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    dataset = [
        {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}
        for ids, labels in setup.encoded
    ]
    config = setup.config

    def run() -> None:
        model = setup.fresh_model()
        with tempfile.TemporaryDirectory() as out:
            args = TrainingArguments(
                output_dir=out,
                per_device_train_batch_size=BATCH_SIZE,
                num_train_epochs=1,
                learning_rate=config.lr,
                weight_decay=config.weight_decay,
                warmup_steps=config.warmup_ratio,  # transformers 5: a float < 1 is a share of the steps
                max_grad_norm=config.max_grad_norm,
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
            collator = DataCollatorForSeq2Seq(setup.tokenizer, padding=True, label_pad_token_id=-100)
            trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
            with contextlib.redirect_stdout(sys.stderr):  # Trainer prints its metrics dict
                trainer.train()

    return run


#: What the ``Trainer`` contestants use, recorded in the results (a reasonable user's set-up: defaults).
TRAINER_SETUP = (
    "transformers Trainer defaults (random sampler, adamw_torch_fused, model's own loss on full logits, "
    "SDPA attention with a padding mask) + DataCollatorForSeq2Seq(padding=True, label_pad_token_id=-100); "
    "batch 8, 1 epoch, lr/weight decay/warm-up share/max_grad_norm from CausalLMTrainConfig, the same "
    "peft LoRA model; fp32 (default) and bf16=True"
)
PROJECT_SETUP = (
    "fit_causal_lm (CausalLMTrainConfig defaults): length-bucketed batches of 8 packed into rows of "
    "<= 1024 tokens, pair-by-pair attention, LM head on answer-predicting positions only, LoRA dropout "
    "masks from 16-bit random lanes, bf16 autocast where the CPU has fast bf16"
)


def _run_sft(reps: int, quick: bool) -> tuple[dict[str, Any], str]:
    """The SFT section: one epoch over StackFAQ pairs, project loop vs ``Trainer``."""
    import torch

    from core.precision import resolve_precision

    n = 16 if quick else 64
    setup = _SFTSetup(n)
    project_bf16 = resolve_precision(setup.config.precision, torch.device("cpu")) == torch.bfloat16
    contestants = {"project": _project_sft(setup), "trainer": _trainer_sft(setup)}
    if project_bf16:
        contestants["trainer_bf16"] = _trainer_sft(setup, bf16=True)
    # The 1-minute load average after each timed run: on a shared machine it says which runs competed.
    loads: dict[str, list[float]] = {name: [] for name in contestants}
    # Process CPU seconds per run: the work done, which other jobs on a shared machine change less than
    # the wall time (a thread descheduled at a join does not count; one spinning there does).
    cpu: dict[str, list[float]] = {name: [] for name in contestants}

    def with_load(name: str, fn: Any) -> Any:
        def timed() -> None:
            start = time.process_time()
            fn()
            cpu[name].append(round(time.process_time() - start, 2))
            loads[name].append(round(os.getloadavg()[0], 2))

        return timed

    load_before = os.getloadavg()
    # No warm-up round: model loading is outside the timed part, and an epoch costs minutes here.
    timings = alternate(
        {name: with_load(name, fn) for name, fn in contestants.items()},
        reps=reps,
        warmup=0,
        label="finetune-sft",
    )
    rates = {name: round(n / timings.median(name), 3) for name in contestants}
    cpu_median = {name: round(float(np.median(v)), 2) for name, v in cpu.items()}
    tokens = sum(len(ids) for ids, _ in setup.encoded)
    result: dict[str, Any] = {
        "model": "smollm2-135m-instruct + LoRA (CausalLMTrainConfig defaults)",
        "lora": {"r": setup.config.lora.r, "target_modules": list(setup.config.lora.target_modules)},
        "pairs_per_rep": n,
        "tokens_per_epoch": tokens,
        "batch_size": BATCH_SIZE,
        "reps": reps,
        "samples_per_s": rates,
        "seconds_median": {name: round(timings.median(name), 2) for name in contestants},
        "seconds_all": {name: [round(t, 2) for t in timings.runs[name]] for name in contestants},
        "project_precision": "bf16" if project_bf16 else "fp32",
        "ratio_vs_trainer": ratio(rates["project"], rates["trainer"]),
        "ratio_vs_trainer_bf16": ratio(rates["project"], rates.get("trainer_bf16")),
        # Per repetition (contestants alternate within a rep, so a rep's ratio shares its load).
        "ratio_per_rep": {
            peer: [round(t / p, 3) for p, t in zip(timings.runs["project"], timings.runs[peer], strict=True)]
            for peer in contestants
            if peer != "project"
        },
        "cpu_seconds_all": cpu,
        "cpu_seconds_median": cpu_median,
        # peer CPU seconds / project CPU seconds (as the rate ratios above: > 1 means the project is faster)
        "cpu_ratio_vs_trainer": ratio(cpu_median["trainer"], cpu_median["project"]),
        "cpu_ratio_vs_trainer_bf16": ratio(cpu_median.get("trainer_bf16"), cpu_median["project"]),
        "torch_threads": torch.get_num_threads(),
        "pack_length": setup.config.pack_length,
        "project_setup": PROJECT_SETUP,
        "trainer_setup": TRAINER_SETUP,
        "load_avg_before": load_before,
        "load_1m_after_each_run": loads,
        "load_avg": os.getloadavg(),
        "skipped": {} if project_bf16 else {"trainer_bf16": "no fast bf16 on this CPU: both sides run fp32"},
    }
    seconds = result["seconds_median"]
    rows_md = [
        [f"project loop ({result['project_precision']})", rates["project"], seconds["project"]],
        ["transformers Trainer (fp32, its default)", rates["trainer"], seconds["trainer"]],
    ]
    if project_bf16:
        rows_md.append(["transformers Trainer (bf16=True)", rates["trainer_bf16"], seconds["trainer_bf16"]])
    for row, name in zip(rows_md, contestants, strict=True):
        row.append(cpu_median[name])
    head = (
        f"### Fine-tuning (LoRA SFT of SmolLM2-135M, {n} StackFAQ pairs, {tokens} tokens, "
        f"batch {BATCH_SIZE}, {result['torch_threads']} torch threads)\n\n"
    )
    columns = ["contestant", "pairs/s", "median s per epoch", "median CPU s per epoch"]
    return result, head + markdown_table(columns, rows_md)

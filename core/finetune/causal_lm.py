"""Supervised fine-tuning of a causal LM with LoRA on (prompt, response) pairs.

Each pair is rendered with the tokenizer's chat template; the loss covers the response tokens and the
end-of-turn token only (prompt and system tokens are masked with -100). The result is a peft adapter
directory (``adapter_config.json``, ``adapter_model.safetensors``) plus an ``aigc_adapter.json``
manifest naming the base model, which :class:`core.generation.Generator` and
:func:`load_causal_lm_with_adapter` read.

Example:
    >>> report = train_causal_lm([("What are your opening hours?", "We are open 9-17, Monday to Friday.")],
    ...                          out_dir="runs/faq-lm", epochs=2, val_fraction=0)
    >>> Generator(adapter="runs/faq-lm").generate("What are your opening hours?").text
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from peft.helpers import disable_input_dtype_casting

from core.config import to_dict, write_json_atomic
from core.finetune.data import read_pairs, require_validation, split_indices
from core.finetune.loop import (
    REPORT_FILE,
    RUN_STATE,
    TrainingTask,
    fit,
    open_run_dir,
    pad,
)
from core.finetune.lora_dropout import fast_lora_dropout
from core.finetune.packed_attention import packed_attention
from core.finetune.settings import CausalLMTrainConfig, with_overrides
from core.generation import ADAPTER_MANIFEST, adapter_base_model
from core.generation.textstream import end_token_ids
from core.io.artifacts import open_artifact, sha256_file, verify_artifact, verify_files
from core.lora import apply_lora, load_adapter, settings_from_peft
from core.models import DEFAULT_GENERATOR, load_causal_lm
from core.seed import set_seed

logger = logging.getLogger(__name__)

IGNORE = -100
FORMAT_VERSION = 1
KIND = "causal-lm-adapter"


def encode_pair(
    tokenizer: Any, prompt: str, response: str, max_length: int = 512, system_prompt: str | None = None
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one pair; labels are -100 except on the response and end token.

    With a chat template the prompt is the rendered user turn (with the assistant opening) and the
    full text adds the assistant turn; without one, ``prompt + "\\n" + response + eos`` is used.
    Tokens after the response's end-of-turn token (a template's trailing newline) are dropped.

    Raises:
        ValueError: if the prompt alone fills ``max_length`` or the template renders inconsistently.
    """
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt})
    if getattr(tokenizer, "chat_template", None):
        prompt_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        full_text = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": response}], tokenize=False
        )
        if not full_text.startswith(prompt_text):
            raise ValueError("The chat template renders the prompt differently with and without the answer.")
    else:
        prompt_text = prompt + "\n"
        full_text = prompt_text + response + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    ids = tokenizer(full_text, add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids)
    if ids[:n_prompt] != prompt_ids:  # a BPE merge across the boundary: count prompt tokens by offsets
        offsets = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)[
            "offset_mapping"
        ]
        n_prompt = sum(1 for start, _ in offsets if start < len(prompt_text))
    end_ids = end_token_ids(tokenizer)
    ends = [i for i in range(n_prompt, len(ids)) if ids[i] in end_ids]
    if ends:
        ids = ids[: ends[-1] + 1]
    elif tokenizer.eos_token_id is not None:
        ids = [*ids, tokenizer.eos_token_id]
    if n_prompt >= max_length:
        raise ValueError(
            f"the prompt is {n_prompt} tokens, leaving no room for the response (max_length={max_length})."
        )
    ids = ids[:max_length]
    return ids, [IGNORE] * n_prompt + ids[n_prompt:]


def pack_rows(lengths: Sequence[int], pack_length: int) -> list[list[int]]:
    """Group sequences into rows of at most ``pack_length`` tokens (first-fit by decreasing length).

    A sequence longer than ``pack_length`` gets a row of its own. Returns the positions in
    ``lengths`` of each row's sequences (rows ordered as opened, sequences longest first).
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        row = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if row is None:
            rows.append([i])
            room.append(pack_length - lengths[i])
        else:
            rows[row].append(i)
            room[row] -= lengths[i]
    return rows


def packed_batch(
    sequences: Sequence[tuple[list[int], list[int]]], pack_length: int, pad_id: int
) -> dict[str, Any]:
    """One batch of ``(ids, labels)`` pairs packed into rows (see :func:`pack_rows`).

    Each pair's ``position_ids`` restart at 0, and no ``attention_mask`` is passed: transformers then
    reads the restarts as packed sequences and masks attention block-diagonally (causal within each
    pair, nothing across pairs), so every token sees exactly what it would see alone. The first label
    of every pair is -100, so no position predicts the next pair's first token; the tail of a short
    row is padding in a segment of its own, with -100 labels. The mean loss over the labelled tokens
    is therefore that of the padded batch, up to float rounding (tested). :func:`answer_token_loss`
    computes that same attention pair by pair instead of over the masked row
    (:mod:`core.finetune.packed_attention`).
    """
    rows = pack_rows([len(ids) for ids, _ in sequences], pack_length)
    width = max(sum(len(sequences[i][0]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            ids, labs = sequences[i]
            end = start + len(ids)
            input_ids[r, start:end] = torch.as_tensor(ids)
            labels[r, start:end] = torch.as_tensor(labs)
            labels[r, start] = IGNORE
            positions[r, start:end] = torch.arange(len(ids))
            start = end
        positions[r, start:] = torch.arange(width - start)  # padding: a segment of its own
    return {"input_ids": input_ids, "position_ids": positions, "labels": labels}


def answer_token_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of the labelled (response) tokens, with logits computed only where needed.

    Equal to ``model(**batch).loss`` (labels shifted by one, -100 ignored), but the LM head runs only at
    the positions that predict a labelled token (``logits_to_keep`` as a boolean mask): prompt and
    padding positions skip the vocabulary projection and its softmax, a fifth of a small model's
    compute per token (SmolLM2-135M: a 576 x 49,152 head over 106M other weights). A packed batch
    (``position_ids`` and no ``attention_mask``) attends pair by pair
    (:func:`~core.finetune.packed_attention.packed_attention`, same outputs as the block-diagonal
    mask), and in training the LoRA dropout draws its masks four elements per random word
    (:func:`~core.finetune.lora_dropout.fast_lora_dropout`, same rate and scaling).
    """
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    # Under autocast peft would cast each LoRA input back to the adapter's fp32 before its dropout (an
    # extra copy per adapted layer, and fp32 dropout), only for autocast to cast it to bf16 again for
    # the product; leaving it as it comes gives the same products (15 % of a training step here).
    packed = "position_ids" in inputs and "attention_mask" not in inputs
    with (
        disable_input_dtype_casting(model, active=torch.is_autocast_enabled(labels.device.type)),
        packed_attention(model, active=packed),  # attention pair by pair, not over the masked row
        fast_lora_dropout(model, active=model.training),  # a quarter of the random draws
    ):
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    logits = logits.reshape(-1, logits.shape[-1])  # (labelled tokens, vocabulary)
    return torch.nn.functional.cross_entropy(logits.float(), labels[:, 1:][keep[:, :-1]])


def causal_lm_task(
    model: Any, tokenizer: Any, pairs: Sequence[tuple[str, str]], config: CausalLMTrainConfig
) -> TrainingTask:
    """Build the :class:`~core.finetune.loop.TrainingTask` for SFT of ``model`` (a peft model) on ``pairs``.

    Raises:
        ValueError: naming the pair whose prompt does not fit ``config.max_length``.
    """
    encoded = []
    for i, (prompt, response) in enumerate(pairs, start=1):
        try:
            encoded.append(encode_pair(tokenizer, prompt, response, config.max_length, config.system_prompt))
        except ValueError as err:
            raise ValueError(f"pair {i}: {err}") from err
    train, val = split_indices(len(encoded), config.val_fraction, config.val_split_seed)
    require_validation(val, len(encoded), config.val_fraction, "the training pairs")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def collate(rows: Sequence[int]) -> dict[str, torch.Tensor]:
        if config.pack_length > 0:
            return packed_batch([encoded[i] for i in rows], config.pack_length, pad_id)
        ids = [encoded[i][0] for i in rows]
        input_ids = pad(ids, pad_id)
        lengths = torch.tensor([len(s) for s in ids])
        mask = (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()
        return {
            "input_ids": input_ids,
            "attention_mask": mask,
            "labels": pad([encoded[i][1] for i in rows], IGNORE),
        }

    def loss(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return answer_token_loss(model, batch)

    def evaluate() -> dict[str, float]:
        device = next(model.parameters()).device
        order = sorted(val, key=lambda i: len(encoded[i][0]))
        total, count = 0.0, 0
        for start in range(0, len(order), config.eval_batch_size):
            batch = {
                k: v.to(device) for k, v in collate(order[start : start + config.eval_batch_size]).items()
            }
            n = int((batch["labels"][:, 1:] != IGNORE).sum())  # the model shifts labels by one
            total, count = total + float(answer_token_loss(model, batch)) * n, count + n
        mean = total / max(count, 1)
        return {"loss": mean, "perplexity": math.exp(min(mean, 50.0))}

    logger.info("SFT data", extra={"pairs": len(encoded), "train": len(train), "val": len(val)})
    return TrainingTask(
        model=model,
        lengths=[len(encoded[i][0]) for i in train],
        collate=lambda rows: collate([train[r] for r in rows]),
        loss=loss,
        evaluate=evaluate if val else None,
        metric="loss",
        greater_is_better=False,
        val_size=len(val),
    )


def fit_causal_lm(
    model: Any,
    tokenizer: Any,
    pairs: Any,
    run_dir: str | Path,
    config: CausalLMTrainConfig | None = None,
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train a peft-wrapped causal LM in place on (prompt, response) pairs; return the run report.

    Args:
        model: A ``PeftModel`` (see :func:`core.lora.apply_lora` with ``task_type="CAUSAL_LM"``).
        tokenizer: Its tokenizer (with a chat template, ideally).
        pairs: Pairs or a file/DataFrame (see :func:`~core.finetune.data.read_pairs`).
        run_dir: Run directory for the checkpoint, TensorBoard events and ``report.json``.
        config: Training settings (default :class:`CausalLMTrainConfig`; ``lora`` is not used here).
        resume_from: Resume checkpoint (see :func:`~core.finetune.loop.fit`).
        on_epoch_end: Called with each epoch's metrics.
    """
    config = config or CausalLMTrainConfig()
    task = causal_lm_task(model, tokenizer, read_pairs(pairs), config)
    return fit(task, config, run_dir, resume_from=resume_from, on_epoch_end=on_epoch_end)


def save_causal_lm_adapter(
    model: Any,
    out_dir: str | Path,
    base_model: str,
    config: CausalLMTrainConfig | None = None,
    report: dict[str, Any] | None = None,
) -> Path:
    """Save a peft causal-LM adapter with an ``aigc_adapter.json`` manifest naming ``base_model``.

    Only the adapter is written (a GGUF-origin base cannot ``save_pretrained``; its adapter can). The
    directory is an artifact (:func:`core.io.artifacts.open_artifact`): built aside and swapped in whole,
    a training run's checkpoint and report carried over; another kind is refused.

    Returns:
        ``out_dir``.

    Raises:
        core.io.artifacts.ArtifactError: ``out_dir`` must not be written.
    """
    out_dir = Path(out_dir)
    config = config or CausalLMTrainConfig()
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "base_model": str(base_model),
        "system_prompt": config.system_prompt,
        "lora": to_dict(settings_from_peft(model.peft_config["default"].to_dict())),
        "seed": config.seed,
        "metrics": {k: report[k] for k in ("metric", "best_metric", "best_epoch", "train_size", "val_size")}
        if report
        else None,
        "train_config": to_dict(config),
    }
    with open_artifact(out_dir, KIND, version=FORMAT_VERSION, unhashed=RUN_STATE, update=True) as out:
        model.save_pretrained(str(out), safe_serialization=True)
        (out / "README.md").unlink(missing_ok=True)  # peft's model card template
        weights = ("adapter_config.json", "adapter_model.safetensors")
        manifest["files"] = {name: sha256_file(out / name) for name in weights if (out / name).is_file()}
        (out / ADAPTER_MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    logger.info("Saved causal-LM adapter", extra={"path": str(out_dir), "base_model": str(base_model)})
    return out_dir


def train_causal_lm(
    pairs: Any,
    out_dir: str | Path,
    model: str = DEFAULT_GENERATOR,
    config: CausalLMTrainConfig | None = None,
    prompt_column: str = "prompt",
    response_column: str = "response",
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter for a causal LM on (prompt, response) pairs and save it to ``out_dir``.

    Args:
        pairs: ``[(prompt, response), ...]``, a DataFrame, or a CSV/TSV/JSONL/JSON file with
            ``prompt`` and ``response`` columns.
        out_dir: Adapter directory (load it with :func:`load_causal_lm_with_adapter` or
            ``Generator(adapter=out_dir)``); the run's checkpoint, TensorBoard events and
            ``report.json`` go there too.
        model: Base model spec (default SmolLM2-135M-Instruct), recorded in ``aigc_adapter.json``.
        config: Training settings (default :class:`CausalLMTrainConfig`).
        prompt_column: Column of the prompts.
        response_column: Column of the responses.
        resume_from: Continue an interrupted run: a checkpoint directory, or ``True`` for ``out_dir``'s.
        on_epoch_end: Called with each epoch's metrics.
        **overrides: Replace fields of ``config``, e.g. ``epochs=2``.

    Returns:
        The run report (metric: validation loss per response token).

    Raises:
        FileNotFoundError: if ``pairs`` is a path that does not exist.
        ValueError: naming the file and row of an empty prompt/response, or an unknown config field.
    """
    config = with_overrides(config or CausalLMTrainConfig(), overrides)
    pairs = read_pairs(pairs, prompt_column, response_column)
    set_seed(config.seed)  # LoRA initialisation
    base, tokenizer = load_causal_lm(model, fresh=True)  # fresh: peft rewrites the modules in place
    peft_model = apply_lora(base, config.lora, task_type="CAUSAL_LM")
    with open_run_dir(out_dir, KIND, FORMAT_VERSION, resume=bool(resume_from)) as run_dir:
        report = fit_causal_lm(peft_model, tokenizer, pairs, run_dir, config, resume_from, on_epoch_end)
        save_causal_lm_adapter(peft_model, run_dir, model, config, report)
        report.update(base_model=str(model), output_dir=str(out_dir))
        write_json_atomic(run_dir / REPORT_FILE, report)
    return report


def load_causal_lm_with_adapter(
    adapter_dir: str | Path, merge: bool = False, device: str | torch.device | None = None
) -> tuple[Any, Any]:
    """Load the base model named by an adapter directory and apply the adapter.

    Args:
        adapter_dir: A directory written by :func:`train_causal_lm` (or any peft LoRA adapter whose
            ``adapter_config.json`` names a loadable base model).
        merge: Merge the LoRA weights into the base (faster inference, no further training).
        device: Move the model there.

    Returns:
        ``(model, tokenizer)`` in eval mode; ``model`` is a ``PeftModel`` unless ``merge``.

    Raises:
        FileNotFoundError: if the directory or its adapter files are missing.
        ValueError: if a file does not match the manifest's checksum.
    """
    adapter_dir = Path(adapter_dir)
    artifact = verify_artifact(adapter_dir)
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"Adapter directory '{adapter_dir}' does not exist.")
    base_spec = adapter_base_model(adapter_dir)
    manifest_path = adapter_dir / ADAPTER_MANIFEST
    if artifact is None and manifest_path.is_file():
        verify_files(adapter_dir, json.loads(manifest_path.read_text()).get("files") or {}, ADAPTER_MANIFEST)
    base, tokenizer = load_causal_lm(base_spec, fresh=True)
    model = load_adapter(base, adapter_dir, merge=merge)
    if device is not None:
        model.to(device)
    return model.eval(), tokenizer

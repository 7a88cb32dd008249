"""The shared fine-tuning loop: :func:`fit` trains any :class:`TrainingTask` in place.

AdamW on the trainable parameters only, linear warm-up then linear or cosine decay (see
:func:`lr_factor`), gradient accumulation and clipping, length-bucketed batches with dynamic padding,
bf16 autocast for the training forward pass where the CPU runs bf16 fast (``precision="auto"``;
the weights, gradients and optimizer state stay fp32),
the task metric on the validation split after each epoch (under ``torch.inference_mode``), early
stopping with patience, the best epoch's weights restored at the end, a resume checkpoint after every
epoch, TensorBoard scalars and a final ``report.json``.

A run directory holds::

    report.json        epochs run, best epoch and metric, sizes, wall time (epochs, evaluation and
                       checkpoints; not model loading), samples/s of training, seed, config
    tensorboard/       event files: train/loss, lr (per optimizer step), train/epoch_loss, val/* (per epoch)
    checkpoint/        resume state: trainable.safetensors, best.safetensors, optimizer.pt, trainer_state.json

Resuming reproduces an uninterrupted run: batch order and dropout are seeded per epoch, and the
checkpoint holds the trainable weights, the optimizer and scheduler state and the loop counters.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from core.atomic import atomic_directory
from core.config import to_dict, write_json_atomic
from core.failpoints import failpoint
from core.finetune.settings import TrainConfig
from core.io.artifacts import clean_leftovers, open_artifact, recover
from core.lora import load_trainable_state, trainable_state_dict
from core.precision import resolve_precision
from core.progress import progress_bar
from core.seed import set_seed

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
REPORT_FILE = "report.json"
TENSORBOARD_DIR = "tensorboard"
_STATE_FILE = "trainer_state.json"
#: What a run leaves beside the model: not hashed in artifact manifests, carried over by a new save.
RUN_STATE = (CHECKPOINT_DIR, TENSORBOARD_DIR, REPORT_FILE)


@dataclass
class TrainingTask:
    """What :func:`fit` needs from a task.

    Attributes:
        model: The module to train; only parameters with ``requires_grad`` are optimised and checkpointed.
        lengths: Token count of each training example (batches group similar lengths).
        collate: Indices of training examples -> a batch of tensors.
        loss: A batch (already on the device) -> scalar loss.
        evaluate: Metrics on the validation split (run under ``torch.inference_mode``); ``None`` when
            there is no validation split.
        metric: Key of ``evaluate()``'s result that selects the best epoch.
        greater_is_better: Direction of ``metric``.
        val_size: Number of validation examples (for the report).
        param_groups: Optional optimizer groups ``[{"params": [...], "lr": ...}]``; default: every
            trainable parameter at ``config.lr``.
    """

    model: torch.nn.Module
    lengths: Sequence[int]
    collate: Callable[[Sequence[int]], dict[str, Any]]
    loss: Callable[[dict[str, Any]], torch.Tensor]
    evaluate: Callable[[], dict[str, float]] | None
    metric: str
    greater_is_better: bool
    val_size: int = 0
    param_groups: list[dict[str, Any]] | None = None


@dataclass
class _State:
    epoch: int = 0
    global_step: int = 0
    best_metric: float | None = None
    best_val_loss: float | None = None
    best_epoch: int | None = None
    bad_epochs: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    wall_seconds: float = 0.0
    samples_seen: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def epoch_batches(
    lengths: Sequence[int], batch_size: int, seed: int, bucket_batches: int = 32
) -> list[list[int]]:
    """Shuffled batches of similar-length examples (deterministic for a seed).

    The examples are shuffled, cut into chunks of ``batch_size * bucket_batches``, sorted by length
    within each chunk and batched; the batch order is shuffled again so lengths do not trend.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths)).tolist()
    chunk = batch_size * bucket_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[j : j + batch_size] for j in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """Right-pad integer sequences to the longest one: ``(len(sequences), max_len)`` long tensor."""
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out


def _to(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (_to(v, device) if isinstance(v, Mapping) else v.to(device)) for k, v in batch.items()}


def _optimizer(task: TrainingTask, config: TrainConfig) -> torch.optim.Optimizer:
    groups = task.param_groups or [{"params": [p for p in task.model.parameters() if p.requires_grad]}]
    split: list[dict[str, Any]] = []
    for group in groups:
        params = [p for p in group["params"] if p.requires_grad]
        lr = group.get("lr", config.lr)
        # Decay matrices only; biases and norms stay undecayed, as usual for AdamW fine-tuning.
        split.append(
            {"params": [p for p in params if p.ndim >= 2], "lr": lr, "weight_decay": config.weight_decay}
        )
        split.append({"params": [p for p in params if p.ndim < 2], "lr": lr, "weight_decay": 0.0})
    split = [g for g in split if g["params"]]
    if not split:
        raise ValueError("The model has no trainable parameters.")
    # The fused kernel: on CPU torch otherwise updates tensor by tensor, which took a quarter of a full
    # fine-tune step of the 110 M-parameter mpnet-base (7.5 s of 29.5 s; fused 1.4 s; see
    # docs/benchmarks/finance.md).
    params = [p for g in split for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(split, lr=config.lr, fused=fused or None)


def lr_factor(step: int, total: int, warmup: int, kind: str) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (0-based) out of ``total``.

    Warm-up rises linearly over ``warmup`` steps, then ``linear`` or ``cosine`` decay runs towards
    zero or ``constant`` holds. Unlike the usual schedules no step gets a zero learning rate (the first
    warm-up step and the last decay step still move the weights), which matters for short runs.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return 1.0 - progress if kind == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int) -> Any:
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_ratio * total)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, config.scheduler)
    )


def _is_better(state: _State, metric: float, val_loss: float, greater_is_better: bool) -> bool:
    if state.best_metric is None:
        return True
    if metric != state.best_metric:
        return metric > state.best_metric if greater_is_better else metric < state.best_metric
    # Ties are common on small validation sets: the lower validation loss wins.
    return state.best_val_loss is not None and val_loss < state.best_val_loss


def _checkpoint_path(run_dir: Path, resume_from: str | Path | bool) -> Path:
    path = run_dir / CHECKPOINT_DIR if resume_from is True else Path(resume_from)
    recover(path)  # a kill between the two renames of _save_checkpoint leaves the previous one aside
    if not (path / _STATE_FILE).is_file() and (path / CHECKPOINT_DIR / _STATE_FILE).is_file():
        path = path / CHECKPOINT_DIR
    if not (path / _STATE_FILE).is_file():
        raise FileNotFoundError(f"No resume checkpoint at '{path}' ({_STATE_FILE} missing).")
    return path


def _save_checkpoint(
    run_dir: Path, task: TrainingTask, opt: Any, sched: Any, state: _State, extra: dict[str, Any], best: Any
) -> None:
    target = run_dir / CHECKPOINT_DIR
    clean_leftovers(target)
    with atomic_directory(target) as tmp:
        save_file(
            {k: v.cpu() for k, v in trainable_state_dict(task.model).items()},
            str(tmp / "trainable.safetensors"),
        )
        if best is not None:
            save_file(best, str(tmp / "best.safetensors"))
        # Optimizer state is a resume-only file (as nanoGPT does); shipped artifacts are safetensors.
        torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp / "optimizer.pt")
        (tmp / _STATE_FILE).write_text(json.dumps({**state.__dict__, **extra}, indent=2, default=str) + "\n")


def _load_checkpoint(
    path: Path, task: TrainingTask, opt: Any, sched: Any, n_train: int, config: TrainConfig
) -> tuple[_State, Any]:
    saved = json.loads((path / _STATE_FILE).read_text())
    changed = sorted(
        k
        for k, v in to_dict(config).items()
        if k not in ("epochs", "show_progress_bar", "device") and saved.get("config", {}).get(k, v) != v
    )
    if changed:
        logger.warning("Resuming with changed settings", extra={"checkpoint": str(path), "changed": changed})
    state = _State(**{k: v for k, v in saved.items() if k in _State.__dataclass_fields__})
    if saved.get("train_size", n_train) != n_train:
        raise ValueError(
            f"Checkpoint {path} was trained on {saved['train_size']} examples, this run has {n_train}: "
            "resume with the same data and val_fraction."
        )
    load_trainable_state(task.model, load_file(str(path / "trainable.safetensors")))
    extra = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(extra["optimizer"])
    sched.load_state_dict(extra["scheduler"])
    best = load_file(str(path / "best.safetensors")) if (path / "best.safetensors").is_file() else None
    logger.info("Resumed from checkpoint", extra={"path": str(path), "epoch": state.epoch})
    return state, best


def _train_epoch(
    task: TrainingTask, config: TrainConfig, epoch: int, opt: Any, sched: Any, state: _State, writer: Any
) -> float:
    device = resolve_device(config.device)
    # Seeding per epoch makes dropout and batch order independent of where a run was resumed.
    torch.manual_seed(config.seed + epoch)
    batches = epoch_batches(task.lengths, config.batch_size, config.seed + epoch, config.bucket_batches)
    task.model.train()
    autocast_bf16 = resolve_precision(config.precision, device) == torch.bfloat16
    total, count, step_loss, step_batches = 0.0, 0, 0.0, 0
    bar = progress_bar(
        batches, desc=f"Epoch {epoch}/{config.epochs}", disable=not config.show_progress_bar, leave=False
    )
    for i, indices in enumerate(bar):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_bf16):
            loss = task.loss(_to(task.collate(indices), device)).float()
        (loss / config.grad_accum).backward()
        total, count = total + loss.item() * len(indices), count + len(indices)
        step_loss, step_batches = step_loss + loss.item(), step_batches + 1
        if (i + 1) % config.grad_accum == 0 or i + 1 == len(batches):
            if config.max_grad_norm > 0:
                params = [p for g in opt.param_groups for p in g["params"]]
                torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            state.global_step += 1
            writer.add_scalar("train/loss", step_loss / step_batches, state.global_step)
            step_loss, step_batches = 0.0, 0
            writer.add_scalar("lr", sched.get_last_lr()[0], state.global_step)
        bar.set_postfix(loss=f"{total / count:.4f}")
    state.samples_seen += count
    return total / max(count, 1)


def fit(
    task: TrainingTask,
    config: TrainConfig,
    run_dir: str | Path,
    resume_from: str | Path | bool | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train ``task.model`` in place and leave the best epoch's weights in it.

    Args:
        task: The model, data access and metric (see :class:`TrainingTask`).
        config: Loop settings.
        run_dir: Where the checkpoint, TensorBoard events and ``report.json`` go.
        resume_from: A checkpoint directory (or a run directory holding ``checkpoint/``), or ``True``
            for ``run_dir``'s own checkpoint: training continues after the last finished epoch.
        on_epoch_end: Called with each epoch's history row after its checkpoint is written.

    Returns:
        The report (also written to ``run_dir/report.json``).
    """
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_seed(config.seed)
    device = resolve_device(config.device)
    task.model.to(device)
    n_train = len(task.lengths)
    if n_train == 0:
        raise ValueError("The training split is empty.")
    steps_per_epoch = math.ceil(math.ceil(n_train / config.batch_size) / config.grad_accum)
    opt = _optimizer(task, config)
    sched = _scheduler(opt, config, steps_per_epoch)
    state, best = _State(), None
    if not resume_from:  # a new run replaces an earlier run's logs and checkpoint in the same directory
        for name in (TENSORBOARD_DIR, CHECKPOINT_DIR):
            shutil.rmtree(run_dir / name, ignore_errors=True)
    else:
        path = _checkpoint_path(run_dir, resume_from)
        state, best = _load_checkpoint(path, task, opt, sched, n_train, config)
    start = time.perf_counter()
    writer = SummaryWriter(
        str(run_dir / TENSORBOARD_DIR), purge_step=state.global_step + 1 if resume_from else None
    )
    try:
        for epoch in range(state.epoch + 1, config.epochs + 1):
            if state.stopped_early:
                break
            tick = time.perf_counter()
            row: dict[str, float] = {
                "epoch": epoch,
                "train_loss": _train_epoch(task, config, epoch, opt, sched, state, writer),
            }
            state.train_seconds += time.perf_counter() - tick
            writer.add_scalar("train/epoch_loss", row["train_loss"], epoch)
            if task.evaluate is not None:
                task.model.eval()
                with torch.inference_mode():
                    metrics = task.evaluate()
                if task.metric not in metrics:
                    raise ValueError(
                        f"evaluate() returned {sorted(metrics)}, without the metric '{task.metric}'."
                    )
                row.update({f"val_{key}": value for key, value in metrics.items()})
                for key, value in metrics.items():
                    writer.add_scalar(f"val/{key}", value, epoch)
                if _is_better(
                    state, metrics[task.metric], metrics.get("loss", math.nan), task.greater_is_better
                ):
                    state.best_metric, state.best_val_loss = metrics[task.metric], metrics.get("loss")
                    state.best_epoch, state.bad_epochs = epoch, 0
                    best = {k: v.cpu() for k, v in trainable_state_dict(task.model).items()}
                else:
                    state.bad_epochs += 1
                state.stopped_early = config.patience > 0 and state.bad_epochs >= config.patience
            state.epoch = epoch
            state.history.append(row)
            state.wall_seconds += time.perf_counter() - tick
            _save_checkpoint(
                run_dir, task, opt, sched, state, {"train_size": n_train, "config": to_dict(config)}, best
            )
            failpoint("train.after_checkpoint")
            logger.info("Epoch done", extra={"run_dir": str(run_dir), **row})
            if on_epoch_end is not None:
                on_epoch_end(dict(row))
    finally:
        writer.close()
    if best is not None:
        load_trainable_state(task.model, best)
    task.model.eval()
    report = _report(task, config, state, n_train, resumed=bool(resume_from))
    write_json_atomic(run_dir / REPORT_FILE, report)
    logger.info(
        "Training finished",
        extra={
            "run_dir": str(run_dir),
            "best_epoch": state.best_epoch,
            "elapsed_s": time.perf_counter() - start,
        },
    )
    return report


def _report(
    task: TrainingTask, config: TrainConfig, state: _State, n_train: int, resumed: bool
) -> dict[str, Any]:
    last = state.history[-1] if state.history else {}
    return {
        "epochs_run": state.epoch,
        "best_epoch": state.best_epoch if task.evaluate is not None else state.epoch,
        "metric": task.metric if task.evaluate is not None else "train_loss",
        "best_metric": state.best_metric if task.evaluate is not None else last.get("train_loss"),
        "stopped_early": state.stopped_early,
        "resumed": resumed,
        "train_size": n_train,
        "val_size": task.val_size,
        "optimizer_steps": state.global_step,
        "wall_time_s": round(state.wall_seconds, 3),
        "train_time_s": round(state.train_seconds, 3),
        "samples_per_s": round(state.samples_seen / state.train_seconds, 2) if state.train_seconds else None,
        "seed": config.seed,
        "device": str(resolve_device(config.device)),
        "history": state.history,
        "config": to_dict(config),
    }


def open_run_dir(out_dir: str | Path, kind: str, version: int, resume: bool) -> AbstractContextManager[Path]:
    """The artifact directory a training run fills (:func:`core.io.artifacts.open_artifact`).

    The run state (checkpoint, TensorBoard logs, report) is not hashed; when resuming it is carried
    over from the killed run and its checkpoint is picked up.
    """
    return open_artifact(
        out_dir,
        kind,
        version=version,
        unhashed=RUN_STATE,
        carry=RUN_STATE if resume else (),
        resumable=(CHECKPOINT_DIR,),
        resume=resume,
    )

"""LoRA settings and helpers shared by the classifier and causal-LM fine-tuning.

:class:`LoraSettings` is the typed, JSON-serialisable view of the few peft ``LoraConfig`` fields we
tune. :func:`apply_lora` wraps a model with peft (``get_peft_model``), choosing the target modules per
architecture when none are given: BERT-style encoders get ``query``/``value``, Llama-style decoders
get all four attention projections.

Example:
    >>> encoder, _ = load_encoder("minilm-l6", fresh=True)
    >>> peft_encoder = apply_lora(encoder, LoraSettings(r=8))
    >>> count_parameters(peft_encoder)[0]  # trainable parameters
    73728
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # torch loads only where a model is touched: the settings serve light CLI paths
    import torch

logger = logging.getLogger(__name__)

# Target modules per ``config.model_type``; anything else falls back to peft's own table, then to a scan.
_TARGETS: dict[str, tuple[str, ...]] = {
    "bert": ("query", "value"),
    "roberta": ("query", "value"),
    "xlm-roberta": ("query", "value"),
    "electra": ("query", "value"),
    "mpnet": ("q", "v"),
    "distilbert": ("q_lin", "v_lin"),
    "llama": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "mistral": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen2": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "qwen3": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "gemma": ("q_proj", "k_proj", "v_proj", "o_proj"),
    "phi3": ("qkv_proj", "o_proj"),
}
# Leaf names of attention projections seen across architectures, for models in neither table.
#: ``LoraSettings.target_modules`` value that adapts every linear layer but the output layer.
ALL_LINEAR = "all-linear"
_ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "query", "key", "value", "c_attn", "qkv_proj")


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA hyper-parameters we tune (a subset of peft's ``LoraConfig``)."""

    r: int = field(default=8, metadata={"help": "LoRA rank (size of the low-rank update)."})
    alpha: int = field(
        default=16, metadata={"help": "LoRA scaling numerator; the update is scaled by alpha/r."}
    )
    dropout: float = field(default=0.1, metadata={"help": "Dropout on the LoRA input during training."})
    target_modules: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Module names to adapt; empty picks the attention projections of the architecture, "
            "['all-linear'] every linear layer but the output layer."
        },
    )
    bias: Literal["none", "all", "lora_only"] = field(
        default="none", metadata={"help": "Which biases to train: none, all, or those of adapted layers."}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if self.r < 1:
            raise ValueError(f"LoraSettings.r must be >= 1, got {self.r}")
        if self.alpha <= 0:
            raise ValueError(f"LoraSettings.alpha must be > 0, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"LoraSettings.dropout must be in [0, 1), got {self.dropout}")


def target_modules_for(model: torch.nn.Module) -> list[str]:
    """The attention projection names to adapt in ``model``.

    Looks ``config.model_type`` up in our table, then in peft's, and otherwise scans the model for
    linear layers with a known attention-projection name.

    Raises:
        ValueError: if no known attention projection exists in the model.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type in _TARGETS:
        return list(_TARGETS[model_type])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    if model_type in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        return list(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
    import torch

    leaves = {
        name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)
    }
    found = [name for name in _ATTENTION_NAMES if name in leaves]
    if not found:
        raise ValueError(
            f"Cannot choose LoRA target modules for model type {model_type!r}: no known attention "
            f"projection among its linear layers {sorted(leaves)[:20]}; set lora.target_modules."
        )
    return found


def all_linear_modules(model: torch.nn.Module) -> list[str]:
    """Leaf names of every linear layer of ``model`` but its output layer (LM head or classifier).

    For a Llama-style decoder: the four attention projections and ``gate_proj``/``up_proj``/``down_proj``
    (what peft's ``"all-linear"`` picks, written out so the adapter's config names them).
    """
    import torch

    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, mod in model.named_modules()
        if isinstance(mod, torch.nn.Linear) and mod is not output and "." in name
    }
    if not names:
        raise ValueError("The model has no linear layers to adapt.")
    return sorted(names)


def resolve_settings(settings: LoraSettings, model: torch.nn.Module) -> LoraSettings:
    """``settings`` with ``target_modules`` filled in for ``model``.

    Empty: the architecture's attention projections (:func:`target_modules_for`); ``("all-linear",)``:
    every linear layer but the output layer (:func:`all_linear_modules`).
    """
    if settings.target_modules == (ALL_LINEAR,):
        return replace(settings, target_modules=tuple(all_linear_modules(model)))
    if settings.target_modules:
        return settings
    return replace(settings, target_modules=tuple(target_modules_for(model)))


def peft_config(settings: LoraSettings, model: torch.nn.Module, task_type: str | None = None) -> Any:
    """Build peft's ``LoraConfig`` for ``model`` from ``settings``.

    Args:
        settings: Our LoRA settings.
        model: The model to adapt (used to pick target modules when ``settings`` names none).
        task_type: peft task type, e.g. ``"CAUSAL_LM"``; ``None`` for a bare encoder.
    """
    from peft import LoraConfig

    settings = resolve_settings(settings, model)
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        bias=settings.bias,
        task_type=task_type,
    )


def apply_lora(model: torch.nn.Module, settings: LoraSettings, task_type: str | None = None) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter; only the adapter's parameters stay trainable.

    Load ``model`` with ``fresh=True`` first: peft rewrites its modules in place.

    Returns:
        The ``PeftModel``.
    """
    from peft import get_peft_model

    config = peft_config(settings, model, task_type)
    with _quiet_peft():
        wrapped = get_peft_model(model, config)
    trainable, total = count_parameters(wrapped)
    logger.info(
        "Applied LoRA",
        extra={
            "targets": sorted(config.target_modules),
            "r": settings.r,
            "trainable": trainable,
            "total": total,
        },
    )
    return wrapped


def load_adapter(model: torch.nn.Module, directory: str | Path, merge: bool = False) -> Any:
    """Apply the peft adapter saved in ``directory`` to ``model`` (loaded with ``fresh=True``).

    Args:
        model: The base model the adapter was trained on.
        directory: A peft adapter directory (``adapter_config.json``, ``adapter_model.safetensors``).
        merge: Merge the LoRA weights into the base and return the plain model (faster inference).

    Returns:
        A ``PeftModel``, or the merged base model when ``merge``.
    """
    from peft import PeftModel

    with _quiet_peft():
        wrapped = PeftModel.from_pretrained(model, str(directory))
    return wrapped.merge_and_unload() if merge else wrapped


@contextmanager
def _quiet_peft() -> Iterator[None]:
    # peft 0.21 calls a transformers 5 property that warns about its own deprecation on every wrap.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the trainable parameters by name (LoRA weights plus any trainable head)."""
    return {name: p.detach().clone().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` (from :func:`trainable_state_dict`) back into ``model``'s trainable parameters.

    Raises:
        ValueError: if the names or shapes differ from the model's trainable parameters.
    """
    import torch

    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"Checkpoint does not fit the model: missing {missing[:5]} ({len(missing)}), "
            f"unexpected {unexpected[:5]} ({len(unexpected)})."
        )
    with torch.no_grad():
        for name, param in params.items():
            if param.shape != state[name].shape:
                raise ValueError(
                    f"Checkpoint tensor {name} has shape {tuple(state[name].shape)}, "
                    f"model has {tuple(param.shape)}."
                )
            param.copy_(state[name])


def settings_from_peft(adapter_config: Mapping[str, Any]) -> LoraSettings:
    """Read our :class:`LoraSettings` back from a peft ``adapter_config.json`` mapping."""
    targets = adapter_config.get("target_modules") or ()
    if isinstance(targets, str):
        targets = (targets,)
    return LoraSettings(
        r=int(adapter_config.get("r", 8)),
        alpha=int(adapter_config.get("lora_alpha", 16)),
        dropout=float(adapter_config.get("lora_dropout", 0.0)),
        target_modules=tuple(sorted(targets)),
        bias=adapter_config.get("bias", "none"),
    )

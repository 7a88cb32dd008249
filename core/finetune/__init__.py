"""LoRA fine-tuning of text classifiers and causal LMs over one shared training loop.

* :func:`train_classifier` — labelled texts (CSV, DataFrame, tuples) -> a saved
  :class:`~core.classification.TextClassifier` directory;
* :func:`train_causal_lm` — (prompt, response) pairs -> a peft adapter directory for a causal LM,
  trained on the response tokens only; :func:`load_causal_lm_with_adapter` loads it back;
* :func:`train_contrastive` — (query, item) pairs with in-batch and hard negatives -> a LoRA adapter
  of a text encoder (InfoNCE, popularity-corrected logits; see :mod:`core.finetune.contrastive`);
* :func:`fit` — the loop they all use (see :mod:`core.finetune.loop`).

Example:
    >>> from core.finetune import train_classifier
    >>> report = train_classifier("reviews.csv", out_dir="runs/reviews", model="minilm-l6", epochs=3)
    >>> report["best_metric"]
    1.0
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names load from their module on first use (PEP 562), so ``from core.finetune import TrainConfig``
# (an app's settings) imports neither torch nor peft; the training functions load them.
_EXPORTS: dict[str, str] = {
    "CausalLMTrainConfig": "settings",
    "ClassifierTrainConfig": "settings",
    "ContrastiveTrainConfig": "settings",
    "TrainConfig": "settings",
    "with_overrides": "settings",
    "LabelledTexts": "data",
    "read_labelled_texts": "data",
    "read_pairs": "data",
    "split_indices": "data",
    "TrainingTask": "loop",
    "epoch_batches": "loop",
    "fit": "loop",
    "causal_lm_task": "causal_lm",
    "encode_pair": "causal_lm",
    "fit_causal_lm": "causal_lm",
    "load_causal_lm_with_adapter": "causal_lm",
    "save_causal_lm_adapter": "causal_lm",
    "train_causal_lm": "causal_lm",
    "classifier_task": "classifier",
    "fit_classifier": "classifier",
    "layer_lr_groups": "classifier",
    "split_rows": "classifier",
    "train_classifier": "classifier",
    "ContrastivePairs": "contrastive",
    "contrastive_task": "contrastive",
    "train_contrastive": "contrastive",
}

if TYPE_CHECKING:
    from core.finetune.causal_lm import (
        causal_lm_task,
        encode_pair,
        fit_causal_lm,
        load_causal_lm_with_adapter,
        save_causal_lm_adapter,
        train_causal_lm,
    )
    from core.finetune.classifier import (
        classifier_task,
        fit_classifier,
        layer_lr_groups,
        split_rows,
        train_classifier,
    )
    from core.finetune.contrastive import ContrastivePairs, contrastive_task, train_contrastive
    from core.finetune.data import LabelledTexts, read_labelled_texts, read_pairs, split_indices
    from core.finetune.loop import TrainingTask, epoch_batches, fit
    from core.finetune.settings import (
        CausalLMTrainConfig,
        ClassifierTrainConfig,
        ContrastiveTrainConfig,
        TrainConfig,
        with_overrides,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "CausalLMTrainConfig",
    "ClassifierTrainConfig",
    "ContrastivePairs",
    "ContrastiveTrainConfig",
    "LabelledTexts",
    "TrainConfig",
    "TrainingTask",
    "causal_lm_task",
    "classifier_task",
    "contrastive_task",
    "encode_pair",
    "epoch_batches",
    "fit",
    "fit_causal_lm",
    "fit_classifier",
    "layer_lr_groups",
    "load_causal_lm_with_adapter",
    "read_labelled_texts",
    "read_pairs",
    "save_causal_lm_adapter",
    "split_indices",
    "split_rows",
    "train_causal_lm",
    "train_classifier",
    "train_contrastive",
    "with_overrides",
]

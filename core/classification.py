"""Text classification: a pretrained encoder, optional LoRA adapter, and one or more linear heads.

:class:`TextClassifier` pools the encoder's token states (mean or ``[CLS]``) and feeds them to one
linear head per label set, so several tasks (say sentiment and topic) share one encoder pass.
Predictions come back as label strings; probabilities use a per-head temperature that
:meth:`TextClassifier.calibrate_temperature` fits on held-out data (temperature scaling, Guo et al. 2017).

Saved layout (see :meth:`TextClassifier.save_pretrained`)::

    config.json                 base model id, heads and labels, pooling, temperatures, LoRA settings,
                                seed and resolved training config, sha256 of each weight file
    adapter_model.safetensors   peft adapter of the encoder (with adapter_config.json); absent without LoRA
    heads.safetensors           head weights
    metrics.json                validation metrics, when trained

Example:
    >>> clf = TextClassifier.from_pretrained("runs/reviews")
    >>> clf.predict(["The battery died after two days"])
    ['negative']
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from core.batching import map_ordered, token_batches
from core.config import from_dict, to_dict
from core.io.artifacts import (
    open_artifact,
    read_kind_json,
    recover,
    sha256_file,
    verify_artifact,
    verify_files,
)
from core.lora import LoraSettings, apply_lora, load_adapter, resolve_settings
from core.metrics import softmax
from core.models import load_encoder
from core.precision import InferencePrecision
from core.progress import progress_bar

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "text-classifier"
CONFIG_FILE = "config.json"
HEADS_FILE = "heads.safetensors"
METRICS_FILE = "metrics.json"
ENCODER_FILE = "encoder.safetensors"  # all encoder weights of a fully fine-tuned classifier
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
DEFAULT_HEAD = "label"
Pooling = Literal["mean", "cls"]


def fit_temperature(logits: np.ndarray, targets: Sequence[int], max_iter: int = 100) -> float:
    """Fit one temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` (LBFGS on log T).

    Args:
        logits: ``(n, n_classes)`` uncalibrated logits of held-out examples.
        targets: The true class index of each row.
        max_iter: LBFGS iterations.

    Returns:
        The temperature, clamped to ``[0.05, 100]``.

    Raises:
        ValueError: on empty input, mismatched lengths or out-of-range targets.
    """
    scores = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    y = torch.as_tensor(np.asarray(targets, dtype=np.int64))
    if scores.ndim != 2 or len(scores) == 0:
        raise ValueError(f"logits must be a non-empty (n, n_classes) array, got shape {tuple(scores.shape)}")
    if len(y) != len(scores):
        raise ValueError(f"{len(scores)} logit rows but {len(y)} targets; they must match one to one.")
    if y.min() < 0 or y.max() >= scores.shape[1]:
        raise ValueError(f"targets must lie in [0, {scores.shape[1] - 1}]")
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(scores / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 100.0))


def _check_heads(heads: Mapping[str, Sequence[str]] | Sequence[str]) -> dict[str, list[str]]:
    if not isinstance(heads, Mapping):
        heads = {DEFAULT_HEAD: list(heads)}
    if not heads:
        raise ValueError("heads is empty: give {head_name: [label, ...]} with at least one head.")
    checked: dict[str, list[str]] = {}
    for name, labels in heads.items():
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"Head name {name!r} must be a non-empty string without dots.")
        labels = [str(label) for label in labels]
        if len(labels) < 2 or any(not label for label in labels) or len(set(labels)) != len(labels):
            raise ValueError(f"Head {name!r} needs at least two distinct, non-empty labels, got {labels}.")
        checked[name] = labels
    return checked


class HeadPredictions:
    """Predictions of a model with named classification heads, from its calibrated probabilities.

    A subclass sets ``head_labels`` (``{head: [label, ...]}``) and implements
    :meth:`head_probabilities`; :class:`TextClassifier` and
    :class:`core.classifier_ensemble.ClassifierEnsemble` share these methods.
    """

    head_labels: dict[str, list[str]]

    @property
    def head_names(self) -> list[str]:
        """Head names in order."""
        return list(self.head_labels)

    def labels(self, head: str | None = None) -> list[str]:
        """Labels of ``head`` in column order of :meth:`predict_proba`."""
        return list(self.head_labels[self._head(head)])

    def _head(self, head: str | None) -> str:
        if head is None:
            if len(self.head_labels) > 1:
                raise ValueError(f"This classifier has several heads; pass head= one of {self.head_names}.")
            return self.head_names[0]
        if head not in self.head_labels:
            raise ValueError(f"Unknown head {head!r}; heads: {self.head_names}")
        return head

    def head_probabilities(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities of every head: ``{head: (len(texts), n_labels)}`` float32."""
        raise NotImplementedError

    def predict_proba(
        self,
        texts: Sequence[str],
        head: str | None = None,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Calibrated class probabilities of ``head``, columns in :meth:`labels` order.

        Args:
            texts: Texts to classify.
            head: Head name; may be omitted when there is one head.
            batch_size: Texts per forward pass.
            show_progress_bar: Show a tqdm bar.

        Returns:
            ``(len(texts), n_labels)`` float32 array whose rows sum to 1.
        """
        name = self._head(head)
        return self.head_probabilities(texts, batch_size, show_progress_bar)[name]

    def predict(
        self,
        texts: Sequence[str],
        head: str | None = None,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> list[str]:
        """The most likely label of each text (see :meth:`predict_proba` for the arguments)."""
        name = self._head(head)
        labels = self.head_labels[name]
        return [labels[i] for i in self.predict_proba(texts, name, batch_size, show_progress_bar).argmax(1)]

    def predict_all(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
    ) -> dict[str, list[str]]:
        """Labels of every head from one pass: ``{head: [label, ...]}``."""
        probs = self.head_probabilities(texts, batch_size, show_progress_bar)
        return {h: [self.head_labels[h][i] for i in p.argmax(axis=1)] for h, p in probs.items()}


class TextClassifier(HeadPredictions, torch.nn.Module):
    """A transformer encoder with pooled linear classification heads.

    Args:
        base_model: Encoder spec (see :mod:`core.models`; e.g. ``"minilm-l6"``), recorded as given in
            ``config.json``.
        heads: ``{head_name: [label, ...]}``, or a plain list of labels for one head named ``"label"``.
        pooling: ``"mean"`` over non-padding tokens, or the ``"cls"`` token state.
        max_length: Longest input in tokens; longer texts are truncated.
        lora: Wrap the encoder with a fresh LoRA adapter (to fine-tune it); ``None`` keeps the
            encoder frozen, so only the heads train (unless ``full_finetune``).
        full_finetune: Train every encoder weight (no LoRA). The saved directory then holds the whole
            encoder (``encoder.safetensors``, ~90 MB for MiniLM) instead of a small adapter.
        dropout: Dropout on the pooled vector during training.
        temperatures: Per-head softmax temperature (default 1.0 each).

    Attributes:
        inference_workers: Forward passes run at once, each on its own thread (CPU only; default 1).
            With torch's intra-op threads at 1, ``n`` workers keep ``n`` cores busy on a batch of
            ``n`` or more passes, and give the same logits as one worker (the passes are the same).
    """

    def __init__(
        self,
        base_model: str,
        heads: Mapping[str, Sequence[str]] | Sequence[str],
        pooling: Pooling = "mean",
        max_length: int = 256,
        lora: LoraSettings | None = None,
        dropout: float = 0.1,
        temperatures: Mapping[str, float] | None = None,
        full_finetune: bool = False,
    ) -> None:
        super().__init__()
        if full_finetune and lora is not None:
            raise ValueError("full_finetune trains every encoder weight; it cannot be combined with lora")
        self._build(base_model, heads, pooling, max_length, dropout, temperatures)
        self.lora = resolve_settings(lora, self.encoder) if lora is not None else None
        if self.lora is not None:
            self.encoder = apply_lora(self.encoder, self.lora)
        self.full_finetune = bool(full_finetune)
        if self.full_finetune:
            self.encoder.requires_grad_(True)
        self.eval()

    def _build(
        self,
        base_model: str,
        heads: Mapping[str, Sequence[str]] | Sequence[str],
        pooling: str,
        max_length: int,
        dropout: float,
        temperatures: Mapping[str, float] | None,
    ) -> None:
        self.head_labels = _check_heads(heads)
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        unknown = set(temperatures or {}) - set(self.head_labels)
        if unknown:
            raise ValueError(f"temperatures name unknown heads {sorted(unknown)}; heads: {self.head_names}")
        self.base_model, self.pooling, self.max_length = str(base_model), pooling, int(max_length)
        self.temperatures = {h: float((temperatures or {}).get(h, 1.0)) for h in self.head_labels}
        if any(not t > 0 for t in self.temperatures.values()):
            raise ValueError(f"temperatures must be > 0, got {self.temperatures}")
        self.lora: LoraSettings | None = None
        self.full_finetune = False
        self.metrics: dict[str, Any] | None = None
        self.train_config: dict[str, Any] | None = None
        self.seed: int | None = None
        self._saved_adapter: dict[str, bytes] | None = None  # adapter files of a merged encoder
        # Forward passes run at once on this many threads (CPU inference; see inference_workers).
        self.inference_workers = 1
        # fresh=True: LoRA rewrites modules and training (or .to(device)) changes weights; the cached
        # copy is shared with other callers and must stay as it is.
        self.encoder, self.tokenizer = load_encoder(self.base_model, fresh=True)
        self.encoder.requires_grad_(False)
        self.dropout = torch.nn.Dropout(dropout)
        hidden = self.encoder.config.hidden_size
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(hidden, len(labels)) for name, labels in self.head_labels.items()}
        )
        # Zero-initialised heads start from uniform predictions (a logistic regression's usual start),
        # so the first steps follow the data rather than a random projection.
        for layer in self.heads.values():
            torch.nn.init.zeros_(layer.weight)
            torch.nn.init.zeros_(layer.bias)

    # --- structure -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.heads.parameters()).device

    # --- forward ---------------------------------------------------------------------------------

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Uncalibrated logits ``{head: (batch, n_labels)}`` for a tokenised batch."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        hidden = hidden.float()  # a bf16 inference encoder still pools and classifies in fp32
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        pooled = self.dropout(pooled)
        return {name: layer(pooled) for name, layer in self.heads.items()}

    def _logits(
        self, texts: Sequence[str], heads: Sequence[str], batch_size: int, show_progress_bar: bool
    ) -> dict[str, np.ndarray]:
        if isinstance(texts, str):
            raise ValueError("texts must be a list of strings (wrap a single text in a list).")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of strings (wrap a single text in a list).")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        out = {h: np.zeros((len(texts), len(self.head_labels[h])), dtype=np.float32) for h in heads}
        workers = self.inference_workers if self.device.type == "cpu" else 1

        def forward(batch: tuple[np.ndarray, dict[str, torch.Tensor]]) -> tuple[np.ndarray, dict]:
            idx, enc = batch
            with torch.inference_mode():  # thread-local: entered on the thread that runs the pass
                enc = {key: value.to(self.device) for key, value in enc.items()}
                logits = self(enc["input_ids"], enc["attention_mask"])
                return idx, {h: logits[h].float().cpu().numpy() for h in heads}

        was_training = self.training
        self.eval()
        try:
            with progress_bar(
                total=len(texts), desc="Classifying", unit="text", disable=not show_progress_bar
            ) as bar:
                # Tokenised once, sorted by token count (longest first), padded per batch.
                batches = token_batches(self.tokenizer, texts, self.max_length, batch_size)
                for idx, logits in map_ordered(forward, batches, workers):
                    for h in heads:
                        out[h][idx] = logits[h]
                    bar.update(len(idx))
        finally:
            self.train(was_training)
        return out

    def logits(
        self,
        texts: Sequence[str],
        head: str | None = None,
        batch_size: int = 64,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Uncalibrated logits, shape ``(len(texts), n_labels)``, columns in :meth:`labels` order."""
        name = self._head(head)
        return self._logits(texts, [name], batch_size, show_progress_bar)[name]

    def head_probabilities(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
    ) -> dict[str, np.ndarray]:
        """Calibrated probabilities ``softmax(logits / T)`` of every head from one encoder pass:
        ``{head: (n, n_labels)}`` float32, columns in :meth:`labels` order."""
        logits = self._logits(texts, self.head_names, batch_size, show_progress_bar)
        return {h: softmax(v, self.temperatures[h]).astype(np.float32) for h, v in logits.items()}

    def calibrate_temperature(
        self, texts: Sequence[str], labels: Sequence[str], head: str | None = None, batch_size: int = 64
    ) -> float:
        """Fit and store the temperature of ``head`` on held-out ``texts`` with true ``labels``.

        Returns:
            The fitted temperature (also used by :meth:`predict_proba` from now on).

        Raises:
            ValueError: on a label the head does not know, or mismatched lengths.
        """
        name = self._head(head)
        index = {label: i for i, label in enumerate(self.head_labels[name])}
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels; they must match one to one.")
        unknown = sorted({str(label) for label in labels} - set(index))
        if unknown:
            raise ValueError(f"Labels {unknown[:5]} are not labels of head {name!r}: {list(index)}")
        targets = [index[str(label)] for label in labels]
        self.temperatures[name] = fit_temperature(self.logits(texts, name, batch_size), targets)
        logger.info("Calibrated temperature", extra={"head": name, "temperature": self.temperatures[name]})
        return self.temperatures[name]

    # --- persistence -----------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            "base_model": self.base_model,
            "heads": self.head_labels,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dropout": self.dropout.p,
            "temperatures": self.temperatures,
            "lora": to_dict(self.lora) if self.lora is not None else None,
            "encoder_weights": ENCODER_FILE if self.full_finetune else None,
            "seed": self.seed,
            "train_config": self.train_config,
        }

    def save_pretrained(self, directory: str | Path) -> Path:
        """Save to ``directory``: adapter, head weights, ``config.json`` (and ``metrics.json``).

        The directory is an artifact (:func:`core.io.artifacts.open_artifact`): it is built aside and
        swapped in whole, and a directory of another kind, or a non-empty one that is no artifact, is
        refused. ``config.json`` records the sha256 of each weight file. Other files in ``directory``
        (a training run's checkpoint, an app's files around the classifier it embeds) are kept.

        Returns:
            The directory.

        Raises:
            core.io.artifacts.ArtifactError: ``directory`` must not be written.
        """
        from core.finetune.loop import RUN_STATE

        directory = Path(directory)
        with open_artifact(directory, KIND, version=FORMAT_VERSION, unhashed=RUN_STATE, update=True) as out:
            for name in (*ADAPTER_FILES, ENCODER_FILE, METRICS_FILE):  # stale when writing in place
                (out / name).unlink(missing_ok=True)
            weights = []
            if self.lora is not None:
                weights += self._save_adapter(out)
            if self.full_finetune:  # save_model copes with shared (tied) tensors
                save_model(self.encoder, str(out / ENCODER_FILE), metadata={"format": "pt"})
                weights.append(ENCODER_FILE)
            heads = {k: v.detach().cpu().contiguous() for k, v in self.heads.state_dict().items()}
            save_file(heads, str(out / HEADS_FILE), metadata={"format": "pt"})
            weights.append(HEADS_FILE)
            if self.metrics is not None:
                (out / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2, default=str) + "\n")
                weights.append(METRICS_FILE)
            config = self._config()
            config["files"] = {name: sha256_file(out / name) for name in sorted(weights)}
            (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")
        logger.info("Saved classifier", extra={"path": str(directory), "heads": self.head_names})
        return directory

    def _save_adapter(self, out: Path) -> list[str]:
        if self._saved_adapter is not None:  # merged on load: write back the adapter we loaded
            for name, payload in self._saved_adapter.items():
                (out / name).write_bytes(payload)
            return list(self._saved_adapter)
        self.encoder.save_pretrained(str(out), safe_serialization=True)
        (out / "README.md").unlink(missing_ok=True)  # peft's model card template
        return list(ADAPTER_FILES)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        merge: bool = True,
        device: str | torch.device | None = None,
        precision: InferencePrecision = "auto",
    ) -> TextClassifier:
        """Load a classifier saved by :meth:`save_pretrained`.

        Args:
            directory: The saved directory.
            merge: Merge the LoRA weights into the encoder for faster inference. A merged classifier
                predicts identically but cannot be trained further; load with ``merge=False`` for that.
            device: Move the model there (default: stay on CPU).
            precision: Encoder weights of a merged (inference-only) classifier: ``bf16`` (~1.5x as fast
                on a CPU with AVX512-BF16/AMX; labels agree with fp32 on >= 99.5% of items, measured by
                ``aigc bench classification``), ``fp32``, ``auto`` (bf16 where the CPU has fast bf16), or
                ``int8`` (the encoder's linear layers dynamically quantised, CPU only: about half the
                CPU of fp32, but it changes some labels; see :func:`core.precision.quantize_int8`).
                An unmerged classifier stays fp32 so it can train.

        Raises:
            FileNotFoundError: if the directory or one of its files is missing.
            ValueError: if ``config.json`` is unreadable or a weight file is corrupt or does not fit.
        """
        directory = Path(directory)
        config = _read_config(directory)
        lora = from_dict(LoraSettings, config["lora"]) if config.get("lora") else None
        self = cls.__new__(cls)
        torch.nn.Module.__init__(self)
        self._build(
            config["base_model"],
            config["heads"],
            config["pooling"],
            config["max_length"],
            float(config.get("dropout", 0.1)),
            config.get("temperatures"),
        )
        self.lora, self.seed, self.train_config = lora, config.get("seed"), config.get("train_config")
        metrics_path = directory / METRICS_FILE
        self.metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        if lora is not None:
            self._load_adapter(directory, merge)
        if config.get("encoder_weights"):
            self.full_finetune = True
            path = directory / ENCODER_FILE
            try:
                load_model(self.encoder, str(path), strict=True)
            except (RuntimeError, OSError, ValueError) as err:  # wrong shapes/keys, or a corrupt file
                raise ValueError(f"{path} does not fit the encoder '{config['base_model']}': {err}") from err
            self.encoder.requires_grad_(not merge)  # merge=False: loaded to train further
        heads = load_file(str(directory / HEADS_FILE))
        try:
            self.heads.load_state_dict(heads)
        except RuntimeError as err:
            raise ValueError(
                f"{directory / HEADS_FILE} does not fit the heads in config.json: {err}"
            ) from err
        if device is not None:
            self.to(device)
        if merge:
            from core.precision import quantize_int8, resolve_precision

            if precision not in get_args(InferencePrecision):
                raise ValueError(f"precision must be auto, fp32, bf16 or int8, got {precision!r}")
            if precision == "int8":
                if self.device.type != "cpu":
                    raise ValueError(f"precision int8 runs on the CPU only, not {self.device}")
                self.encoder = quantize_int8(self.encoder)
            else:
                dtype = resolve_precision(precision, self.device)
                if dtype != torch.float32:
                    self.encoder.to(dtype)
        return self.eval()

    def _load_adapter(self, directory: Path, merge: bool) -> None:
        if merge:  # a merged encoder cannot save the adapter again: keep its files for save_pretrained
            self._saved_adapter = {name: (directory / name).read_bytes() for name in ADAPTER_FILES}
        self.encoder = load_adapter(self.encoder, directory, merge=merge)


def _read_config(directory: Path) -> dict[str, Any]:
    recover(directory)  # a save killed between the two renames of its swap
    if not directory.is_dir():
        raise FileNotFoundError(f"Classifier directory '{directory}' does not exist.")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: '{directory}' is not a saved TextClassifier (train one, or check the path)."
        )
    config = read_kind_json(path, KIND, FORMAT_VERSION)
    missing = [k for k in ("base_model", "heads", "pooling", "max_length") if k not in config]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}.")
    expected = [HEADS_FILE] + (list(ADAPTER_FILES) if config.get("lora") else [])
    if config.get("encoder_weights"):
        expected.append(ENCODER_FILE)
    for name in expected:
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{directory / name} is missing: the classifier directory is incomplete.")
    if verify_artifact(directory) is None:  # saved before artifact manifests: check its own hashes
        verify_files(directory, config.get("files") or {}, CONFIG_FILE)
    return config

"""Sentence embeddings from a transformer encoder: tokenise, encode, pool, normalise.

:class:`Embedder` reproduces sentence-transformers' ``encode`` for the models we ship (the
vectors agree to cosine >= 0.999) without depending on sentence-transformers at run time. It
reads the two files a sentence-transformers directory uses to describe inference:

* ``sentence_bert_config.json``: ``max_seq_length`` (MiniLM: 256) and ``do_lower_case``;
* ``<pooling dir>/config.json`` (``1_Pooling`` by default, located through ``modules.json``):
  the pooling mode(s). Mean pooling is the default for plain Hugging Face encoders.

Texts are tokenised once and sorted by token count before batching (:mod:`core.batching`), so each
batch pads to within a few tokens of its real length; the output rows are written straight back to
their input positions.

Example:
    >>> embedder = Embedder("minilm-l6")
    >>> vectors = embedder.encode(["How do I reset my password?", "Opening hours"])
    >>> vectors.shape, vectors.dtype
    ((2, 384), dtype('float32'))
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core import models
from core.batching import token_batches
from core.precision import Precision, resolve_precision
from core.progress import progress_bar

logger = logging.getLogger(__name__)

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken")
# Legacy sentence-transformers keys (``pooling_mode_mean_tokens: true``), in their concatenation order.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")
# encode() shows a progress bar by default above this many texts.
PROGRESS_BAR_THRESHOLD = 1024


def _read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _same_device(a: torch.device, b: torch.device) -> bool:
    # A device without an index ("cuda") matches any index of its type ("cuda:0").
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _pooling_dir(model_dir: Path) -> Path:
    """Folder of the Pooling module, from ``modules.json`` when present (else ``1_Pooling``)."""
    modules = _read_json(model_dir / "modules.json")
    found = model_dir / "1_Pooling"
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1] if isinstance(module, dict) else ""
        if kind == "Pooling":
            found = model_dir / module.get("path", "1_Pooling")
        elif kind not in _KNOWN_MODULES:
            logger.warning(
                "sentence-transformers module is not applied by Embedder; vectors will differ",
                extra={"module": str(module), "model_dir": str(model_dir)},
            )
    return found


def read_pooling_modes(model_dir: str | Path) -> tuple[str, ...]:
    """Pooling mode(s) a sentence-transformers directory declares (``("mean",)`` when none).

    Args:
        model_dir: A model directory, possibly with ``modules.json`` and ``1_Pooling/config.json``.

    Returns:
        The modes in concatenation order.

    Raises:
        ValueError: The pooling config is malformed or names a mode this module does not implement.
    """
    path = _pooling_dir(Path(model_dir)) / "config.json"
    config = _read_json(path)
    if config is None:
        return ("mean",)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object")
    if "pooling_mode" in config:
        raw = config["pooling_mode"]
        modes = (raw,) if isinstance(raw, str) else tuple(raw)
    else:
        modes = tuple(mode for key, mode in _LEGACY_POOLING_KEYS.items() if config.get(key))
    modes = modes or ("mean",)
    bad = [m for m in modes if m not in POOLING_MODES]
    if bad:
        raise ValueError(f"{path}: unsupported pooling mode(s) {bad}; supported: {POOLING_MODES}")
    return modes


def pool(
    hidden: torch.Tensor, attention_mask: torch.Tensor, modes: Sequence[str] = ("mean",)
) -> torch.Tensor:
    """Pool token states ``(batch, seq, dim)`` into sentence vectors ``(batch, len(modes) * dim)``.

    Padding positions (``attention_mask == 0``) are ignored; padding is assumed on the right.
    """
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    out = []
    for mode in modes:
        if mode in ("mean", "mean_sqrt_len_tokens"):
            counts = mask.sum(dim=1).clamp(min=1e-9)
            summed = (hidden * mask).sum(dim=1)
            out.append(summed / (counts if mode == "mean" else counts.sqrt()))
        elif mode == "cls":
            out.append(hidden[:, 0])
        elif mode == "max":
            out.append(hidden.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode == "lasttoken":
            last = attention_mask.sum(dim=1).clamp(min=1) - 1
            out.append(hidden[torch.arange(hidden.shape[0], device=hidden.device), last])
        else:
            raise ValueError(f"Unknown pooling mode {mode!r}; supported: {POOLING_MODES}")
    return out[0] if len(out) == 1 else torch.cat(out, dim=-1)


class Embedder:
    """Encode texts into L2-normalised float32 vectors with a transformer encoder.

    Args:
        model: Model spec for :func:`core.models.load_encoder` (short name, local dir or hub id).
        max_length: Truncate inputs to this many tokens. ``None`` reads ``max_seq_length`` from
            ``sentence_bert_config.json``, else the tokenizer's limit capped by the model's positions.
        device: Torch device to run on. The shared cached model is used on its own device; another
            device loads a private copy.
        normalize: L2-normalise the output vectors (needed for cosine similarity via inner product).
        precision: Weight dtype: ``bf16`` runs the encoder in bfloat16 (~1.8x as fast as fp32 on a CPU with
            AVX512-BF16/AMX; cosine to the fp32 vectors >= 0.999, measured by ``aigc bench embeddings``),
            ``fp32`` is exact, ``auto`` picks bf16 where the CPU has fast bf16 instructions.
    """

    def __init__(
        self,
        model: str = models.DEFAULT_ENCODER,
        max_length: int | None = None,
        device: str | torch.device = "cpu",
        normalize: bool = True,
        precision: Precision = "auto",
    ) -> None:
        resolved = models.resolve(model)
        dtype = resolve_precision(precision, torch.device(device))
        encoder, tokenizer = models.load_encoder(model, dtype=dtype)
        if not _same_device(encoder.device, torch.device(device)):
            encoder, tokenizer = models.load_encoder(model, dtype=dtype, fresh=True)
            encoder = encoder.to(device)
        model_dir = models.model_path(model)
        st_config = _read_json(model_dir / "sentence_bert_config.json") or {}
        if not isinstance(st_config, dict):
            raise ValueError(f"{model_dir / 'sentence_bert_config.json'}: expected a JSON object")
        self._setup(
            encoder,
            tokenizer,
            model_id=resolved.id,
            max_length=max_length if max_length is not None else st_config.get("max_seq_length"),
            pooling=read_pooling_modes(model_dir),
            normalize=normalize,
            lowercase=bool(st_config.get("do_lower_case", False)),
        )

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        tokenizer: Any,
        model_id: str,
        max_length: int | None = None,
        pooling: str | Sequence[str] = "mean",
        normalize: bool = True,
    ) -> Embedder:
        """Wrap an already loaded encoder, e.g. a peft/LoRA-wrapped one being trained.

        Args:
            model: A module whose forward takes ``input_ids``/``attention_mask`` and returns the
                token states as ``last_hidden_state`` (or first output). Used on its current device.
            tokenizer: Its tokenizer.
            model_id: Identifier recorded with indexes built from these vectors; give adapters a
                distinct id (e.g. ``"minilm-l6+lora:runs/rec-1"``).
            max_length: Token limit (``None``: tokenizer limit capped by the model's positions).
            pooling: Pooling mode or modes (see :data:`POOLING_MODES`).
            normalize: L2-normalise the output vectors.

        Returns:
            The embedder; ``encode`` switches the model to eval mode and restores training mode after.
        """
        modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
        bad = [m for m in modes if m not in POOLING_MODES]
        if bad or not modes:
            raise ValueError(f"Unsupported pooling mode(s) {bad or modes}; supported: {POOLING_MODES}")
        self = cls.__new__(cls)
        self._setup(model, tokenizer, model_id, max_length, modes, normalize, lowercase=False)
        return self

    def _setup(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        model_id: str,
        max_length: int | None,
        pooling: tuple[str, ...],
        normalize: bool,
        lowercase: bool,
    ) -> None:
        config = model.config
        positions = getattr(config, "max_position_embeddings", None)
        limit = (
            min(int(tokenizer.model_max_length), positions) if positions else int(tokenizer.model_max_length)
        )
        if max_length is None:
            max_length = limit
        if not 0 < int(max_length) <= limit:
            raise ValueError(f"max_length={max_length} is outside 1..{limit} for model '{model_id}'")
        self.model = model
        self.tokenizer = tokenizer
        self._model_id = model_id
        self.max_length = int(max_length)
        self.pooling = pooling
        self.normalize = normalize
        self._lowercase = lowercase
        self._dim = int(config.hidden_size) * len(pooling)
        self._with_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    @property
    def dim(self) -> int:
        """Dimension of the output vectors."""
        return self._dim

    @property
    def model_id(self) -> str:
        """Identifier of the encoder, to record in indexes built from these vectors."""
        return self._model_id

    @property
    def device(self) -> torch.device:
        """Device the encoder runs on."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return (
            f"Embedder(model_id={self.model_id!r}, dim={self.dim}, max_length={self.max_length}, "
            f"pooling={self.pooling}, normalize={self.normalize})"
        )

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        show_progress_bar: bool | None = None,
    ) -> np.ndarray:
        """Embed texts.

        Args:
            texts: The texts (a list, not a single string).
            batch_size: Texts per forward pass.
            show_progress_bar: Show a tqdm bar over batches; ``None`` shows it for more than
                :data:`PROGRESS_BAR_THRESHOLD` texts.

        Returns:
            Array of shape ``(len(texts), dim)``, float32, rows in input order, L2-normalised when
            ``normalize`` is set. An empty input gives shape ``(0, dim)``.

        Raises:
            TypeError: ``texts`` is a single string or holds something other than strings.
            ValueError: ``batch_size`` is not positive.
        """
        if isinstance(texts, (str, bytes)):
            raise TypeError("encode() takes a sequence of strings; wrap a single text in a list")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        texts = list(texts)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"texts[{bad}] is {type(texts[bad]).__name__}, expected str")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        if self._lowercase:
            texts = [t.lower() for t in texts]
        show = len(texts) > PROGRESS_BAR_THRESHOLD if show_progress_bar is None else show_progress_bar
        device = self.device
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                torch.inference_mode(),
                progress_bar(total=len(texts), desc="Embedding", unit="text", disable=not show) as bar,
            ):
                # Tokenised once, sorted by token count (longest first): each batch pads to within a
                # few tokens of its real length, and an out-of-memory error shows on the first batch.
                batches = token_batches(
                    self.tokenizer, texts, self.max_length, batch_size, self._with_token_types
                )
                for idx, features in batches:
                    out[idx] = self._encode_batch(features, device)
                    bar.update(len(idx))
        finally:
            if was_training:
                self.model.train()
        return out

    def _encode_batch(self, features: dict[str, torch.Tensor], device: torch.device) -> np.ndarray:
        features = {key: value.to(device) for key, value in features.items()}
        output = self.model(**features)
        hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
        # Pool in fp32 even when the encoder runs in bf16: the sums over tokens need the precision.
        vectors = pool(hidden.float(), features["attention_mask"], self.pooling)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.cpu().numpy()


class CachedEncoder:
    """An encoder that remembers the vectors of the texts it has encoded.

    For callers that embed the same short texts again and again (an alert's headlines are clustered,
    summarised and checked; the next alert shares most of them). Only texts not seen yet reach the
    encoder; the cache is emptied when it would grow past ``max_texts``. Safe to share between threads.

    Args:
        encoder: Anything with ``encode(texts, batch_size, show_progress_bar) -> (n, dim)``.
        max_texts: Most vectors kept.
    """

    def __init__(self, encoder: Any, max_texts: int = 20_000) -> None:
        self.encoder = encoder
        self.max_texts = max_texts
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.encoder, name)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool | None = None
    ) -> np.ndarray:
        """Vectors of ``texts`` (see :meth:`Embedder.encode`), encoding only the ones not cached."""
        texts = list(texts)
        with self._lock:
            known = {t: self._vectors[t] for t in texts if t in self._vectors}
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = np.asarray(self.encoder.encode(missing, batch_size, show_progress_bar))
            known.update(zip(missing, fresh, strict=True))
            with self._lock:
                if len(self._vectors) + len(missing) > self.max_texts:
                    self._vectors.clear()
                self._vectors.update(zip(missing, fresh, strict=True))
        if not texts:
            return np.asarray(self.encoder.encode([], batch_size, show_progress_bar))
        return np.stack([known[t] for t in texts])

"""Text generation with a causal LM: chat prompts, greedy or sampled decoding, stop strings, streaming.

:class:`Generator` runs its own decode loop over a KV cache (``DynamicCache``) instead of
``model.generate``: one prefill, then one forward pass per token. Owning the loop makes stop strings,
streaming and time-to-first-token simple, and keeps the per-token hot path to a forward pass, an argmax
(or a sample) and an incremental detokenisation step.

Example:
    >>> gen = Generator()  # SmolLM2-135M-Instruct
    >>> gen.generate("What is the capital of France?", max_new_tokens=20).text
    'The capital of France is Paris.'
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache, RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

from core.models import DEFAULT_GENERATOR, load_causal_lm, load_tokenizer, resolve
from core.textstream import END_OF_TURN_TOKENS, IncrementalDecoder, StopMatcher, end_token_ids

logger = logging.getLogger(__name__)

Messages = Sequence[Mapping[str, str]]
PromptLike = str | Messages
ADAPTER_MANIFEST = "aigc_adapter.json"
Backend = Literal["auto", "llamacpp", "torch", "openai"]
BACKENDS: tuple[str, ...] = ("auto", "llamacpp", "torch", "openai")
# Environment variable that sets the default backend (``auto`` when unset).
BACKEND_ENV = "AIGC_GENERATION_BACKEND"
# A remote OpenAI-compatible server; when set, ``auto`` generates there (see core.remote_generation).
GENERATION_URL_ENV = "AIGC_GENERATION_URL"
# Kept for code that imported the private names from here; the helpers live in core.textstream.
_END_OF_TURN_TOKENS = END_OF_TURN_TOKENS
_IncrementalDecoder = IncrementalDecoder
_StopMatcher = StopMatcher


@dataclass(frozen=True)
class GenerateSettings:
    """Decoding settings for one call; ``temperature == 0`` means greedy."""

    max_new_tokens: int = field(default=256, metadata={"help": "Most tokens to generate."})
    temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature; 0 means greedy decoding."}
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus sampling mass (1.0 keeps all tokens)."})
    top_k: int = field(default=0, metadata={"help": "Sample among the k most likely tokens (0 keeps all)."})
    repetition_penalty: float = field(
        default=1.0, metadata={"help": "Penalty > 1 for tokens already in the prompt or output (1.0 is off)."}
    )
    stop: tuple[str, ...] = field(
        default=(), metadata={"help": "Strings that end generation; they are not included in the output."}
    )
    seed: int | None = field(
        default=None, metadata={"help": "Seed for sampling (None uses torch's global RNG)."}
    )

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        object.__setattr__(self, "stop", stop)
        checks = {
            "max_new_tokens": self.max_new_tokens >= 1,
            "temperature": self.temperature >= 0,
            "top_p": 0 < self.top_p <= 1,
            "top_k": self.top_k >= 0,
            "repetition_penalty": self.repetition_penalty > 0,
            "stop": all(isinstance(s, str) and s for s in stop),
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"GenerateSettings.{name} has an invalid value: {getattr(self, name)!r}")

    def with_overrides(self, **overrides: Any) -> GenerateSettings:
        """Return a copy with some fields replaced; unknown field names raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"Unknown generation setting(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **overrides) if overrides else self


@dataclass
class GenerationResult:
    """The output of one prompt.

    Attributes:
        text: Generated text, special tokens and stop strings removed.
        prompt_tokens: Tokens in the (templated) prompt.
        completion_tokens: Tokens the model generated, including a final end-of-sequence token.
        finish_reason: ``"stop"`` (end-of-sequence token or stop string) or ``"length"``.
        ttft_s: Seconds from the call to the first generated token (the prefill).
        total_s: Seconds for the whole call (for a batch: the whole batch).
        token_ids: The generated token ids.
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]
    ttft_s: float
    total_s: float
    token_ids: list[int] = field(default_factory=list)


@dataclass
class _Row:
    """Per-prompt state of a running batch."""

    prompt_ids: list[int]
    decoder: _IncrementalDecoder
    matcher: _StopMatcher
    finish_reason: Literal["stop", "length"] | None = None
    chunks: list[str] = field(default_factory=list)


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The base model an adapter directory was trained on.

    Reads ``aigc_adapter.json`` (key ``base_model``) and falls back to peft's ``adapter_config.json``
    (``base_model_name_or_path``).

    Raises:
        FileNotFoundError: if ``adapter_dir`` has no ``adapter_config.json``.
        ValueError: if neither file names a base model.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: '{adapter_dir}' is not a peft adapter directory.")
    manifest_path = adapter_dir / ADAPTER_MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        base = manifest.get("base_model") or manifest.get("base_model_name_or_path")
        if base:
            return str(base)
    base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"No base model recorded in {manifest_path} ('base_model') or {config_path} "
            "('base_model_name_or_path'); pass model= explicitly."
        )
    return str(base)


def _load_with_adapter(model: str | None, adapter: str | Path) -> tuple[Any, Any]:
    from peft import PeftModel

    adapter_dir = Path(adapter)
    recorded = adapter_base_model(adapter_dir)
    base = model or recorded
    if model and model != recorded:
        logger.warning(
            "Adapter base model differs from the given model", extra={"given": model, "recorded": recorded}
        )
    # fresh=True: merging rewrites the base weights, which must not leak into the shared cached model.
    base_model, tokenizer = load_causal_lm(base, fresh=True)
    if (adapter_dir / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(str(adapter_dir))
    merged = PeftModel.from_pretrained(base_model, str(adapter_dir)).merge_and_unload()
    logger.info("Merged LoRA adapter into base model", extra={"adapter": str(adapter_dir), "base": base})
    return merged.eval(), tokenizer


def _choose_fast_backend(
    requested: str, model: str | None, adapter: str | Path | None, **options: Any
) -> tuple[Any, str | None]:
    """Build a :class:`~core.llamacpp.LlamaCppGenerator` when possible: ``(generator or None, reason)``.

    With ``requested == "llamacpp"`` every obstacle raises; with ``"auto"`` it becomes the reason.
    """
    from core import llamacpp

    try:
        spec = model or (adapter_base_model(adapter) if adapter is not None else DEFAULT_GENERATOR)
        if resolve(spec).gguf_file is None:
            raise ValueError(f"model '{spec}' has no GGUF file")
        if not llamacpp.is_available():
            raise ModuleNotFoundError("llama-cpp-python is not installed (tools/install_llamacpp.sh)")
        return llamacpp.LlamaCppGenerator(model, adapter, **options), None
    except Exception as err:  # noqa: BLE001 - auto mode falls back on any failure, with the reason logged
        if requested == "llamacpp":
            raise
        return None, f"{type(err).__name__}: {err}"


class Generator:
    """Generate text with a causal LM, optionally with a LoRA adapter.

    Two backends share this API. ``llamacpp`` runs the model's GGUF file with llama.cpp (see
    :mod:`core.llamacpp`; a peft adapter is exported once to ``adapter.gguf`` beside it), ~3x the torch
    path's decoding speed on CPU. ``torch`` runs the transformers model (adapter merged in). ``auto`` (the
    default, or the ``AIGC_GENERATION_BACKEND`` environment variable) picks llama.cpp when
    ``llama-cpp-python`` is importable and the model has a GGUF file, and otherwise falls back to torch,
    logging why. llama.cpp decodes with Q4_1 kernels, so greedy texts can differ from the torch path's
    after a near-tie (measured by ``aigc bench generation``: ``greedy_text_match``).

    Args:
        model: Model spec (see :mod:`core.models`); defaults to SmolLM2-135M-Instruct, or to the
            adapter's base model when ``adapter`` is given.
        adapter: A peft adapter directory (merged into the torch model, or exported to GGUF).
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Wrap string prompts in the tokenizer's chat template; when ``False`` (or the
            tokenizer has no template) strings are used verbatim.
        backend: ``auto``, ``llamacpp`` (raise when unavailable), ``torch`` or ``openai`` (the
            OpenAI-compatible server at ``AIGC_GENERATION_URL``, see :mod:`core.remote_generation`;
            ``auto`` picks it whenever that variable is set); ``None`` reads ``AIGC_GENERATION_BACKEND``
            (default ``auto``).
        n_threads: CPU threads of the llama.cpp backend (default: all the process may use).
    """

    def __init__(
        self,
        model: str | None = None,
        adapter: str | Path | None = None,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        backend: Backend | None = None,
        n_threads: int | None = None,
    ) -> None:
        requested = backend or os.environ.get(BACKEND_ENV, "auto")
        if requested not in BACKENDS:
            raise ValueError(f"Generation backend must be one of {BACKENDS}, got {requested!r}")
        self._fast: Any = None
        self.fallback_reason: str | None = None
        self._spec = (model, adapter)
        if requested == "openai" or (requested == "auto" and os.environ.get(GENERATION_URL_ENV, "").strip()):
            if adapter is not None:
                raise ValueError(
                    "a remote generation server cannot apply a local adapter: serve the merged model"
                )
            from core.remote_generation import RemoteGenerator

            self._fast = RemoteGenerator(
                tokenizer_model=model, system_prompt=system_prompt, use_chat_template=use_chat_template
            )
        elif requested != "torch":
            options = {"system_prompt": system_prompt, "use_chat_template": use_chat_template}
            self._fast, self.fallback_reason = _choose_fast_backend(
                requested, model, adapter, n_threads=n_threads, **options
            )
        if self._fast is not None:
            self._model = None  # the torch model loads only if someone asks for .model
            fast = self._fast
            self._setup_common(fast.tokenizer, system_prompt, fast.use_chat_template, fast.eos_ids)
            self.max_positions = fast.max_positions
            return
        if self.fallback_reason is not None:
            logger.warning(
                "Generation falls back to the torch backend", extra={"reason": self.fallback_reason}
            )
        lm, tokenizer = self._load_torch()
        self._setup(lm, tokenizer, system_prompt, use_chat_template)

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, system_prompt: str | None = None, use_chat_template: bool = True
    ) -> Generator:
        """Wrap an already loaded causal LM and tokenizer (always the torch backend)."""
        self = cls.__new__(cls)
        self._fast, self.fallback_reason, self._spec = None, None, (None, None)
        self._setup(model.eval(), tokenizer, system_prompt, use_chat_template)
        return self

    @property
    def backend(self) -> str:
        """The backend in use: ``llamacpp``, ``openai`` (a remote server) or ``torch``."""
        return getattr(self._fast, "backend_name", "llamacpp") if self._fast is not None else "torch"

    @property
    def model(self) -> Any:
        """The torch model (loaded on first use when the llama.cpp backend serves generation)."""
        if self._model is None:
            self._model = self._load_torch()[0]
        return self._model

    def _load_torch(self) -> tuple[Any, Any]:
        model, adapter = self._spec
        if adapter is not None:
            return _load_with_adapter(model, adapter)
        return load_causal_lm(model or DEFAULT_GENERATOR)

    def _setup_common(
        self, tokenizer: Any, system_prompt: str | None, use_chat_template: bool, eos_ids: set[int]
    ) -> None:
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.use_chat_template = use_chat_template and getattr(tokenizer, "chat_template", None) is not None
        self.eos_ids = eos_ids
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)
        )

    def _setup(self, model: Any, tokenizer: Any, system_prompt: str | None, use_chat_template: bool) -> None:
        self._model = model
        eos = end_token_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
        self._setup_common(tokenizer, system_prompt, use_chat_template, eos)
        # A peft wrapper forwards **kwargs to the base model; ask the base model what it accepts.
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(inner.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._keeps_logits = "logits_to_keep" in params
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)

    def build_prompt(self, prompt: PromptLike, system: str | None = None) -> str:
        """Render a prompt (a user message string, or a list of ``{"role", "content"}`` messages).

        Args:
            prompt: The user message, or the whole conversation.
            system: System message; overrides the generator's ``system_prompt``. Ignored when the
                messages already start with a system message.

        Returns:
            The prompt text, ending with the assistant turn's opening when a chat template is used.
        """
        system = system if system is not None else self.system_prompt
        if isinstance(prompt, str):
            if not self.use_chat_template:
                return prompt if system is None else f"{system}\n\n{prompt}"
            messages: list[Mapping[str, str]] = [{"role": "user", "content": prompt}]
        else:
            messages = list(prompt)
            if not messages or any("role" not in m or "content" not in m for m in messages):
                raise ValueError("Messages must be a non-empty list of {'role': ..., 'content': ...} dicts.")
            if not self.use_chat_template:
                raise ValueError(
                    "This tokenizer has no chat template (or it is disabled): pass a string prompt."
                )
        if system is not None and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, prompt: PromptLike, system: str | None = None) -> list[int]:
        """Token ids of the rendered prompt."""
        text = self.build_prompt(prompt, system)
        # A chat template writes its own special tokens (e.g. BOS) into the text; don't add them twice.
        ids = self.tokenizer(text, add_special_tokens=not self.use_chat_template)["input_ids"]
        if not ids:
            raise ValueError("The prompt is empty after tokenisation.")
        return list(ids)

    def generate(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """Generate a completion for one prompt.

        Args:
            prompt: A user message string or a list of chat messages.
            settings: Decoding settings (defaults: greedy, 256 new tokens).
            system: System message for this call.
            **overrides: Single settings to override, e.g. ``max_new_tokens=20``.

        Returns:
            The :class:`GenerationResult`.
        """
        return self.generate_batch([prompt], settings, system=system, **overrides)[0]

    def stream(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> Iterator[str]:
        """Yield the completion as text chunks while it is generated (same text as :meth:`generate`)."""
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        if self._fast is not None:
            yield from self._fast.stream(prompt, settings, system)
            return
        rows = [self._new_row(self.encode(prompt, system), settings)]
        for _, chunk in self._run(rows, settings, time.perf_counter(), {}):
            yield chunk

    def generate_batch(
        self,
        prompts: Sequence[PromptLike],
        settings: GenerateSettings | None = None,
        system: str | None = None,
        batch_size: int = 8,
        show_progress_bar: bool = False,
        **overrides: Any,
    ) -> list[GenerationResult]:
        """Generate completions for many prompts, ``batch_size`` at a time with left padding.

        Prompts are grouped by length to limit padding; results come back in input order. Greedy
        results match :meth:`generate` for each prompt alone; sampled ones draw from one RNG per batch.
        The llama.cpp backend decodes the prompts one after the other (``batch_size`` is not used).

        Args:
            prompts: User message strings or message lists.
            settings: Decoding settings.
            system: System message for every prompt.
            batch_size: Prompts decoded together.
            show_progress_bar: Show a tqdm bar over batches.
            **overrides: Single settings to override.

        Returns:
            One :class:`GenerationResult` per prompt.
        """
        if isinstance(prompts, str) or not prompts:
            raise ValueError("generate_batch expects a non-empty list of prompts.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        if self._fast is not None:
            return self._fast.generate_batch(
                prompts, settings, system=system, show_progress_bar=show_progress_bar
            )
        encoded = [self.encode(p, system) for p in prompts]
        return self._generate_encoded(encoded, settings, batch_size, show_progress_bar)

    def generate_ids(
        self, prompt_ids: Sequence[int], settings: GenerateSettings | None = None, **overrides: Any
    ) -> GenerationResult:
        """Generate from already tokenised prompt ids (no chat template applied).

        Args:
            prompt_ids: The prompt's token ids.
            settings: Decoding settings.
            **overrides: Single settings to override.

        Returns:
            The :class:`GenerationResult`.
        """
        ids = [int(i) for i in prompt_ids]
        if not ids:
            raise ValueError("The prompt is empty.")
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return self._generate_encoded([ids], settings, 1, False)[0]

    def _generate_encoded(
        self, encoded: list[list[int]], settings: GenerateSettings, batch_size: int, show_progress_bar: bool
    ) -> list[GenerationResult]:
        if self._fast is not None:
            bar = tqdm(encoded, desc="Generating", disable=not show_progress_bar)
            return [self._fast.generate_ids(ids, settings) for ids in bar]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[GenerationResult | None] = [None] * len(encoded)
        starts = range(0, len(order), batch_size)
        for start in tqdm(starts, desc="Generating", disable=not show_progress_bar):
            index = order[start : start + batch_size]
            rows = [self._new_row(encoded[i], settings) for i in index]
            t0, timing = time.perf_counter(), {}
            for r, chunk in self._run(rows, settings, t0, timing):
                rows[r].chunks.append(chunk)
            total = time.perf_counter() - t0
            for i, row in zip(index, rows, strict=True):
                results[i] = GenerationResult(
                    text="".join(row.chunks),
                    prompt_tokens=len(row.prompt_ids),
                    completion_tokens=len(row.decoder.ids),
                    finish_reason=row.finish_reason or "length",
                    ttft_s=timing.get("ttft_s", total),
                    total_s=total,
                    token_ids=row.decoder.ids,
                )
        return results  # type: ignore[return-value]

    def _new_row(self, ids: list[int], settings: GenerateSettings) -> _Row:
        if self.max_positions is not None and len(ids) >= self.max_positions:
            raise ValueError(f"Prompt has {len(ids)} tokens; the model's context is {self.max_positions}.")
        return _Row(ids, _IncrementalDecoder(self.tokenizer), _StopMatcher(settings.stop))

    def _run(
        self, rows: list[_Row], settings: GenerateSettings, t0: float, timing: dict[str, float]
    ) -> Iterator[tuple[int, str]]:
        """Decode ``rows`` together, yielding ``(row index, text chunk)`` as text becomes final."""
        prompts = [row.prompt_ids for row in rows]
        budget = settings.max_new_tokens
        if self.max_positions is not None:
            budget = min(budget, self.max_positions - max(len(p) for p in prompts))
        live = len(rows)
        for step, next_ids in enumerate(self._token_steps(prompts, settings)):
            if step == 0:
                timing["ttft_s"] = time.perf_counter() - t0
            last = step + 1 >= budget
            for r, token in enumerate(next_ids.tolist()):
                row = rows[r]
                if row.finish_reason is not None:
                    continue
                end: Literal["stop", "length"] | None = None
                if token in self.eos_ids:
                    row.decoder.ids.append(token)
                    text, end = row.decoder.flush(), "stop"
                else:
                    text = row.decoder.push(token)
                    if last:
                        text, end = text + row.decoder.flush(), "length"
                emit, stopped = row.matcher.push(text)
                if stopped:
                    end = "stop"
                elif end is not None:
                    emit += row.matcher.flush()
                row.finish_reason = end
                if emit:
                    yield r, emit
                live -= end is not None
            if live == 0:
                return

    def _token_steps(self, prompts: list[list[int]], settings: GenerateSettings) -> Iterator[torch.Tensor]:
        """Yield the next token id of every row, one step at a time, until the caller stops."""
        device = self.model.device
        width = max(len(p) for p in prompts)
        padded = any(len(p) != width for p in prompts)
        input_ids = torch.tensor([[self.pad_id] * (width - len(p)) + p for p in prompts], device=device)
        mask = positions = None
        if padded:
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
        pick = self._picker(settings, input_ids, mask)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(input_ids, mask, positions, cache, prefill=True)
        while True:
            next_ids = pick(logits)
            yield next_ids
            if mask is not None:
                mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], dim=1)
                positions = positions[:, -1:] + 1
            logits = self._forward(next_ids[:, None], mask, positions, cache, prefill=False)

    @torch.inference_mode()
    def _forward(
        self, ids: torch.Tensor, mask, positions, cache: DynamicCache, prefill: bool
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {self._cache_kwarg: cache, "use_cache": True}
        if mask is not None:
            kwargs.update(attention_mask=mask, position_ids=positions)
        if prefill and self._keeps_logits:
            kwargs["logits_to_keep"] = 1  # only the last position's logits are needed
        return self.model(input_ids=ids, **kwargs).logits[:, -1, :].float()

    def _picker(self, settings: GenerateSettings, input_ids: torch.Tensor, mask: torch.Tensor | None):
        """A function ``logits [B, V] -> token ids [B]`` implementing ``settings``."""
        penalty = seen = None
        if settings.repetition_penalty != 1.0:
            penalty = RepetitionPenaltyLogitsProcessor(float(settings.repetition_penalty))
            # Padding must not be penalised: replace pads by a token the row already has.
            seen = input_ids if mask is None else torch.where(mask.bool(), input_ids, input_ids[:, -1:])
        rng = None
        if settings.temperature > 0 and settings.seed is not None:
            rng = torch.Generator(device=input_ids.device).manual_seed(settings.seed)
        warpers = []
        if settings.temperature > 0 and settings.top_k > 0:
            warpers.append(TopKLogitsWarper(settings.top_k))
        if settings.temperature > 0 and settings.top_p < 1.0:
            warpers.append(TopPLogitsWarper(settings.top_p))

        @torch.inference_mode()
        def pick(logits: torch.Tensor) -> torch.Tensor:
            nonlocal seen
            if penalty is not None:
                logits = penalty(seen, logits)
            if settings.temperature == 0:
                next_ids = logits.argmax(dim=-1)
            else:
                logits = logits / settings.temperature
                for warp in warpers:
                    logits = warp(None, logits)
                next_ids = torch.multinomial(logits.softmax(dim=-1), 1, generator=rng).squeeze(1)
            if seen is not None:
                seen = torch.cat([seen, next_ids[:, None]], dim=1)
            return next_ids

        return pick

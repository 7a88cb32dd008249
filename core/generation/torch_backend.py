"""The torch generation backend: a causal LM from transformers, decoded by our own loop.

:class:`TorchGenerator` runs its own decode loop over a KV cache (``DynamicCache``) instead of
``model.generate``: one prefill, then one forward pass per token. Owning the loop makes stop strings,
streaming and time-to-first-token simple, and keeps the per-token hot path to a forward pass, an argmax
(or a sample) and an incremental detokenisation step. Prompts of a batch are left-padded and decoded
together. :class:`core.generation.Generator` uses it when llama.cpp is unavailable or ``backend="torch"``.

Example:
    >>> gen = TorchGenerator(*load_torch_model(None, None))  # SmolLM2-135M-Instruct
    >>> gen.generate_ids(gen.encode("What is the capital of France?"), GenerateSettings(20)).text
    'The capital of France is Paris.'
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, RepetitionPenaltyLogitsProcessor, TopKLogitsWarper, TopPLogitsWarper

from core.generation.adapters import adapter_base_model
from core.generation.prompting import Prompter, PromptingMixin
from core.generation.textstream import IncrementalDecoder, StopMatcher, end_token_ids, pad_token_id
from core.generation.types import FinishReason, GenerateSettings, GenerationResult, PromptLike
from core.models import DEFAULT_GENERATOR, load_causal_lm, load_tokenizer
from core.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class _Row:
    """Per-prompt state of a running batch."""

    prompt_ids: list[int]
    decoder: IncrementalDecoder
    matcher: StopMatcher
    finish_reason: FinishReason | None = None
    chunks: list[str] = field(default_factory=list)


def load_torch_model(model: str | None, adapter: str | Path | None) -> tuple[Any, Any]:
    """Load ``(causal LM, tokenizer)``: ``model`` (default SmolLM2), with ``adapter`` merged in if given.

    Args:
        model: Model spec (see :mod:`core.models`); with an adapter, defaults to its recorded base model.
        adapter: A peft adapter directory, merged into a fresh copy of the base model.
    """
    if adapter is not None:
        return _load_with_adapter(model, adapter)
    return load_causal_lm(model or DEFAULT_GENERATOR)


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


class TorchGenerator(PromptingMixin):
    """Generate text with a loaded transformers causal LM.

    Args:
        model: The causal LM (a peft wrapper works too).
        tokenizer: Its tokenizer.
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Wrap string prompts in the tokenizer's chat template.
    """

    backend_name = "torch"

    def __init__(
        self, model: Any, tokenizer: Any, system_prompt: str | None = None, use_chat_template: bool = True
    ) -> None:
        self.model = model.eval()
        self.prompter = Prompter(tokenizer, system_prompt, use_chat_template)
        self.eos_ids = end_token_ids(tokenizer, getattr(model.generation_config, "eos_token_id", None))
        self.pad_id = pad_token_id(tokenizer, self.eos_ids)
        # A peft wrapper forwards **kwargs to the base model; ask the base model what it accepts.
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(inner.forward).parameters
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._keeps_logits = "logits_to_keep" in params
        self.max_positions: int | None = getattr(model.config, "max_position_embeddings", None)

    def generate_batch(
        self,
        prompts: Sequence[PromptLike],
        settings: GenerateSettings,
        system: str | None = None,
        batch_size: int = 8,
        show_progress_bar: bool = False,
    ) -> list[GenerationResult]:
        """Generate completions for many prompts, ``batch_size`` at a time with left padding.

        Prompts are grouped by length to limit padding; results come back in input order. Greedy
        results match each prompt decoded alone; sampled ones draw from one RNG per batch.
        """
        encoded = [self.encode(p, system) for p in prompts]
        return self._generate_encoded(encoded, settings, batch_size, show_progress_bar)

    def generate_ids(self, prompt_ids: Sequence[int], settings: GenerateSettings) -> GenerationResult:
        """Generate from already tokenised prompt ids (no chat template applied)."""
        return self._generate_encoded([list(prompt_ids)], settings, 1, False)[0]

    def stream(
        self, prompt: PromptLike, settings: GenerateSettings, system: str | None = None
    ) -> Iterator[str]:
        """Yield the completion as text chunks while it is generated (same text as a batch of one)."""
        rows = [self._new_row(self.encode(prompt, system), settings)]
        for _, chunk in self._run(rows, settings, time.perf_counter(), {}):
            yield chunk

    def _generate_encoded(
        self, encoded: list[list[int]], settings: GenerateSettings, batch_size: int, show_progress_bar: bool
    ) -> list[GenerationResult]:
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        results: list[GenerationResult | None] = [None] * len(encoded)
        starts = range(0, len(order), batch_size)
        for start in progress_bar(starts, desc="Generating", disable=not show_progress_bar):
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
        return _Row(ids, IncrementalDecoder(self.tokenizer), StopMatcher(settings.stop))

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
                end: FinishReason | None = None
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


__all__ = ["TorchGenerator", "load_torch_model"]

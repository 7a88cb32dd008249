"""llama.cpp generation backend: quantised GGUF kernels behind the :class:`~core.generation.Generator` API.

:class:`LlamaCppGenerator` runs a GGUF checkpoint (the packaged SmolLM2 Q4_1 file by default) with
`llama-cpp-python <https://github.com/abetlen/llama-cpp-python>`_. Prompts are rendered and tokenised by
the Hugging Face tokenizer with the torch backend's :class:`~core.generation.prompting.Prompter` and
llama.cpp receives token ids, so both backends see token-identical prompts. Decoding (greedy,
temperature / top-k / top-p, repetition penalty over prompt and output) uses llama.cpp's sampler chain
in the torch path's order; text is detokenised incrementally by the HF tokenizer, so equal token ids
give equal text.

Two llama.cpp contexts share the work. The prompt is evaluated by a de-quantised F32 copy of the model
(:func:`core.generation.gguf_export.dense_companion`): llama.cpp's batched kernels are ~3x as fast
on F32 as on Q4_1 weights here, and F32 gives exactly the torch path's logits, so the first token is
the torch path's. The prompt's KV cache then moves (``llama_state_seq_get/set_data``) to the Q4_1
model, whose single-token kernels decode ~3x as fast as the torch path. A fine-tuned model stays on
this path: its peft adapter is exported once as a GGUF LoRA adapter
(:func:`core.generation.gguf_export.export_lora_to_gguf`) that llama.cpp applies on top of both models.

Q4_1 kernels quantise activations, so later tokens are not bit-identical to the fp32 torch model's:
~98% of greedy next-token choices agree, and texts drift apart after a near-tie.

``llama-cpp-python`` is optional and must be built for the CPU (see the Makefile);
:func:`is_available` says whether it can be imported.

Example:
    >>> gen = LlamaCppGenerator()  # SmolLM2-135M-Instruct Q4_1
    >>> gen.generate("What is the capital of France?", max_new_tokens=20).text
    'The capital of France is Paris.'
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, Literal

from core.generation.adapters import adapter_base_model
from core.generation.gguf_export import dense_companion, export_lora_to_gguf, gguf_adapter_for, gguf_path_of
from core.generation.prompting import Prompter, PromptingMixin
from core.generation.textstream import IncrementalDecoder, StopMatcher, end_token_ids
from core.generation.types import FinishReason, GenerateSettings, GenerationResult, PromptLike
from core.models import DEFAULT_GENERATOR, load_tokenizer
from core.progress import progress_bar

logger = logging.getLogger(__name__)

# llama.cpp's OpenMP threads spin at every barrier by default. On a CPU shared with other processes a
# spinning thread holds the core its partner needs: measured on a busy 2-core box, decoding ran at 0.2-0.4
# tokens/s with 2 spinning threads and 7-8 tokens/s with passive waiting. Set before llama_cpp (and its
# libgomp) loads; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["LlamaCppGenerator", "export_lora_to_gguf", "is_available"]


def is_available() -> bool:
    """Whether ``llama_cpp`` (llama-cpp-python) is installed."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):  # e.g. sys.modules["llama_cpp"] is None
        return False


class LlamaCppGenerator(PromptingMixin):
    """Generate text with llama.cpp over a GGUF model, optionally with a LoRA adapter.

    Same calling conventions and results as :class:`~core.generation.Generator`, and the same prompt
    rendering (:class:`~core.generation.prompting.Prompter`). With ``fast_prefill`` the prompt is
    evaluated by a de-quantised copy of the model (see
    :func:`core.generation.gguf_export.dense_companion`) and its KV cache handed to the quantised model
    for decoding: a third of the time to first token at the same decoding speed. One instance decodes one
    prompt at a time; concurrent calls wait for each other.

    Args:
        model: Model spec resolving to a GGUF file; defaults to SmolLM2-135M-Instruct, or to the adapter's
            base model when ``adapter`` is a peft directory.
        adapter: A GGUF LoRA adapter file, or a peft adapter directory (exported once to ``adapter.gguf``
            beside it, see :func:`gguf_adapter_for`).
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Wrap string prompts in the tokenizer's chat template.
        n_threads: CPU threads (default: the CPUs this process may run on).
        n_ctx: Context window in tokens (the KV cache is allocated for all of it).
        fast_prefill: Evaluate prompts with a de-quantised companion of the model.
        prefill_dtype: The companion's weights: ``"F32"`` (exact, fastest, 4 bytes a weight) or ``"F16"``.
        flash_attn: Use llama.cpp's fused attention (faster prompt evaluation).
    """

    backend_name = "llamacpp"

    def __init__(
        self,
        model: str | None = None,
        adapter: str | Path | None = None,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        n_threads: int | None = None,
        n_ctx: int = 4096,
        fast_prefill: bool = True,
        prefill_dtype: Literal["F32", "F16"] = "F32",
        flash_attn: bool = True,
    ) -> None:
        if not is_available():
            raise ModuleNotFoundError(
                "llama-cpp-python is not installed: `make install` builds it for this CPU (see the Makefile)."
            )
        lora_path: Path | None = None
        if adapter is not None:
            adapter = Path(adapter)
            if adapter.is_dir():
                model = model or adapter_base_model(adapter)
                lora_path = gguf_adapter_for(adapter)
            elif adapter.is_file() and adapter.suffix == ".gguf":
                lora_path = adapter
            else:
                raise FileNotFoundError(f"Adapter '{adapter}' is neither a peft directory nor a .gguf file.")
        spec = model or DEFAULT_GENERATOR
        self.model_path = gguf_path_of(spec)
        self.adapter_path = lora_path
        # Like Generator: an adapter saved with its own tokenizer (e.g. added tokens) brings it along.
        has_tokenizer = adapter is not None and (Path(adapter) / "tokenizer_config.json").is_file()
        tokenizer = load_tokenizer(str(adapter) if has_tokenizer else spec)
        self.prompter = Prompter(tokenizer, system_prompt, use_chat_template)
        threads = n_threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)
        options = {"n_ctx": n_ctx, "threads": threads, "flash_attn": flash_attn, "lora": lora_path}
        self.llm = _load_llama(self.model_path, **options)
        companion = dense_companion(self.model_path, prefill_dtype) if fast_prefill else self.model_path
        self.prefill_llm = _load_llama(companion, **options) if companion != self.model_path else None
        self.max_positions = self.llm.n_ctx()
        self.eos_ids = end_token_ids(self.tokenizer, self.llm.token_eos())
        self._lock = threading.Lock()
        logger.info(
            "Loaded GGUF model with llama.cpp",
            extra={"gguf": str(self.model_path), "adapter": str(lora_path), "fast_prefill": fast_prefill},
        )

    def generate(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """Generate a completion for one prompt (see :meth:`core.generation.Generator.generate`)."""
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return self.generate_ids(self.encode(prompt, system), settings)

    def stream(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> Iterator[str]:
        """Yield the completion as text chunks while it is generated (same text as :meth:`generate`)."""
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return self.stream_ids(self.encode(prompt, system), settings)

    def generate_batch(
        self,
        prompts: Sequence[PromptLike],
        settings: GenerateSettings | None = None,
        system: str | None = None,
        show_progress_bar: bool = False,
        **overrides: Any,
    ) -> list[GenerationResult]:
        """Generate completions for many prompts, one after the other, in input order."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError("generate_batch expects a non-empty list of prompts.")
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return [
            self.generate_ids(self.encode(p, system), settings)
            for p in progress_bar(prompts, desc="Generating", disable=not show_progress_bar)
        ]

    def generate_ids(self, prompt_ids: Sequence[int], settings: GenerateSettings) -> GenerationResult:
        """Generate from already tokenised prompt ids (the hook a :class:`Generator` can delegate to)."""
        t0, state = time.perf_counter(), {}
        text = "".join(self._run(list(prompt_ids), settings, state, t0))
        total = time.perf_counter() - t0
        return GenerationResult(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(state["ids"]),
            finish_reason=state.get("finish_reason", "length"),
            ttft_s=state.get("ttft_s", total),
            total_s=total,
            token_ids=state["ids"],
        )

    def stream_ids(self, prompt_ids: Sequence[int], settings: GenerateSettings) -> Iterator[str]:
        """Stream text chunks for already tokenised prompt ids (the twin of :meth:`generate_ids`)."""
        return self._run(list(prompt_ids), settings, {}, time.perf_counter())

    def _run(
        self, prompt_ids: list[int], settings: GenerateSettings, state: dict[str, Any], t0: float
    ) -> Iterator[str]:
        """Decode one prompt, yielding text as it becomes final; fills ``state`` with ids and timings."""
        if not prompt_ids:
            raise ValueError("The prompt is empty after tokenisation.")
        if len(prompt_ids) >= self.max_positions:
            raise ValueError(f"Prompt has {len(prompt_ids)} tokens; the context is {self.max_positions}.")
        budget = min(settings.max_new_tokens, self.max_positions - len(prompt_ids))
        decoder, matcher = IncrementalDecoder(self.tokenizer), StopMatcher(settings.stop)
        state["ids"] = decoder.ids
        steps = self._token_steps(prompt_ids, settings)
        with self._lock, closing(steps):  # closing frees the sampler as soon as decoding stops
            for step, token in enumerate(steps):
                if step == 0:
                    state["ttft_s"] = time.perf_counter() - t0
                end: FinishReason | None = None
                if token in self.eos_ids:
                    decoder.ids.append(token)
                    text, end = decoder.flush(), "stop"
                else:
                    text = decoder.push(token)
                    if step + 1 >= budget:
                        text, end = text + decoder.flush(), "length"
                emit, stopped = matcher.push(text)
                if stopped:
                    end = "stop"
                elif end is not None:
                    emit += matcher.flush()
                if emit:
                    yield emit
                if end is not None:
                    state["finish_reason"] = end
                    return

    def _token_steps(self, prompt_ids: list[int], settings: GenerateSettings) -> Iterator[int]:
        """Prefill, then yield one sampled token per forward pass until the caller stops."""
        import llama_cpp

        sampler = self._sampler(settings, prompt_ids)
        try:
            # Every call starts from an empty KV cache, so output never depends on earlier calls.
            prefill = self.prefill_llm or self.llm
            prefill.reset()
            prefill.eval(prompt_ids)
            token = int(llama_cpp.llama_sampler_sample(sampler, prefill.ctx, -1))
            if prefill is not self.llm:
                _copy_sequence(prefill, self.llm, prompt_ids)
            while True:
                yield token
                self.llm.eval([token])
                token = int(llama_cpp.llama_sampler_sample(sampler, self.llm.ctx, -1))
        finally:
            llama_cpp.llama_sampler_free(sampler)

    def _sampler(self, settings: GenerateSettings, prompt_ids: list[int]) -> Any:
        """A llama.cpp sampler chain in the torch path's order: penalty, temperature, top-k, top-p."""
        import llama_cpp

        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if settings.repetition_penalty != 1.0:
            penalty = llama_cpp.llama_sampler_init_penalties(
                self.llm.n_vocab(), self.max_positions, settings.repetition_penalty, 0.0, 0.0
            )
            add(chain, penalty)
            # Like transformers, penalise prompt tokens too: the sampler has to see them.
            for token in prompt_ids:
                llama_cpp.llama_sampler_accept(chain, token)
        if settings.temperature == 0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
            return chain
        add(chain, llama_cpp.llama_sampler_init_temp(settings.temperature))
        if settings.top_k > 0:
            add(chain, llama_cpp.llama_sampler_init_top_k(settings.top_k))
        if settings.top_p < 1.0:
            add(chain, llama_cpp.llama_sampler_init_top_p(settings.top_p, 1))
        seed = llama_cpp.LLAMA_DEFAULT_SEED if settings.seed is None else settings.seed
        add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain


def _load_llama(path: Path, n_ctx: int, threads: int, flash_attn: bool, lora: Path | None) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path),
        lora_path=str(lora) if lora else None,
        n_ctx=n_ctx,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        flash_attn=flash_attn,
        verbose=False,
    )


def _copy_sequence(source: Any, target: Any, prompt_ids: list[int]) -> None:
    """Move sequence 0's KV cache from one llama.cpp context to another of the same architecture."""
    import llama_cpp

    size = llama_cpp.llama_state_seq_get_size(source.ctx, 0)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(source.ctx, buffer, size, 0)
    target.reset()
    llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(target.ctx), True)
    if llama_cpp.llama_state_seq_set_data(target.ctx, buffer, written, 0) == 0:
        raise RuntimeError("llama.cpp could not load the prefilled KV cache into the decoding context.")
    # Llama.eval continues from n_tokens and records the ids it has seen.
    target.n_tokens = len(prompt_ids)
    target.input_ids[: len(prompt_ids)] = prompt_ids

"""The :class:`Generator` front end: one API over the torch, llama.cpp and remote backends.

The front end picks a backend, validates arguments and resolves decoding settings; the backends
(:mod:`core.generation.torch_backend`, :mod:`core.generation.llamacpp`, :mod:`core.generation.remote`)
decode. Backends never import this module; it imports them only when it builds one, so importing
:mod:`core.generation` loads neither torch nor llama.cpp.

Example:
    >>> gen = Generator()  # SmolLM2-135M-Instruct
    >>> gen.generate("What is the capital of France?", max_new_tokens=20).text
    'The capital of France is Paris.'
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.generation.adapters import adapter_base_model
from core.generation.prompting import PromptingMixin
from core.generation.textstream import pad_token_id
from core.generation.types import (
    BACKEND_ENV,
    BACKENDS,
    GENERATION_URL_ENV,
    Backend,
    GenerateSettings,
    GenerationResult,
    PromptLike,
)

logger = logging.getLogger(__name__)


def _choose_fast_backend(
    requested: str, model: str | None, adapter: str | Path | None, **options: Any
) -> tuple[Any, str | None]:
    """Build a llama.cpp backend when possible: ``(LlamaCppGenerator or None, reason)``.

    With ``requested == "llamacpp"`` every obstacle raises; with ``"auto"`` it becomes the reason.
    """
    from core.generation import llamacpp
    from core.models import DEFAULT_GENERATOR, resolve

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


class Generator(PromptingMixin):
    """Generate text with a causal LM, optionally with a LoRA adapter.

    Three backends share this API. ``llamacpp`` runs the model's GGUF file with llama.cpp (see
    :mod:`core.generation.llamacpp`; a peft adapter is exported once to ``adapter.gguf`` beside it), ~3x
    the torch path's decoding speed on CPU. ``torch`` runs the transformers model (adapter merged in).
    ``openai`` sends prompts to an OpenAI-compatible server. ``auto`` (the default, or the
    ``AIGC_GENERATION_BACKEND`` environment variable) picks the server when ``AIGC_GENERATION_URL`` is
    set, else llama.cpp when ``llama-cpp-python`` is importable and the model has a GGUF file, and
    otherwise falls back to torch, logging why. llama.cpp decodes with Q4_1 kernels, so greedy texts can
    differ from the torch path's after a near-tie (measured by ``aigc bench generation``:
    ``greedy_text_match``).

    Args:
        model: Model spec (see :mod:`core.models`); defaults to SmolLM2-135M-Instruct, or to the
            adapter's base model when ``adapter`` is given.
        adapter: A peft adapter directory (merged into the torch model, or exported to GGUF).
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Wrap string prompts in the tokenizer's chat template; when ``False`` (or the
            tokenizer has no template) strings are used verbatim.
        backend: ``auto``, ``llamacpp`` (raise when unavailable), ``torch`` or ``openai`` (the
            OpenAI-compatible server at ``AIGC_GENERATION_URL``, see :mod:`core.generation.remote`;
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
        self.fallback_reason: str | None = None
        self._spec = (model, adapter)
        self._torch_model: Any = None
        chosen: Any = None
        if requested == "openai" or (requested == "auto" and os.environ.get(GENERATION_URL_ENV, "").strip()):
            if adapter is not None:
                raise ValueError(
                    "a remote generation server cannot apply a local adapter: serve the merged model"
                )
            from core.generation.remote import RemoteGenerator

            chosen = RemoteGenerator(
                tokenizer_model=model, system_prompt=system_prompt, use_chat_template=use_chat_template
            )
        elif requested != "torch":
            options = {"system_prompt": system_prompt, "use_chat_template": use_chat_template}
            chosen, self.fallback_reason = _choose_fast_backend(
                requested, model, adapter, n_threads=n_threads, **options
            )
        if chosen is None:
            if self.fallback_reason is not None:
                logger.warning(
                    "Generation falls back to the torch backend", extra={"reason": self.fallback_reason}
                )
            from core.generation.torch_backend import TorchGenerator, load_torch_model

            chosen = TorchGenerator(*load_torch_model(model, adapter), system_prompt, use_chat_template)
        self._backend = chosen

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, system_prompt: str | None = None, use_chat_template: bool = True
    ) -> Generator:
        """Wrap an already loaded causal LM and tokenizer (always the torch backend)."""
        from core.generation.torch_backend import TorchGenerator

        self = cls.__new__(cls)
        self.fallback_reason, self._spec, self._torch_model = None, (None, None), None
        self._backend = TorchGenerator(model, tokenizer, system_prompt, use_chat_template)
        return self

    @property
    def backend(self) -> str:
        """The backend in use: ``llamacpp``, ``openai`` (a remote server) or ``torch``."""
        return self._backend.backend_name

    @property
    def prompter(self) -> Any:
        """The backend's :class:`~core.generation.prompting.Prompter` (tokenizer, template, system)."""
        return self._backend.prompter

    @property
    def eos_ids(self) -> set[int]:
        """Token ids that end generation."""
        return self._backend.eos_ids

    @property
    def pad_id(self) -> int:
        """The id that left-pads a batch."""
        return pad_token_id(self.tokenizer, self.eos_ids)

    @property
    def max_positions(self) -> int | None:
        """The model's context in tokens (``None`` when unknown, e.g. a remote server without it set)."""
        return self._backend.max_positions

    @property
    def model(self) -> Any:
        """The torch model (loaded on first use when another backend serves generation)."""
        if self._backend.backend_name == "torch":
            return self._backend.model
        if self._torch_model is None:
            from core.generation.torch_backend import load_torch_model

            self._torch_model = load_torch_model(*self._spec)[0]
        return self._torch_model

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
        yield from self._backend.stream(prompt, settings, system)

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
        The llama.cpp and remote backends decode the prompts one after the other (``batch_size`` is not
        used).

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
        if self._backend.backend_name == "torch":
            return self._backend.generate_batch(prompts, settings, system, batch_size, show_progress_bar)
        return self._backend.generate_batch(
            prompts, settings, system=system, show_progress_bar=show_progress_bar
        )

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
        return self._backend.generate_ids(ids, settings)


__all__ = ["Generator"]

"""Types every generation module shares: prompts, decoding settings, results, backend names, errors.

A neutral home: the front end (:mod:`core.generation.generator`), the backends (torch, llama.cpp,
remote) and the worker all import from here, and this module imports none of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Messages = Sequence[Mapping[str, str]]
PromptLike = str | Messages
Backend = Literal["auto", "llamacpp", "torch", "openai"]
BACKENDS: tuple[str, ...] = ("auto", "llamacpp", "torch", "openai")
# Environment variable that sets the default backend (``auto`` when unset).
BACKEND_ENV = "AIGC_GENERATION_BACKEND"
# A remote OpenAI-compatible server; when set, ``auto`` generates there (see core.generation.remote).
GENERATION_URL_ENV = "AIGC_GENERATION_URL"
FinishReason = Literal["stop", "length"]


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
    finish_reason: FinishReason
    ttft_s: float
    total_s: float
    token_ids: list[int] = field(default_factory=list)


class GenerationUnavailableError(RuntimeError):
    """No generated answer for this request (queue full, deadline passed, server down); hand off instead."""


__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "GENERATION_URL_ENV",
    "Backend",
    "FinishReason",
    "GenerateSettings",
    "GenerationResult",
    "GenerationUnavailableError",
    "Messages",
    "PromptLike",
]

"""Generation on a remote OpenAI-compatible server (llama.cpp's server, vLLM, TGI, a hosted API).

:class:`RemoteGenerator` has the calling conventions and results of :class:`core.generation.Generator`
and :class:`core.generation.llamacpp.LlamaCppGenerator`; ``Generator`` uses it as its backend when
``AIGC_GENERATION_URL`` is set (or ``backend="openai"``), so generation can move to a GPU pool while
retrieval and prompting stay local. Prompts go as chat messages to ``/v1/chat/completions`` (the
server applies its model's chat template); already tokenised prompts go as text to ``/v1/completions``.
A local tokenizer (of ``tokenizer_model``) only counts tokens so prompts can be fitted to the context.

Environment:
    AIGC_GENERATION_URL: Base URL of the server (``http://gpu-1:8080`` or ``.../v1``).
    AIGC_GENERATION_MODEL: Model name to request (default: the first one the server lists).
    AIGC_GENERATION_API_KEY: Bearer token for the server, if it needs one (never logged).
    AIGC_GENERATION_CONTEXT: The served model's context in tokens (default: not enforced locally).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from core.generation.prompting import Prompter, PromptingMixin
from core.generation.textstream import end_token_ids
from core.generation.types import (
    GENERATION_URL_ENV,
    GenerateSettings,
    GenerationResult,
    GenerationUnavailableError,
    PromptLike,
)
from core.models import DEFAULT_GENERATOR, load_tokenizer

logger = logging.getLogger(__name__)

URL_ENV = GENERATION_URL_ENV
MODEL_ENV = "AIGC_GENERATION_MODEL"
KEY_ENV = "AIGC_GENERATION_API_KEY"
CONTEXT_ENV = "AIGC_GENERATION_CONTEXT"
_MAX_STOP = 4  # the OpenAI API accepts at most four stop strings


class GenerationServiceError(GenerationUnavailableError):
    """The generation server cannot be reached or answered with an error (the message says which).

    A :class:`~core.generation.types.GenerationUnavailableError`: callers that hand off when no
    generated answer comes (the support bot) do the same when the server is down.
    """


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{URL_ENV} must be an http(s) URL like http://host:8080, got {_masked(url)!r}")
    return url if url.endswith("/v1") else f"{url}/v1"


def _masked(url: str) -> str:
    """``url`` without credentials or query (safe for logs and errors)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else "(not a URL)"


class RemoteGenerator(PromptingMixin):
    """Generate text with a model served behind an OpenAI-compatible HTTP API.

    Args:
        url: Server base URL (default ``AIGC_GENERATION_URL``).
        model: Model name to request (default ``AIGC_GENERATION_MODEL``, else the server's first model).
        tokenizer_model: Local model spec whose tokenizer counts prompt tokens (default SmolLM2).
        system_prompt: System message added to chat prompts that have none.
        use_chat_template: Whether string prompts are chat messages (always true for chat servers;
            ``False`` sends them as plain completions).
        timeout_s: Seconds to wait for the server to answer (and between streamed chunks).
        api_key: Bearer token (default ``AIGC_GENERATION_API_KEY``).
        context: The served model's context in tokens (default ``AIGC_GENERATION_CONTEXT``, or none).

    Raises:
        ValueError: No or a malformed URL.
        GenerationServiceError: The server cannot be reached to list its models.
    """

    backend_name = "openai"

    def __init__(
        self,
        url: str | None = None,
        model: str | None = None,
        tokenizer_model: str | None = None,
        system_prompt: str | None = None,
        use_chat_template: bool = True,
        timeout_s: float = 120.0,
        api_key: str | None = None,
        context: int | None = None,
    ) -> None:
        raw = url or os.environ.get(URL_ENV, "")
        if not raw.strip():
            raise ValueError(f"no generation server: set {URL_ENV} (e.g. http://127.0.0.1:8080)")
        self.base_url = _base_url(raw)
        self.timeout_s = timeout_s
        self._session = requests.Session()
        key = api_key or os.environ.get(KEY_ENV)
        if key:
            self._session.headers["Authorization"] = f"Bearer {key}"
        self.prompter = Prompter(
            load_tokenizer(tokenizer_model or DEFAULT_GENERATOR), system_prompt, use_chat_template
        )
        self.eos_ids = end_token_ids(self.tokenizer)
        env_context = os.environ.get(CONTEXT_ENV, "").strip()
        self.max_positions: int | None = context or (int(env_context) if env_context.isdigit() else None)
        self.model = model or os.environ.get(MODEL_ENV) or self._first_model()
        logger.info("Remote generation server", extra={"url": _masked(self.base_url), "model": self.model})

    # ------------------------------------------------------------------------------ HTTP
    def _post(self, path: str, payload: dict[str, Any], stream: bool = False) -> requests.Response:
        url = f"{self.base_url}{path}"
        try:
            response = self._session.post(url, json=payload, stream=stream, timeout=self.timeout_s)
        except requests.RequestException as err:
            raise GenerationServiceError(
                f"generation server {_masked(self.base_url)} unreachable: {type(err).__name__}"
            ) from None
        if response.status_code >= 400:
            detail = response.text[:300].replace("\n", " ")
            response.close()
            raise GenerationServiceError(
                f"generation server {_masked(self.base_url)} answered {response.status_code}: {detail}"
            )
        return response

    def _first_model(self) -> str:
        try:
            response = self._session.get(f"{self.base_url}/models", timeout=self.timeout_s)
            response.raise_for_status()
            models = [m["id"] for m in response.json().get("data", [])]
        except (requests.RequestException, ValueError, KeyError, TypeError) as err:
            raise GenerationServiceError(
                f"cannot list the models of {_masked(self.base_url)}: {type(err).__name__}"
            ) from None
        if not models:
            raise GenerationServiceError(f"generation server {_masked(self.base_url)} serves no model")
        return str(models[0])

    # ------------------------------------------------------------------------------ requests
    def _options(self, settings: GenerateSettings) -> dict[str, Any]:
        options: dict[str, Any] = {
            "model": self.model,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
        }
        if settings.top_k > 0:
            options["top_k"] = settings.top_k
        if settings.repetition_penalty != 1.0:
            # vLLM and TGI read repetition_penalty, llama.cpp's server repeat_penalty.
            options["repetition_penalty"] = settings.repetition_penalty
            options["repeat_penalty"] = settings.repetition_penalty
        if settings.stop:
            options["stop"] = list(settings.stop[:_MAX_STOP])
        if settings.seed is not None:
            options["seed"] = settings.seed
        return options

    def _request(self, prompt: PromptLike, system: str | None) -> tuple[str, dict[str, Any]]:
        if isinstance(prompt, str) and not self.use_chat_template:
            # Only a per-call system message is prepended here (system_prompt is not: kept as it was).
            text = prompt if system is None else f"{system}\n\n{prompt}"
            return "/completions", {"prompt": text}
        return "/chat/completions", {"messages": self.prompter.messages(prompt, system)}

    def _complete(self, path: str, body: dict[str, Any], settings: GenerateSettings) -> GenerationResult:
        t0 = time.perf_counter()
        response = self._post(path, {**body, **self._options(settings), "stream": False})
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if "message" in choice else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError) as err:
            raise GenerationServiceError(
                f"unexpected answer from {_masked(self.base_url)}: {err!r}"
            ) from None
        total = time.perf_counter() - t0
        usage = data.get("usage") or {}
        return GenerationResult(
            text=text or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
            ttft_s=total,
            total_s=total,
        )

    def _stream(self, path: str, body: dict[str, Any], settings: GenerateSettings) -> Iterator[str]:
        response = self._post(path, {**body, **self._options(settings), "stream": True}, stream=True)
        with response:
            for line in response.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    return
                try:
                    choice = json.loads(data)["choices"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    continue  # keep-alives and vendor extras
                delta = choice.get("delta", {}).get("content") if "delta" in choice else choice.get("text")
                if delta:
                    yield delta

    # ------------------------------------------------------------------------------ public API
    def generate(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> GenerationResult:
        """Generate a completion for one prompt (see :meth:`core.generation.Generator.generate`)."""
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return self._complete(*self._request(prompt, system), settings)

    def stream(
        self,
        prompt: PromptLike,
        settings: GenerateSettings | None = None,
        system: str | None = None,
        **overrides: Any,
    ) -> Iterator[str]:
        """Yield the completion as text chunks while the server sends them."""
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return self._stream(*self._request(prompt, system), settings)

    def generate_batch(
        self,
        prompts: Sequence[PromptLike],
        settings: GenerateSettings | None = None,
        system: str | None = None,
        show_progress_bar: bool = False,
        **overrides: Any,
    ) -> list[GenerationResult]:
        """Generate completions for many prompts, one request each, in input order."""
        if isinstance(prompts, str) or not prompts:
            raise ValueError("generate_batch expects a non-empty list of prompts.")
        settings = (settings or GenerateSettings()).with_overrides(**overrides)
        return [self._complete(*self._request(p, system), settings) for p in prompts]

    def generate_ids(self, prompt_ids: Sequence[int], settings: GenerateSettings) -> GenerationResult:
        """Generate from token ids, sent as their text to ``/v1/completions`` (same tokenizer assumed)."""
        return self._complete("/completions", {"prompt": self._text_of(prompt_ids)}, settings)

    def stream_ids(self, prompt_ids: Sequence[int], settings: GenerateSettings) -> Iterator[str]:
        """Stream from token ids (the twin of :meth:`generate_ids`)."""
        return self._stream("/completions", {"prompt": self._text_of(prompt_ids)}, settings)

    def _text_of(self, prompt_ids: Sequence[int]) -> str:
        if not prompt_ids:
            raise ValueError("The prompt is empty.")
        return self.tokenizer.decode(list(prompt_ids), skip_special_tokens=False)


def remote_configured() -> bool:
    """Whether ``AIGC_GENERATION_URL`` names a generation server."""
    return bool(os.environ.get(URL_ENV, "").strip())


__all__ = ["GenerationServiceError", "RemoteGenerator", "remote_configured"]

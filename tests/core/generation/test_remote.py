"""RemoteGenerator against a real OpenAI-compatible server: llama-cpp-python's, over the packaged SmolLM2.

The server is started by the test on 127.0.0.1 with a free port (no mock); the tests skip, with the
reason, when llama-cpp-python or its server extras are not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.generation import GenerateSettings, GenerationUnavailableError, Generator
from core.generation.gguf_export import gguf_path_of
from core.generation.remote import GenerationServiceError, RemoteGenerator
from tests.servers import free_port, start_process, stop_process, wait_http

QUESTION = "What is the capital of France? Answer in one sentence."


def start_llama_server(log_path: Path) -> tuple[subprocess.Popen, str]:
    """``python -m llama_cpp.server`` over SmolLM2 on a free port; ``(process, base_url)`` once it answers."""
    for module in ("llama_cpp", "sse_starlette", "starlette_context", "pydantic_settings"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (llama-cpp-python[server] extras)")
    port = free_port()
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(gguf_path_of("smollm2-135m-instruct")),
        "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "1",
    ]  # fmt: skip
    proc = start_process(cmd, log_path, {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{url}/v1/models", log_path, timeout_s=120)
    return proc, url


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    """Base URL of a live llama.cpp OpenAI-compatible server (stopped after the module)."""
    proc, url = start_llama_server(tmp_path_factory.mktemp("llama-server") / "server.log")
    try:
        yield url
    finally:
        stop_process(proc)


def test_generate_and_stream_agree(llama_server: str) -> None:
    gen = RemoteGenerator(llama_server)
    assert gen.model == "smollm2"  # the server's first (only) model, listed by /v1/models
    result = gen.generate(QUESTION, max_new_tokens=24)
    assert "Paris" in result.text
    assert result.prompt_tokens > 5 and 0 < result.completion_tokens <= 24
    assert result.finish_reason in ("stop", "length")
    chunks = list(gen.stream(QUESTION, max_new_tokens=24))
    assert len(chunks) > 1  # really streamed, not one block
    assert "".join(chunks) == result.text  # greedy: same text both ways


def test_length_limit_and_stop_strings(llama_server: str) -> None:
    gen = RemoteGenerator(llama_server + "/v1/")
    short = gen.generate("Count from 1 to 50, separated by commas.", max_new_tokens=5)
    assert short.finish_reason == "length" and short.completion_tokens == 5
    settings = GenerateSettings(max_new_tokens=60, stop=("5",))
    stopped = gen.generate("Count from 1 to 50, separated by commas.", settings)
    assert "5" not in stopped.text and stopped.finish_reason == "stop"


def test_generator_front_end_uses_the_server(llama_server: str, monkeypatch) -> None:
    monkeypatch.setenv("AIGC_GENERATION_URL", llama_server)
    gen = Generator()
    assert gen.backend == "openai"
    messages = [{"role": "user", "content": QUESTION}]
    assert "Paris" in gen.generate(messages, max_new_tokens=24).text
    assert "Paris" in "".join(gen.stream(messages, max_new_tokens=24))
    batch = gen.generate_batch([QUESTION, "Name one primary colour."], max_new_tokens=16)
    assert len(batch) == 2 and all(r.text for r in batch)
    # Token ids go to /v1/completions as their text: the chat template rendered locally.
    assert "Paris" in gen.generate_ids(gen.encode(QUESTION), max_new_tokens=24).text


def test_unreachable_server_is_one_clear_error() -> None:
    # Callers that hand off when generation is unavailable (the support bot) do so for a dead server too.
    assert issubclass(GenerationServiceError, GenerationUnavailableError)
    with pytest.raises(GenerationServiceError, match=r"127\.0\.0\.1:\d+/v1.*(unreachable|ConnectionError)"):
        RemoteGenerator(f"http://user:secret@127.0.0.1:{free_port()}")
    with pytest.raises(ValueError, match="http"):
        RemoteGenerator("ftp://example")


def test_secret_never_in_errors(monkeypatch) -> None:
    monkeypatch.setenv("AIGC_GENERATION_API_KEY", "sk-very-secret")
    with pytest.raises(GenerationServiceError) as err:
        RemoteGenerator(f"http://127.0.0.1:{free_port()}")
    assert "sk-very-secret" not in str(err.value)

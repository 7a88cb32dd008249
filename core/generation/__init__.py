"""Text generation: one :class:`Generator` front end over interchangeable backends.

Modules, each importing only those above it in this list (no module imports the front end except
this package's ``__init__``):

* :mod:`~core.generation.types` — prompts, :class:`GenerateSettings`, :class:`GenerationResult`,
  backend names, :class:`GenerationUnavailableError`;
* :mod:`~core.generation.adapters` — the base model of a saved LoRA adapter;
* :mod:`~core.generation.prompting` — chat messages, chat template and token ids of a prompt;
* :mod:`~core.generation.textstream` — incremental detokenisation, stop strings, end tokens;
* :mod:`~core.generation.gguf_export` — GGUF LoRA adapters and dense companions for llama.cpp;
* backends: :mod:`~core.generation.torch_backend` (transformers, our decode loop),
  :mod:`~core.generation.llamacpp` (GGUF with llama.cpp), :mod:`~core.generation.remote`
  (an OpenAI-compatible server);
* :mod:`~core.generation.generator` — :class:`Generator`, which picks a backend;
* :mod:`~core.generation.worker` — one bounded FIFO queue per process in front of a generator.

Importing this package loads neither torch nor llama.cpp; a backend loads them when it is built.

Example:
    >>> gen = Generator()  # SmolLM2-135M-Instruct
    >>> gen.generate("What is the capital of France?", max_new_tokens=20).text
    'The capital of France is Paris.'
"""

from core.generation.adapters import ADAPTER_MANIFEST, adapter_base_model
from core.generation.generator import Generator
from core.generation.types import (
    BACKEND_ENV,
    BACKENDS,
    GENERATION_URL_ENV,
    Backend,
    GenerateSettings,
    GenerationResult,
    GenerationUnavailableError,
    Messages,
    PromptLike,
)
from core.generation.worker import (
    DeadlineExceededError,
    GenerationWorker,
    QueueFullError,
    queue_status,
    shared_worker,
)

__all__ = [
    "ADAPTER_MANIFEST",
    "BACKENDS",
    "BACKEND_ENV",
    "GENERATION_URL_ENV",
    "Backend",
    "DeadlineExceededError",
    "GenerateSettings",
    "GenerationResult",
    "GenerationUnavailableError",
    "GenerationWorker",
    "Generator",
    "Messages",
    "PromptLike",
    "QueueFullError",
    "adapter_base_model",
    "queue_status",
    "shared_worker",
]

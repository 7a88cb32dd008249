"""``aigc bench generation``: decode tokens/s and time to first token, project vs llama.cpp vs transformers.

SmolLM2-135M-Instruct, a 512-token prompt built from real support answers, 128 new tokens, greedy, 2
threads. Contestants, alternated rep by rep:

* ``project``: :class:`core.generation.Generator` on its default path (llama.cpp when available);
* ``llamacpp``: ``llama_cpp.Llama`` with its own defaults on the same GGUF file, streamed completion;
* ``transformers``: the fp32 transformers model's ``generate`` (TTFT: a 1-token ``generate``).

The same three run again for a LoRA-fine-tuned model (a peft adapter on q/k/v/o; llama.cpp gets the
project's GGUF export of it, transformers the merged model). Decode speed is (tokens - 1) / (time after
the first token). Greedy text agreement between the project path and the torch reference path is
measured on short real questions (``greedy_text_match``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from core.bench.data import as_list, stackfaq
from core.bench.harness import (
    BenchSkipped,
    alternate,
    environment,
    has_module,
    markdown_table,
    median,
    ratio,
    shared_data_dir,
    write_results,
)

logger = logging.getLogger(__name__)

PROMPT_TOKENS = 512
NEW_TOKENS = 128
INSTRUCTION = "Summarise the help-desk answers above in detail, one paragraph per topic."


def _faq(data: Path) -> list[dict[str, Any]]:
    return stackfaq(data)


def _long_prompt(gen: Any, data: Path) -> list[int]:
    """Token ids of a chat prompt of exactly :data:`PROMPT_TOKENS` tokens (real answers + instruction)."""
    answers = [a for item in _faq(data) for a in _as_list(item.get("answer"))]
    context = "\n\n".join(answers)
    tok = gen.tokenizer
    ids = tok(context, add_special_tokens=False)["input_ids"]
    overhead = len(gen.encode(INSTRUCTION))
    body = tok.decode(ids[: PROMPT_TOKENS - overhead + 8])
    for cut in range(len(body), 0, -max(1, len(body) // 400)):
        prompt = gen.encode(f"{body[:cut]}\n\n{INSTRUCTION}")
        if len(prompt) <= PROMPT_TOKENS:
            return prompt
    raise BenchSkipped("could not build a 512-token prompt")


_as_list = as_list


def questions(data: Path, n: int) -> list[str]:
    """``n`` real user questions (StackFAQ paraphrases), for the greedy-text comparison."""
    out: list[str] = []
    for item in _faq(data):
        for q in _as_list(item.get("rephr")):
            if q.strip() and q.strip() != "*":
                out.append(q.strip())
                break
    return out[:n]


def _rates(ttft: list[float], totals: list[float], tokens: list[int]) -> dict[str, float]:
    decode = [(n - 1) / (t - f) for f, t, n in zip(ttft, totals, tokens, strict=True) if n > 1 and t > f]
    return {
        "ttft_ms": round(1000 * median(ttft), 1),
        "decode_tok_s": round(median(decode), 2) if decode else None,
        "tokens": int(median(tokens)),
    }


class _Runner:
    """One contestant: ``run()`` generates once and records (ttft, total, tokens)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.ttft: list[float] = []
        self.total: list[float] = []
        self.tokens: list[int] = []

    def __call__(self) -> None:
        ttft, total, tokens = self.fn()
        self.ttft.append(ttft)
        self.total.append(total)
        self.tokens.append(tokens)

    def summary(self, skip: int) -> dict[str, float]:
        return _rates(self.ttft[skip:], self.total[skip:], self.tokens[skip:])


def _project(adapter: Path | None, prompt: list[int]) -> tuple[Any, Any]:
    from core.generation import GenerateSettings, Generator

    gen = Generator(adapter=adapter, n_threads=2)
    settings = GenerateSettings(max_new_tokens=NEW_TOKENS)

    def run() -> tuple[float, float, int]:
        result = gen.generate_ids(prompt, settings)
        return result.ttft_s, result.total_s, result.completion_tokens

    return gen, run


def _llamacpp_peer(adapter_gguf: Path | None, prompt: list[int]) -> Any:
    import llama_cpp

    from core.generation.gguf_export import gguf_path_of

    llm = llama_cpp.Llama(
        model_path=str(gguf_path_of("smollm2-135m-instruct")),
        lora_path=str(adapter_gguf) if adapter_gguf else None,
        n_ctx=2048,
        n_threads=2,
        n_threads_batch=2,
        verbose=False,
    )

    def run() -> tuple[float, float, int]:
        llm.reset()
        t0 = time.perf_counter()
        first, n = None, 0
        stream = llm.create_completion(prompt, max_tokens=NEW_TOKENS, temperature=0.0, stream=True)
        for _ in stream:
            n += 1
            if first is None:
                first = time.perf_counter() - t0
        return first or 0.0, time.perf_counter() - t0, n

    return run


def _transformers_peer(adapter: Path | None, prompt: list[int]) -> Any:
    import torch

    from core.generation import Generator

    gen = Generator(adapter=adapter, backend="torch")
    model = gen.model
    ids = torch.tensor([prompt])
    eos = sorted(gen.eos_ids)

    @torch.inference_mode()
    def run() -> tuple[float, float, int]:
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=1, do_sample=False, eos_token_id=eos, pad_token_id=gen.pad_id)
        ttft = time.perf_counter() - t0
        t1 = time.perf_counter()
        out = model.generate(
            ids, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=eos, pad_token_id=gen.pad_id
        )
        # The full run repeats the prefill, so (tokens - 1) / (full time - prefill time) is its decode speed.
        return ttft, time.perf_counter() - t1, out.shape[1] - ids.shape[1]

    return run


def make_adapter(directory: Path) -> Path:
    """A LoRA adapter on SmolLM2 (r=8, q/k/v/o, non-zero weights) for the fine-tuned measurement."""
    if (directory / "adapter_model.safetensors").is_file():
        return directory
    import torch
    from peft import LoraConfig, get_peft_model

    from core.models import load_causal_lm

    base, _ = load_causal_lm("smollm2-135m-instruct", fresh=True)
    config = LoraConfig(
        r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    torch.manual_seed(0)
    model = get_peft_model(base, config)
    with torch.no_grad():  # small weights: a plausible fine-tune, not noise that wrecks the model
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(0.05)
    model.save_pretrained(directory)
    # peft records the materialised cache directory; name the packaged model (which has the GGUF file).
    config_path = directory / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "smollm2-135m-instruct"
    config_path.write_text(json.dumps(config, indent=2))
    return directory


def greedy_text_match(adapter: Path | None, prompts: list[str], max_new_tokens: int = 48) -> dict[str, Any]:
    """Share of prompts whose greedy text is identical on the project path and the torch reference path."""
    from core.generation import Generator

    fast = Generator(adapter=adapter, n_threads=2)
    if fast.backend == "torch":
        return {"backend": "torch", "text_match": 1.0, "prompts": len(prompts), "note": fast.fallback_reason}
    reference = Generator(adapter=adapter, backend="torch")
    same_text = same_first = 0
    agree = total = 0
    for prompt in prompts:
        a = fast.generate(prompt, max_new_tokens=max_new_tokens)
        b = reference.generate(prompt, max_new_tokens=max_new_tokens)
        same_text += a.text == b.text
        same_first += a.token_ids[:1] == b.token_ids[:1]
        # Tokens agree up to the first difference (after it the contexts differ).
        n = next((i for i, (x, y) in enumerate(zip(a.token_ids, b.token_ids, strict=False)) if x != y), None)
        agree += n if n is not None else min(len(a.token_ids), len(b.token_ids))
        total += min(len(a.token_ids), len(b.token_ids))
    return {
        "backend": fast.backend,
        "prompts": len(prompts),
        "max_new_tokens": max_new_tokens,
        "text_match": round(same_text / len(prompts), 3),
        "first_token_match": round(same_first / len(prompts), 3),
        "tokens_before_first_difference": round(agree / max(total, 1), 3),
    }


def _measure(adapter: Path | None, prompt: list[int], reps: int, skipped: dict[str, str]) -> dict[str, Any]:
    from core.generation.gguf_export import gguf_adapter_for

    gen, project = _project(adapter, prompt)
    contestants: dict[str, _Runner] = {"project": _Runner(project)}
    if has_module("llama_cpp"):
        lora = gguf_adapter_for(adapter) if adapter else None
        contestants["llamacpp"] = _Runner(_llamacpp_peer(lora, prompt))
    else:
        skipped["llamacpp"] = "llama-cpp-python is not installed (pip install -e .[bench])"
    contestants["transformers"] = _Runner(_transformers_peer(adapter, prompt))
    alternate(contestants, reps=reps, warmup=1, label="generation")
    rows = {name: runner.summary(skip=1) for name, runner in contestants.items()}
    out: dict[str, Any] = {"backend": gen.backend, "fallback_reason": gen.fallback_reason, **rows}
    proj, llama, hf = rows["project"], rows.get("llamacpp"), rows["transformers"]
    out["decode_ratio_vs_llamacpp"] = ratio(proj["decode_tok_s"], llama and llama["decode_tok_s"])
    # TTFT: lower is better, so the ratio is project / peer time (target <= 1.0).
    out["ttft_ratio_vs_llamacpp"] = ratio(proj["ttft_ms"], llama and llama["ttft_ms"])
    out["decode_ratio_vs_transformers"] = ratio(proj["decode_tok_s"], hf["decode_tok_s"])
    out["ttft_ratio_vs_transformers"] = ratio(proj["ttft_ms"], hf["ttft_ms"])
    return out


def run(reps: int = 5, quick: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run the generation benchmark; returns the result dict (also written to ``out``)."""
    from core.generation import Generator
    from core.paths import cache_dir

    data = shared_data_dir()
    reference = Generator(backend="torch")
    prompt = _long_prompt(reference, data)
    adapter = make_adapter(cache_dir() / "bench" / "smollm2-lora-r8")
    skipped: dict[str, str] = {}
    result: dict[str, Any] = {
        "bench": "generation",
        "model": "smollm2-135m-instruct",
        "prompt_tokens": len(prompt),
        "max_new_tokens": NEW_TOKENS,
        "reps": reps,
        "env": environment(),
    }
    result.update(_measure(None, prompt, reps, skipped))
    result["finetuned"] = _measure(adapter, prompt, reps, skipped)
    n = 4 if quick else 30
    qs = questions(data, n)
    result["greedy_text_match"] = greedy_text_match(None, qs, 24 if quick else 48)
    result["finetuned"]["greedy_text_match"] = greedy_text_match(adapter, qs, 24 if quick else 48)
    result["skipped"] = skipped
    write_results("generation", result, _markdown(result), out)
    return result


def _markdown(r: dict[str, Any]) -> str:
    rows = []
    for label, part in (("base", r), ("LoRA", r["finetuned"])):
        for name in ("project", "llamacpp", "transformers"):
            if name in part:
                m = part[name]
                rows.append([label, name, m["ttft_ms"], m["decode_tok_s"], m["tokens"]])
    table = markdown_table(["model", "contestant", "TTFT ms", "decode tok/s", "tokens"], rows)
    ratios = markdown_table(
        ["model", "decode vs llama.cpp", "TTFT vs llama.cpp", "decode vs transformers", "greedy text match"],
        [
            [label, p["decode_ratio_vs_llamacpp"], p["ttft_ratio_vs_llamacpp"],
             p["decode_ratio_vs_transformers"], p["greedy_text_match"]["text_match"]]
            for label, p in (("base", r), ("LoRA", r["finetuned"]))
        ],
    )  # fmt: skip
    head = (
        f"### Generation ({r['model']}, {r['prompt_tokens']}-token prompt, {r['max_new_tokens']} new tokens, "
        f"greedy, {r['env']['threads']} threads)\n\n"
    )
    return head + table + "\n" + ratios

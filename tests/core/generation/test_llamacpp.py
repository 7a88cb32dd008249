"""llama.cpp backend on the real SmolLM2 GGUF, and GGUF export of peft LoRA adapters.

The export tests need only ``gguf``; the backend tests skip (with the reason) when llama-cpp-python is
not installed or cannot run a model on this CPU (a wheel built with instructions the CPU lacks dies with
SIGILL, so that is probed once in a subprocess rather than in the test process).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from core.generation import GenerateSettings, Generator
from core.generation.gguf_export import dense_companion, export_lora_to_gguf, gguf_path_of
from core.generation.llamacpp import LlamaCppGenerator, is_available

CAPITAL = "What is the capital of France?"
ESSAY = "Write a long essay about the history of Rome."
PROMPTS = [CAPITAL, "List three fruits.", "How do I reset my password?", "Why is the sky blue?"]

_PROBE = """
import llama_cpp
from core.generation.gguf_export import gguf_path_of
llm = llama_cpp.Llama(str(gguf_path_of("smollm2-135m-instruct")), n_ctx=64, n_threads=2, verbose=False)
llm.eval([1, 9690, 198])
"""


@pytest.fixture(scope="session")
def llama_ok() -> None:
    """Skip unless llama-cpp-python is installed and runs the packaged model (checked in a subprocess)."""
    if not is_available():
        pytest.skip("llama-cpp-python is not installed (make install builds it; see the Makefile)")
    probe = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        code = probe.returncode
        how = signal.Signals(-code).name if code < 0 else f"exit {code}"
        pytest.skip(
            f"llama-cpp-python cannot run a model on this CPU ({how}; a wheel built for instructions the "
            f"CPU lacks? rebuild with the Makefile's flags): {probe.stderr[-300:]}"
        )


@pytest.fixture(scope="module")
def fast(llama_ok) -> LlamaCppGenerator:
    return LlamaCppGenerator(n_threads=2)


@pytest.fixture(scope="module")
def smol() -> Generator:
    return Generator(backend="torch")  # the reference path


@pytest.fixture(scope="module")
def smol_adapter_dir(tmp_path_factory):
    """A LoRA adapter on SmolLM2 with random (non-zero) weights on every linear layer but the LM head.

    The attention and MLP projections, as the SFT defaults adapt (``target_modules: ["all-linear"]``).
    """
    from peft import LoraConfig, get_peft_model

    from core.models import load_causal_lm

    base, _ = load_causal_lm("smollm2-135m-instruct", fresh=True)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        init_lora_weights=False,
        use_rslora=True,  # scale alpha / sqrt(r): the export must not assume alpha / r
    )
    torch.manual_seed(0)
    model = get_peft_model(base, config)
    out = tmp_path_factory.mktemp("smol-lora")
    model.save_pretrained(out)
    config_path = out / "adapter_config.json"
    saved = json.loads(config_path.read_text())
    saved["base_model_name_or_path"] = "smollm2-135m-instruct"
    config_path.write_text(json.dumps(saved))
    return out


def test_export_writes_llama_cpp_adapter_layout(smol_adapter_dir, tmp_path):
    import gguf
    from safetensors.torch import load_file

    out = export_lora_to_gguf(smol_adapter_dir, tmp_path / "adapter.gguf")
    reader = gguf.GGUFReader(out)
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.type"] == "adapter"
    assert fields["adapter.type"] == "lora"
    assert fields["adapter.lora.alpha"] == 0.0
    tensors = {t.name: np.array(t.data) for t in reader.tensors}
    assert len(tensors) == 30 * 7 * 2
    assert "blk.3.ffn_gate.weight.lora_a" in tensors and "blk.3.ffn_down.weight.lora_b" in tensors
    state = load_file(smol_adapter_dir / "adapter_model.safetensors")
    prefix = "base_model.model.model.layers.3.self_attn"
    scale = 8 / 4**0.5
    a_v, b_v = state[f"{prefix}.v_proj.lora_A.weight"], state[f"{prefix}.v_proj.lora_B.weight"]
    np.testing.assert_array_equal(tensors["blk.3.attn_v.weight.lora_a"], a_v.numpy())
    np.testing.assert_allclose(tensors["blk.3.attn_v.weight.lora_b"], scale * b_v.numpy(), rtol=1e-6)
    # q rows are permuted like the base GGUF's: the delta must match the packaged attn_q layout.
    delta_hf = scale * (state[f"{prefix}.q_proj.lora_B.weight"] @ state[f"{prefix}.q_proj.lora_A.weight"])
    delta_gguf = tensors["blk.3.attn_q.weight.lora_b"] @ tensors["blk.3.attn_q.weight.lora_a"]
    heads = delta_hf.numpy().reshape(9, 2, 32, 576).swapaxes(1, 2).reshape(576, 576)
    np.testing.assert_allclose(delta_gguf, heads, rtol=1e-5, atol=1e-7)
    assert not np.allclose(delta_gguf, delta_hf.numpy())


def test_export_rejects_what_gguf_adapters_cannot_hold(smol_adapter_dir, tmp_path, tiny_causal_lm_dir):
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        export_lora_to_gguf(tmp_path / "missing", tmp_path / "a.gguf")
    dora = tmp_path / "dora"
    dora.mkdir()
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        (dora / name).write_bytes((smol_adapter_dir / name).read_bytes())
    config = json.loads((dora / "adapter_config.json").read_text())
    (dora / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ValueError, match="DoRA"):
        export_lora_to_gguf(dora, tmp_path / "a.gguf")
    with pytest.raises(ValueError, match="no GGUF file"):
        export_lora_to_gguf(smol_adapter_dir, tmp_path / "a.gguf", base_model=str(tiny_causal_lm_dir))
    assert not (tmp_path / "a.gguf").exists()


def test_dense_companion_holds_the_dequantised_weights():
    import gguf

    source = gguf.GGUFReader(gguf_path_of("smollm2-135m-instruct"))
    dense = gguf.GGUFReader(dense_companion(gguf_path_of("smollm2-135m-instruct"), "F32"))
    original = next(t for t in source.tensors if t.name == "blk.0.attn_q.weight")
    copied = next(t for t in dense.tensors if t.name == "blk.0.attn_q.weight")
    assert copied.tensor_type == gguf.GGMLQuantizationType.F32
    expected = gguf.quants.dequantize(original.data, original.tensor_type)
    np.testing.assert_array_equal(np.array(copied.data).reshape(expected.shape), expected)


def test_greedy_answers_capital_of_france(fast):
    result = fast.generate(CAPITAL, max_new_tokens=20)
    assert "Paris" in result.text
    assert result.finish_reason == "stop"
    assert result.token_ids[-1] in fast.eos_ids
    assert result.text == fast.tokenizer.decode(result.token_ids, skip_special_tokens=True)
    assert result.prompt_tokens == len(fast.encode(CAPITAL))
    assert 0 < result.ttft_s <= result.total_s


def test_prompt_and_first_token_match_the_torch_path(fast, smol):
    # The F32 prefill gives the torch model's logits, so the first greedy token is the same.
    for prompt in PROMPTS:
        assert fast.encode(prompt) == smol.encode(prompt)
        assert (
            fast.generate(prompt, max_new_tokens=1).token_ids
            == smol.generate(prompt, max_new_tokens=1).token_ids
        )


def test_stream_equals_generate_and_max_new_tokens(fast):
    result = fast.generate(ESSAY, max_new_tokens=24)
    chunks = list(fast.stream(ESSAY, max_new_tokens=24))
    assert len(chunks) > 1
    assert "".join(chunks) == result.text
    assert result.finish_reason == "length" and result.completion_tokens == 24


def test_stop_string_is_cut_and_stripped(fast):
    base = fast.generate(ESSAY, max_new_tokens=20)
    stop = base.text[10:14]
    expected = base.text[: base.text.find(stop)]
    result = fast.generate(ESSAY, max_new_tokens=20, stop=[stop])
    assert result.text == expected
    assert result.finish_reason == "stop"
    assert result.completion_tokens < base.completion_tokens
    assert "".join(fast.stream(ESSAY, max_new_tokens=20, stop=[stop])) == expected


def test_sampling_with_seed_is_reproducible(fast):
    settings = GenerateSettings(max_new_tokens=12, temperature=1.0, top_k=50, top_p=0.95, seed=7)
    first = fast.generate("Tell me a story.", settings)
    assert fast.generate("Tell me a story.", settings).token_ids == first.token_ids
    assert fast.generate("Tell me a story.", settings, seed=8).token_ids != first.token_ids
    penalised = fast.generate(ESSAY, max_new_tokens=20, repetition_penalty=1.5)
    assert penalised.token_ids != fast.generate(ESSAY, max_new_tokens=20).token_ids


def test_too_long_prompt_raises(fast):
    with pytest.raises(ValueError, match="context"):
        fast.generate_ids(list(range(10, 10 + fast.max_positions)), GenerateSettings(max_new_tokens=2))


def test_adapter_changes_output_like_the_merged_torch_model(llama_ok, fast, smol_adapter_dir):
    tuned = LlamaCppGenerator(adapter=smol_adapter_dir, n_threads=2)
    assert (smol_adapter_dir / "adapter.gguf").is_file()  # exported once, beside the adapter
    reference = Generator(adapter=smol_adapter_dir, backend="torch")
    for prompt in PROMPTS[:2]:
        ids = tuned.generate(prompt, max_new_tokens=8).token_ids
        assert ids != fast.generate(prompt, max_new_tokens=8).token_ids
        assert ids[0] == reference.generate(prompt, max_new_tokens=1).token_ids[0]


def test_generator_delegates_to_llama_cpp_by_default(llama_ok, fast, smol_adapter_dir):
    gen = Generator(n_threads=2)  # backend="auto"
    assert gen.backend == "llamacpp" and gen.fallback_reason is None
    result = gen.generate(CAPITAL, max_new_tokens=12)
    assert result.token_ids == fast.generate(CAPITAL, max_new_tokens=12).token_ids
    assert "".join(gen.stream(CAPITAL, max_new_tokens=12)) == result.text
    assert gen.generate_ids(gen.encode(CAPITAL), max_new_tokens=12).token_ids == result.token_ids
    batch = gen.generate_batch([CAPITAL, ESSAY], max_new_tokens=6)
    assert batch[0].token_ids == result.token_ids[:6] and batch[1].completion_tokens == 6
    # A fine-tuned model stays on the fast path: its adapter is exported to GGUF beside it.
    tuned = Generator(adapter=smol_adapter_dir, n_threads=2)
    assert tuned.backend == "llamacpp" and (smol_adapter_dir / "adapter.gguf").is_file()
    assert tuned.generate(CAPITAL, max_new_tokens=8).token_ids != result.token_ids[:8]


def test_decode_companions_can_be_requantised():
    import gguf

    q8 = gguf.GGUFReader(dense_companion(gguf_path_of("smollm2-135m-instruct"), "Q8_0"))
    tensor = next(t for t in q8.tensors if t.name == "blk.0.attn_q.weight")
    assert tensor.tensor_type == gguf.GGMLQuantizationType.Q8_0
    with pytest.raises(ValueError, match="dtype"):
        dense_companion(gguf_path_of("smollm2-135m-instruct"), "Q2_K")

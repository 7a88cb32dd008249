"""Generator tests on the real SmolLM2-135M-Instruct (cheap) and a LoRA adapter on a tiny random Llama."""

from __future__ import annotations

import json

import pytest
import torch

from core.generation import GenerateSettings, Generator, adapter_base_model
from core.generation.textstream import StopMatcher

CAPITAL = "What is the capital of France?"
COLOURS = "Name three colors."
ESSAY = "Write a long essay about the history of Rome."


@pytest.fixture(scope="module")
def smol() -> Generator:
    # The torch reference path on the default model (test_llamacpp.py covers the fast path).
    return Generator(backend="torch")


def test_greedy_answers_capital_of_france(smol):
    result = smol.generate(CAPITAL, max_new_tokens=20)
    assert "Paris" in result.text
    assert result.finish_reason == "stop"  # ended on <|im_end|>, which is not in the text
    assert "<|im_end|>" not in result.text
    assert result.token_ids[-1] in smol.eos_ids
    assert result.completion_tokens == len(result.token_ids) <= 20
    assert result.prompt_tokens == len(smol.encode(CAPITAL))
    assert 0 < result.ttft_s <= result.total_s


def test_greedy_is_deterministic_and_text_matches_tokens(smol):
    first = smol.generate(COLOURS, max_new_tokens=15)
    second = smol.generate(COLOURS, GenerateSettings(max_new_tokens=15))
    assert first.token_ids == second.token_ids
    assert first.text == second.text
    # Incremental detokenisation gives the same text as decoding all tokens at once.
    assert first.text == smol.tokenizer.decode(first.token_ids, skip_special_tokens=True)


def test_stream_chunks_join_to_generate(smol):
    chunks = list(smol.stream(COLOURS, max_new_tokens=15))
    assert len(chunks) > 3  # really streamed, not one blob at the end
    assert "".join(chunks) == smol.generate(COLOURS, max_new_tokens=15).text


def test_max_new_tokens_gives_length_finish(smol):
    result = smol.generate(ESSAY, max_new_tokens=7)
    assert result.completion_tokens == 7
    assert len(result.token_ids) == 7
    assert result.finish_reason == "length"
    assert result.text == smol.tokenizer.decode(result.token_ids, skip_special_tokens=True)


def test_stop_string_spanning_chunks_is_cut_and_stripped(smol):
    base = smol.generate(ESSAY, max_new_tokens=20)
    chunks = list(smol.stream(ESSAY, max_new_tokens=20))
    # A stop string that starts inside one streamed chunk and ends inside a later one.
    boundary = len("".join(chunks[:4]))
    stop = base.text[boundary - 2 : boundary + 2]
    assert len(stop) == 4 and len(chunks[3]) >= 2
    expected = base.text[: base.text.find(stop)]

    result = smol.generate(ESSAY, max_new_tokens=20, stop=[stop])
    assert result.text == expected
    assert result.finish_reason == "stop"
    assert result.completion_tokens < base.completion_tokens
    streamed = list(smol.stream(ESSAY, max_new_tokens=20, stop=[stop]))
    assert "".join(streamed) == expected
    assert all(stop not in chunk for chunk in streamed)


def test_stop_matcher_holds_back_partial_stop():
    matcher = StopMatcher(["STOP", "xy"])
    assert matcher.push("Hel") == ("", False)  # "Hel" could still begin "STOP": held
    assert matcher.push("lo ST") == ("Hello", False)  # " ST" held (3 = len("STOP") - 1 chars)
    assert matcher.push("OP and more") == (" ", True)
    never = StopMatcher(["zzz"])
    assert never.push("abcd") == ("ab", False)
    assert never.flush() == "cd"


def test_sampling_with_seed_is_reproducible(smol):
    settings = GenerateSettings(max_new_tokens=12, temperature=1.0, top_k=50, top_p=0.95, seed=7)
    first = smol.generate("Tell me a story.", settings)
    again = smol.generate("Tell me a story.", settings)
    other = smol.generate("Tell me a story.", settings, seed=8)
    assert first.token_ids == again.token_ids
    assert first.token_ids != other.token_ids


def test_batch_equals_single_greedy(smol):
    prompts = [ESSAY, CAPITAL, COLOURS]  # different lengths, so the batch is left-padded
    assert len({len(smol.encode(p)) for p in prompts}) == 3
    batch = smol.generate_batch(prompts, max_new_tokens=12)
    singles = [smol.generate(p, max_new_tokens=12) for p in prompts]
    assert [r.token_ids for r in batch] == [r.token_ids for r in singles]
    assert [r.text for r in batch] == [r.text for r in singles]
    assert [r.finish_reason for r in batch] == [r.finish_reason for r in singles]


def test_batch_with_repetition_penalty_ignores_padding(smol):
    prompts = [ESSAY, COLOURS]
    batch = smol.generate_batch(prompts, max_new_tokens=10, repetition_penalty=1.3, batch_size=2)
    singles = [smol.generate(p, max_new_tokens=10, repetition_penalty=1.3) for p in prompts]
    assert [r.token_ids for r in batch] == [r.token_ids for r in singles]
    assert batch[0].token_ids != smol.generate(ESSAY, max_new_tokens=10).token_ids  # the penalty acts


def test_build_prompt_messages_and_system(smol):
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
    ]
    text = smol.build_prompt(messages, system="Be brief.")
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.endswith("<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
    assert smol.build_prompt("Hi").endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="role"):
        smol.build_prompt([{"content": "no role"}])


def test_invalid_settings_raise(smol):
    with pytest.raises(ValueError, match="top_p"):
        GenerateSettings(top_p=0.0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        GenerateSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="max_tokens"):
        smol.generate(CAPITAL, max_tokens=5)
    with pytest.raises(ValueError, match="non-empty list"):
        smol.generate_batch([])
    assert GenerateSettings(stop="###").stop == ("###",)


@pytest.fixture
def lora_adapter_dir(tiny_causal_lm_dir, tmp_path):
    """A LoRA adapter with random (non-zero) weights for the tiny Llama."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(tiny_causal_lm_dir)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"], init_lora_weights=False
    )
    torch.manual_seed(1)
    out = tmp_path / "adapter"
    get_peft_model(base, config).save_pretrained(out)
    return out


def _manual_greedy(model, ids: list[int], steps: int, stop_ids: set[int]) -> list[int]:
    """Greedy decoding by full forward passes, no KV cache: the reference for the fast loop."""
    out: list[int] = []
    seq = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=seq).logits[0, -1].argmax())
            out.append(token)
            if token in stop_ids:
                break
            seq = torch.cat([seq, torch.tensor([[token]])], dim=1)
    return out


def test_lora_adapter_changes_output_and_matches_peft(tiny_causal_lm_dir, lora_adapter_dir):
    from peft import PeftModel

    from core.models import load_causal_lm

    base_gen = Generator(model=str(tiny_causal_lm_dir))
    before = base_gen.generate("Hello there", max_new_tokens=8)
    # No model given: the base model is read from the adapter's adapter_config.json.
    assert adapter_base_model(lora_adapter_dir) == str(tiny_causal_lm_dir)
    lora_gen = Generator(adapter=str(lora_adapter_dir))
    tuned = lora_gen.generate("Hello there", max_new_tokens=8)
    assert tuned.token_ids != before.token_ids

    base, _ = load_causal_lm(str(tiny_causal_lm_dir), fresh=True)
    peft_model = PeftModel.from_pretrained(base, str(lora_adapter_dir)).eval()
    ids = lora_gen.encode("Hello there")
    with torch.no_grad():
        merged_logits = lora_gen.model(input_ids=torch.tensor([ids])).logits
        peft_logits = peft_model(input_ids=torch.tensor([ids])).logits
        base_logits = base_gen.model(input_ids=torch.tensor([ids])).logits
    torch.testing.assert_close(merged_logits, peft_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-2  # the adapter really changes the model
    assert tuned.token_ids == _manual_greedy(peft_model, ids, 8, lora_gen.eos_ids)
    # The cached decode loop also runs on an unmerged peft model.
    unmerged = Generator.from_model(peft_model, lora_gen.tokenizer)
    assert unmerged.generate("Hello there", max_new_tokens=8).token_ids == tuned.token_ids
    # Merging used a fresh copy: the shared cached base model is untouched.
    assert base_gen.generate("Hello there", max_new_tokens=8).token_ids == before.token_ids


def test_adapter_manifest_names_base_model(tiny_causal_lm_dir, lora_adapter_dir, tmp_path):
    config_path = lora_adapter_dir / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = None
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="base_model"):
        adapter_base_model(lora_adapter_dir)
    (lora_adapter_dir / "aigc_adapter.json").write_text(json.dumps({"base_model": str(tiny_causal_lm_dir)}))
    assert adapter_base_model(lora_adapter_dir) == str(tiny_causal_lm_dir)
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        Generator(adapter=str(tmp_path / "missing"))


def test_backend_choice_and_fallback(tiny_causal_lm_dir, monkeypatch):
    with pytest.raises(ValueError, match="backend"):
        Generator(model=str(tiny_causal_lm_dir), backend="onnx")
    # No GGUF file: auto falls back to torch and says why.
    gen = Generator(model=str(tiny_causal_lm_dir))
    assert gen.backend == "torch" and "no GGUF file" in gen.fallback_reason
    ids = gen.encode(CAPITAL)
    expected = gen.generate(CAPITAL, max_new_tokens=4).token_ids
    assert gen.generate_ids(ids, max_new_tokens=4).token_ids == expected
    with pytest.raises((ValueError, ModuleNotFoundError)):  # no GGUF file, or no llama-cpp-python
        Generator(model=str(tiny_causal_lm_dir), backend="llamacpp")
    monkeypatch.setenv("AIGC_GENERATION_BACKEND", "torch")
    forced = Generator(model=str(tiny_causal_lm_dir))
    assert forced.backend == "torch" and forced.fallback_reason is None

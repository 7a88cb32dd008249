"""Pair-by-pair attention of packed rows (core.finetune.packed_attention) against transformers' mask."""

import pytest
import torch

from core.finetune import encode_pair
from core.finetune import packed_attention as pa
from core.finetune.causal_lm import IGNORE, answer_token_loss, packed_batch
from tests.conftest import lora_with_nonzero_b

PAIRS = [(f"What colour is item {i}?" + " Tell me." * (i % 4), f"Item {i} is red.") for i in range(7)]


def test_segments_start_at_row_starts_and_position_restarts():
    positions = torch.tensor([[0, 1, 2, 0, 1, 0], [0, 1, 2, 3, 0, 1]])
    assert pa.segment_bounds(positions) == [(0, 3), (3, 5), (5, 6), (6, 10), (10, 12)]
    # Positions running on across a row boundary still start a new segment there.
    assert pa.segment_bounds(torch.arange(8).view(2, 4)) == [(0, 4), (4, 8)]


def test_plan_groups_similar_lengths_and_its_inverse_restores_token_order():
    positions = torch.tensor(
        [[0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 0, 1], [0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]]
    )
    plan = pa.plan_packed(positions, ratio=0.66)
    lengths = [tuple(idx.shape) for idx in plan.groups]
    assert lengths == [(2, 10), (1, 6), (3, 3)]  # 10, 8 | 6 (< 0.66 x 10) | 3, 3, 2 (< 0.66 x 6)
    tokens = torch.arange(positions.numel()) * 10
    gathered = torch.cat([tokens[idx.reshape(-1)] for idx in plan.groups])
    assert torch.equal(gathered[plan.inverse], tokens)
    for idx in plan.groups:  # each segment's real tokens come first and in order, padding after
        for row in idx:
            real = row[: int((row.diff() == 1).sum()) + 1]
            assert torch.equal(real, torch.arange(int(real[0]), int(real[0]) + len(real)))


@pytest.mark.parametrize("kv_heads", [1, 3, 9])
def test_explicit_fp32_attention_equals_sdpa(kv_heads):
    torch.manual_seed(0)
    q = torch.randn(3, 9, 17, 8, requires_grad=True)
    k = torch.randn(3, kv_heads, 17, 8, requires_grad=True)
    v = torch.randn(3, kv_heads, 17, 8, requires_grad=True)
    got = pa.causal_attention_fp32(q, k, v, 0.3)
    want = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True, scale=0.3, enable_gqa=kv_heads != 9
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad(got.square().sum(), (q, k, v))
    want_grads = torch.autograd.grad(want.square().sum(), (q, k, v))
    for a, b in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.fixture()
def lora_model(tiny_causal_lm_dir):
    model, tokenizer = lora_with_nonzero_b(tiny_causal_lm_dir)
    assert model.config._attn_implementation == "sdpa"
    return model, tokenizer


def _loss_and_grads(model, batch, pair_by_pair):
    """The answer-token loss and the LoRA gradients, with pair-by-pair attention or transformers' mask."""
    model.zero_grad()
    labels = batch["labels"]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"]}
    with pa.packed_attention(model, active=pair_by_pair):
        logits = model(**inputs, use_cache=False, logits_to_keep=keep).logits
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels[:, 1:][keep[:, :-1]]
    )
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]


@pytest.mark.parametrize("explicit_max_length", [0, 10_000])  # SDPA (flash) groups / explicit fp32 groups
def test_pair_by_pair_attention_gives_the_masked_rows_loss_and_gradients(
    lora_model, monkeypatch, explicit_max_length
):
    model, tokenizer = lora_model
    monkeypatch.setattr(pa, "EXPLICIT_MAX_LENGTH", explicit_max_length)
    encoded = [encode_pair(tokenizer, q, a, system_prompt="Be brief.") for q, a in PAIRS]
    longest = max(len(ids) for ids, _ in encoded)
    batch = packed_batch(encoded, longest + 12, pad_id=0)  # several rows, short ones padded at the end
    assert batch["input_ids"].shape[0] > 2 and len(pa.segment_bounds(batch["position_ids"])) > len(PAIRS)
    masked_loss, masked_grads = _loss_and_grads(model, batch, pair_by_pair=False)  # block-diagonal mask
    loss, grads = _loss_and_grads(model, batch, pair_by_pair=True)
    assert model.config._attn_implementation == "sdpa"  # restored
    torch.testing.assert_close(loss, masked_loss, atol=1e-5, rtol=1e-5)
    for got, want in zip(grads, masked_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_pair_by_pair_attention_under_bf16_autocast_stays_close_to_the_masked_rows(lora_model):
    model, tokenizer = lora_model
    batch = packed_batch([encode_pair(tokenizer, q, a) for q, a in PAIRS], 4096, pad_id=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        masked, _ = _loss_and_grads(model, batch, pair_by_pair=False)
        fast, _ = _loss_and_grads(model, batch, pair_by_pair=True)
    torch.testing.assert_close(fast, masked, atol=2e-2, rtol=1e-2)


def test_answer_token_loss_runs_packed_batches_pair_by_pair(lora_model, monkeypatch):
    model, tokenizer = lora_model
    calls = []
    original = pa.packed_sdpa_forward

    def spy(*args, **kwargs):
        calls.append(kwargs.get("position_ids") is not None)
        return original(*args, **kwargs)

    monkeypatch.setitem(pa.AttentionInterface._global_mapping, pa.NAME, spy)
    batch = packed_batch([encode_pair(tokenizer, q, a) for q, a in PAIRS[:3]], 4096, pad_id=0)
    answer_token_loss(model, batch)
    assert calls == [True] * model.config.num_hidden_layers

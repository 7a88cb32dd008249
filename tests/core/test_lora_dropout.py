"""LoRA dropout with cheaper masks (core.finetune.lora_dropout): same rate, scaling, gradients, restore."""

import pytest
import torch

from core.finetune.lora_dropout import MaskDropout, fast_lora_dropout, keep_mask
from core.lora import LoraSettings, apply_lora
from core.models import load_causal_lm


@pytest.mark.parametrize("p", [0.05, 0.25, 0.5])
def test_keep_mask_keeps_each_element_with_probability_one_minus_p(p):
    torch.manual_seed(0)
    mask = keep_mask((1000, 1001), p)
    assert mask.dtype == torch.bool and mask.shape == (1000, 1001)
    # 1M draws: the standard error of the rate is below 5e-4; 4 sigma.
    assert abs(float(mask.float().mean()) - (1 - p)) < 2e-3
    # Neighbours (lanes of one random word) are independent: P(both kept) = (1 - p)^2.
    both = (mask[:, :-1] & mask[:, 1:]).float().mean()
    assert abs(float(both) - (1 - p) ** 2) < 2e-3


def test_keep_mask_is_seeded():
    torch.manual_seed(3)
    first = keep_mask((64, 7), 0.1)
    torch.manual_seed(3)
    assert torch.equal(first, keep_mask((64, 7), 0.1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_dropout_zeroes_or_scales_like_nn_dropout_and_its_gradient_is_the_mask(dtype):
    torch.manual_seed(0)
    x = (torch.rand(300, 40) + 0.5).to(dtype).requires_grad_()
    drop = MaskDropout(0.2).train()
    y = drop(x)
    kept = y != 0
    # Survivors are scaled as nn.Dropout scales them in this dtype: a (1 - p)^-1 mask times the input.
    scale = torch.ones((), dtype=dtype) / (1 - 0.2)
    torch.testing.assert_close(y[kept], x.detach()[kept] * scale, atol=0, rtol=0)
    (grad,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(grad, kept.to(dtype) * scale, atol=0, rtol=0)
    assert torch.equal(drop.eval()(x), x)


def test_fast_lora_dropout_swaps_the_lora_dropouts_in_the_block_only(tiny_causal_lm_dir):
    base, _ = load_causal_lm(str(tiny_causal_lm_dir), fresh=True)
    model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.1), task_type="CAUSAL_LM").train()
    drops = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p == 0.1]
    assert drops and all(type(m) is torch.nn.Dropout for m in drops)
    with fast_lora_dropout(model):
        inside = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p == 0.1]
        assert len(inside) == len(drops) and all(type(m) is MaskDropout and m.training for m in inside)
        model(input_ids=torch.tensor([[1, 2, 3, 4]])).logits.sum().backward()
    after = [m for m in model.modules() if isinstance(m, torch.nn.Dropout) and m.p == 0.1]
    assert all(a is b for a, b in zip(after, drops, strict=True))
    with fast_lora_dropout(model, active=False):
        assert not any(type(m) is MaskDropout for m in model.modules())

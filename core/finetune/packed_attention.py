"""Attention of packed rows computed pair by pair, not as one masked row.

A packed training row (:func:`core.finetune.causal_lm.packed_batch`) holds several pairs whose
``position_ids`` restart at 0. transformers isolates them with a block-diagonal ``(row, row)`` mask,
which makes SDPA compute every query against every key of the row (8 pairs of ~110 tokens in a
1,024-token row: 8x the attention work of the pairs alone) and, with a mask, copy the shared key/value
heads of grouped-query attention to every query head first (``repeat_kv``). On SmolLM2-135M that was a
fifth of a training step on CPU.

:func:`packed_attention` switches a model, for the duration of a forward and backward pass, to the
``"aigc_packed_sdpa"`` attention registered here: the pairs (the segments between position restarts)
are gathered into a ``(pairs, heads, length, dim)`` batch, grouped by similar length and padded at
their end, and each group runs one causal SDPA call with the key/value heads shared
(``enable_gqa``). Each token attends to exactly the tokens of its own pair up to itself, as under the
mask, so the outputs and gradients are those of the masked attention (tested to float rounding); the
padding sits after each pair's last token, where causal attention never looks, and its outputs are
dropped. No mask is built.

Batches with an attention mask, a cache or no position ids go to transformers' own SDPA unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

logger = logging.getLogger(__name__)

NAME = "aigc_packed_sdpa"
#: A pair joins the current length group while its length is at least this share of the group's
#: longest: its attention then costs at most (1 / 0.66)^2 = 2.3x its own, and a batch of similar
#: lengths takes one or two attention calls per layer instead of one per pair.
GROUP_RATIO = 0.66
#: On CPU, groups of at most this many tokens use :func:`causal_attention_fp32`, longer ones SDPA.
EXPLICIT_MAX_LENGTH = 160


@dataclass(frozen=True)
class PackedPlan:
    """Where the segments of a packed batch go: per length group, the token indices, and the way back.

    Attributes:
        groups: Per group, a ``(segments, length)`` long tensor of flat token indices (row-major over
            ``(rows, row_length)``); a segment shorter than ``length`` repeats its first token after its
            end (never attended to, output dropped).
        inverse: ``(rows * row_length,)``: for each token, its row in the concatenated group outputs.
    """

    groups: tuple[torch.Tensor, ...]
    inverse: torch.Tensor


def segment_bounds(position_ids: torch.Tensor) -> list[tuple[int, int]]:
    """``(start, end)`` flat token ranges of the segments of ``position_ids`` ``(rows, row_length)``.

    A segment starts at every row start and wherever a position is not the previous one plus one
    (transformers' rule for packed sequences).
    """
    rows, width = position_ids.shape
    flat = position_ids.reshape(-1)
    new = torch.ones_like(flat, dtype=torch.bool)
    new[1:] = flat[1:] != flat[:-1] + 1
    new[::width] = True
    starts = new.nonzero().squeeze(1).tolist()
    return list(zip(starts, [*starts[1:], rows * width], strict=True))


def plan_packed(position_ids: torch.Tensor, ratio: float = GROUP_RATIO) -> PackedPlan:
    """The :class:`PackedPlan` of a packed batch's ``position_ids`` (see :func:`segment_bounds`)."""
    bounds = sorted(segment_bounds(position_ids.cpu()), key=lambda b: b[0] - b[1])  # longest first
    groups: list[list[tuple[int, int]]] = []
    for start, end in bounds:
        if groups and end - start >= ratio * (groups[-1][0][1] - groups[-1][0][0]):
            groups[-1].append((start, end))
        else:
            groups.append([(start, end)])
    inverse = torch.empty(position_ids.numel(), dtype=torch.long)
    indices, offset = [], 0
    for group in groups:
        length = group[0][1] - group[0][0]
        idx = torch.empty((len(group), length), dtype=torch.long)
        for i, (start, end) in enumerate(group):
            idx[i, : end - start] = torch.arange(start, end)
            idx[i, end - start :] = start
            inverse[start:end] = torch.arange(end - start) + offset + i * length
        indices.append(idx.to(position_ids.device))
        offset += idx.numel()
    return PackedPlan(tuple(indices), inverse.to(position_ids.device))


def causal_attention_fp32(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float | None, dropout: float = 0.0
) -> torch.Tensor:
    """Causal attention written out in fp32: ``(n, heads, L, dim)`` queries, ``(n, kv_heads, L, dim)`` keys.

    Query heads ``j * g ... j * g + g - 1`` share key/value head ``j`` (as ``repeat_kv``), computed by
    folding each group of query heads into the length axis instead of copying keys and values. Returns
    ``(n, heads, L, dim)`` in the queries' dtype. For short sequences on CPU this is several times
    faster than SDPA's flash kernel, whose backward pass costs ~20 ms a call whatever the length (torch
    2.13, 1 thread), and it is at least as exact (fp32 scores and softmax).
    """
    n, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    q = query.float().reshape(n, kv_heads, group * length, dim)
    scores = torch.matmul(q, key.float().transpose(-1, -2)) * (scale if scale is not None else dim**-0.5)
    future = torch.ones(length, length, dtype=torch.bool, device=query.device).triu(1)
    scores = scores.view(n, kv_heads, group, length, length).masked_fill(future, float("-inf"))
    probs = scores.softmax(-1).view(n, kv_heads, group * length, length)
    if dropout > 0:
        probs = torch.nn.functional.dropout(probs, dropout)
    return torch.matmul(probs, value.float()).view(n, heads, length, dim).to(query.dtype)


# The plan of the batch being run: every layer of a forward pass gets the same position_ids tensor,
# so it is computed once per forward (identity check; the reference keeps that tensor alive).
_last_plan: tuple[torch.Tensor, PackedPlan] | None = None


def _plan_for(position_ids: torch.Tensor) -> PackedPlan:
    global _last_plan
    cached = _last_plan
    if cached is not None and cached[0] is position_ids:
        return cached[1]
    plan = plan_packed(position_ids)
    _last_plan = (position_ids, plan)
    return plan


def packed_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of a packed batch: ``(rows, heads, tokens, dim)`` in, ``(rows, tokens, heads, dim)`` out.

    Raises:
        ValueError: the model does not pass ``position_ids`` to its attention (isolation impossible).
    """
    position_ids = kwargs.get("position_ids")
    rows, heads, width, dim = query.shape
    if attention_mask is not None or key.shape[2] != width or width == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if position_ids is None:
        raise ValueError(
            f"{type(module).__name__} does not pass position_ids to its attention: packed rows cannot "
            "be isolated (train with pack_length=0)."
        )
    plan = _plan_for(position_ids.expand(rows, -1) if position_ids.shape[0] != rows else position_ids)
    kv_heads = key.shape[1]
    # (rows, heads, width, dim) -> (tokens, heads, dim): a view of the projections' own layout.
    q, k, v = (t.transpose(1, 2).reshape(rows * width, t.shape[1], dim) for t in (query, key, value))
    outputs = []
    for idx in plan.groups:
        n, length = idx.shape
        flat = idx.reshape(-1)
        qg, kg, vg = (t.index_select(0, flat).view(n, length, -1, dim).transpose(1, 2) for t in (q, k, v))
        if length <= EXPLICIT_MAX_LENGTH and query.device.type == "cpu":  # measured on CPU only
            out = causal_attention_fp32(qg, kg, vg, scaling, dropout)
        else:
            out = torch.nn.functional.scaled_dot_product_attention(
                qg, kg, vg, dropout_p=dropout, is_causal=True, scale=scaling, enable_gqa=heads != kv_heads
            )
        outputs.append(out.transpose(1, 2).reshape(n * length, heads, dim))
    merged = outputs[0] if len(outputs) == 1 else torch.cat(outputs)
    return merged.index_select(0, plan.inverse).view(rows, width, heads, dim), None


def _packed_mask(*args: Any, attention_mask: torch.Tensor | None = None, **kwargs: Any) -> Any:
    """No mask for a packed batch (the attention isolates the pairs itself); SDPA's mask otherwise."""
    if attention_mask is None:
        return None
    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


AttentionInterface.register(NAME, packed_sdpa_forward)
AttentionMaskInterface.register(NAME, _packed_mask)


@contextmanager
def packed_attention(model: Any, active: bool = True) -> Iterator[None]:
    """Run ``model`` (a transformers model, possibly peft-wrapped) with :func:`packed_sdpa_forward` inside.

    Only models whose attention is ``sdpa`` are switched (another choice, e.g. eager, is kept).
    """
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if not active or current != "sdpa":
        yield
        return
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = current

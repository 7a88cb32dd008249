"""Token-length batching for encoder inference: tokenise once, sort by token count, pad per batch.

Sorting texts by *character* length before batching (what sentence-transformers and the transformers
pipeline do, if they sort at all) leaves much padding: characters per token vary a lot between a
tweet, a banking query and a code-heavy support answer. Sorting by the tokenised length puts texts
of the same token count together, so each batch pads to within a few tokens of its real size. On
10,000 mixed real texts (``aigc bench embeddings``) this cuts the padded tokens a MiniLM encoder
processes from 404k to 262k (254k are real) and the attention work by almost half.

:func:`token_batches` tokenises ``texts`` in chunks of :data:`SORT_CHUNK` (so memory stays bounded
for millions of texts), sorts each chunk longest first (an out-of-memory error shows on the first
batch, not the last) and yields ``(indices, features)`` with right-padded tensors.

Example:
    >>> for idx, features in token_batches(tokenizer, ["a short one", "a longer text here"], 256, 64):
    ...     hidden = model(**features).last_hidden_state  # rows of ``idx``, in that order
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# Texts tokenised and sorted together; larger chunks pad less, smaller ones hold fewer token lists.
SORT_CHUNK = 32_768


def _pad_values(tokenizer: Any) -> dict[str, int]:
    pad_id = tokenizer.pad_token_id
    if pad_id is None:  # decoder tokenizers used as encoders; the attention mask hides the value
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return {
        "input_ids": int(pad_id),
        "token_type_ids": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
    }


def pad_right(
    fields: dict[str, list[list[int]]], rows: Sequence[int], pad_values: dict[str, int]
) -> dict[str, torch.Tensor]:
    """Right-pad ``rows`` of each token field to the longest of them; adds ``attention_mask``.

    Args:
        fields: ``{name: per-text token lists}``, e.g. ``input_ids`` and ``token_type_ids``.
        rows: Which texts form the batch.
        pad_values: Fill value per field (missing fields pad with 0).

    Returns:
        ``{name: LongTensor (len(rows), longest)}`` plus ``attention_mask`` (1 on real tokens).
    """
    lengths = np.array([len(fields["input_ids"][r]) for r in rows], dtype=np.int64)
    width = int(lengths.max(initial=0))
    out: dict[str, torch.Tensor] = {}
    for name, lists in fields.items():
        array = np.full((len(rows), width), pad_values.get(name, 0), dtype=np.int64)
        for i, r in enumerate(rows):
            array[i, : lengths[i]] = lists[r]
        out[name] = torch.from_numpy(array)
    out["attention_mask"] = torch.from_numpy((np.arange(width) < lengths[:, None]).astype(np.int64))
    return out


def token_batches(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
    with_token_type_ids: bool = False,
) -> Iterator[tuple[np.ndarray, dict[str, torch.Tensor]]]:
    """Yield ``(indices into texts, padded features)`` batches sorted by token count, longest first.

    Args:
        tokenizer: A Hugging Face tokenizer (special tokens are added, inputs truncated).
        texts: The texts.
        max_length: Truncate each text to this many tokens.
        batch_size: At most this many texts per batch.
        with_token_type_ids: Also return ``token_type_ids`` (models that take them).

    Yields:
        Index arrays (int64) and ``{input_ids, attention_mask[, token_type_ids]}`` CPU tensors.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    pad_values = _pad_values(tokenizer)
    for chunk_start in range(0, len(texts), SORT_CHUNK):
        chunk = list(texts[chunk_start : chunk_start + SORT_CHUNK])
        encoded = tokenizer(
            chunk,
            truncation=True,
            max_length=max_length,
            return_attention_mask=False,
            return_token_type_ids=with_token_type_ids,
        )
        fields = {"input_ids": list(encoded["input_ids"])}
        if with_token_type_ids:
            fields["token_type_ids"] = list(encoded["token_type_ids"])
        lengths = np.fromiter((len(ids) for ids in fields["input_ids"]), dtype=np.int64, count=len(chunk))
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            yield rows + chunk_start, pad_right(fields, rows, pad_values)


def map_ordered(fn: Callable[[T], R], items: Iterable[T], workers: int = 1) -> Iterator[R]:
    """``map(fn, items)`` with up to ``workers`` calls running at once on threads, results in order.

    For forward passes on a CPU: torch releases the GIL inside its kernels, so ``workers`` passes of
    one thread each keep that many cores busy, and unlike one pass on several intra-op threads they
    never wait for each other at the end of every operation (on the shared 2-core box of
    ``docs/benchmarks/finance.md`` both layouts cost the same CPU per item). At most ``2 * workers``
    items are taken from ``items`` ahead of the result being yielded, so memory stays bounded.
    ``workers <= 1``, or a single item, calls ``fn`` on the calling thread.
    """
    iterator = iter(items)
    head = list(itertools.islice(iterator, 2))
    if workers <= 1 or len(head) < 2:  # nothing to overlap: no threads
        yield from map(fn, itertools.chain(head, iterator))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="forward") as pool:
        pending: deque[Future[R]] = deque()
        try:
            for item in itertools.chain(head, iterator):
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:  # an error or an abandoned iterator: drop what has not started
                future.cancel()


def forward_workers(requested: int = 0, limit: int = 4) -> int:
    """Forward passes to run at once: ``requested``, or (0) this process's CPU cores, at most ``limit``."""
    if requested < 0:
        raise ValueError(f"workers must be >= 0 (0: one per CPU core), got {requested}")
    if requested:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, limit))


def single_thread_passes(workers: int) -> None:
    """With several forward workers, give each pass one torch thread (process-wide; call at start-up).

    ``workers`` passes of one thread each use ``workers`` cores; with torch's default intra-op threads
    as well, every pass would start one thread per core and they would contend for the same cores.
    """
    if workers > 1 and torch.get_num_threads() != 1:
        threads = torch.get_num_threads()
        logger.info("One torch thread per forward pass", extra={"workers": workers, "was": threads})
        torch.set_num_threads(1)

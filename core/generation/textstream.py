"""Token-stream helpers shared by the generation backends (torch and llama.cpp).

* :class:`IncrementalDecoder` turns generated token ids into text deltas for streaming;
* :class:`StopMatcher` cuts the streamed text at the first stop string, across chunk boundaries;
* :data:`END_OF_TURN_TOKENS` lists the end-of-turn tokens of common chat templates, and
  :func:`end_token_ids` / :func:`pad_token_id` the ids that end and pad a generated sequence.

Both backends detokenise with the Hugging Face tokenizer through these classes, so equal token ids give
equal text whichever backend produced them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# End-of-turn tokens of common chat templates; generation always stops on those present in the vocabulary.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end|>", "<end_of_turn>")


def end_token_ids(tokenizer: Any, *extra: int | Sequence[int] | None) -> set[int]:
    """Token ids that end generation: the tokenizer's EOS, ``extra`` ids, and known end-of-turn tokens.

    Args:
        tokenizer: A Hugging Face tokenizer.
        *extra: More ids (an int, a list of ints, or ``None``), e.g. the model's generation config EOS.

    Returns:
        The set of ids.
    """
    ids: set[int] = set()
    for source in (tokenizer.eos_token_id, *extra):
        if source is not None:
            ids.update([source] if isinstance(source, int) else source)
    added = tokenizer.get_added_vocab()
    ids.update(added[tok] for tok in END_OF_TURN_TOKENS if tok in added)
    return ids


def pad_token_id(tokenizer: Any, eos_ids: set[int]) -> int:
    """The id that left-pads a batch: the tokenizer's pad token, else the smallest end id (else 0)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids, default=0)


class IncrementalDecoder:
    """Turns a stream of token ids into text deltas without re-decoding the whole output each step.

    Decodes a small window of recent tokens and emits what the newest token added; bytes of an
    unfinished UTF-8 character (decoded as U+FFFD) are held until the character completes.

    Args:
        tokenizer: The Hugging Face tokenizer of the model.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def push(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly empty)."""
        self.ids.append(token_id)
        return self._delta(final=False)

    def flush(self) -> str:
        """Return any text still held back (the end of the output)."""
        return self._delta(final=True)

    def _delta(self, final: bool) -> str:
        decode = self.tokenizer.decode
        prefix = decode(self.ids[self.prefix_offset : self.read_offset], skip_special_tokens=True)
        text = decode(self.ids[self.prefix_offset :], skip_special_tokens=True)
        if len(text) > len(prefix) and (final or not text.endswith("\ufffd")):
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
            return text[len(prefix) :]
        return ""


class StopMatcher:
    """Cuts text at the first stop string, also when one spans chunk boundaries.

    The last ``len(longest stop) - 1`` characters are held back until it is clear they do not start a
    stop string, so nothing that belongs to a stop string is ever emitted.

    Args:
        stops: The stop strings (may be empty).
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.pending = ""

    def push(self, text: str) -> tuple[str, bool]:
        """Add text; return ``(text safe to emit, whether a stop string was found)``."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            emit, self.pending = self.pending[: min(hits)], ""
            return emit, True
        cut = len(self.pending) - self.hold
        if cut <= 0:
            return "", False
        emit, self.pending = self.pending[:cut], self.pending[cut:]
        return emit, False

    def flush(self) -> str:
        """Return the held-back text (no stop string followed it)."""
        emit, self.pending = self.pending, ""
        return emit


__all__ = ["END_OF_TURN_TOKENS", "IncrementalDecoder", "StopMatcher", "end_token_ids", "pad_token_id"]

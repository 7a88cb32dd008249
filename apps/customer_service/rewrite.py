"""Follow-up rewriting: make a short or anaphoric question retrievable on its own.

"and how much does it cost?" after "do you ship to Switzerland?" retrieves nothing useful by
itself. When a question refers back with a pronoun ("it", "that", "there" …), opens like a
continuation ("and …", "what about …", "also …") or is very short (at most ``max_words`` words),
the key terms of the previous user turn (words minus stop words, in order) are prepended:
``"ship switzerland | and how much does it cost?"``. Length alone is a weak signal: with a
six-word limit "how tall is mount everest" after a password question was rewritten into a
password query and answered from the password FAQ, so the limit is three words. This costs microseconds;
an LM rewrite with SmolLM2-135M costs a generation call before retrieval, for a model that is
unreliable at the task, so the cheap rule is the default.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from apps.customer_service.config import RewriteConfig

Turn = Mapping[str, str]

_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'\-]*")
ANAPHORA = frozenset(
    "it its it's that this these those they them their there one ones he she him her".split()  # noqa: SIM905
)
CONTINUATIONS = ("and ", "but ", "also ", "what about ", "how about ", "what if ", "same ", "then ")
STOP_WORDS = frozenset(
    """a an and are as at be been but by can could did do does for from get got had has have how i i'm
    if in into is it its it's me my of on or our please so than that the their them then there these
    they this those to too us was we what when where which who why will with would you your yours
    also again still just about any some much many more most very ok okay thanks thank hi hello""".split()  # noqa: SIM905
)


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return [w.lower() for w in _WORD.findall(text)]


def key_terms(text: str, limit: int = 8) -> list[str]:
    """Content words of ``text`` in order, without repeats or stop words, at most ``limit``."""
    seen: dict[str, None] = {}
    for word in words(text):
        if word not in STOP_WORDS and len(word) > 1:
            seen.setdefault(word)
    return list(seen)[:limit]


def is_follow_up(question: str, max_words: int = 3) -> bool:
    """Whether ``question`` likely depends on the conversation (back-reference, continuation, very short)."""
    tokens = words(question)
    opening = " ".join(tokens) + " "
    return len(tokens) <= max_words or any(t in ANAPHORA for t in tokens) or opening.startswith(CONTINUATIONS)


def last_user_turn(history: Sequence[Turn] | None) -> str | None:
    """Content of the most recent ``user`` message in ``history``, if any."""
    for turn in reversed(history or []):
        if turn.get("role") == "user" and turn.get("content", "").strip():
            return turn["content"]
    return None


def rewrite_question(
    question: str, history: Sequence[Turn] | None, config: RewriteConfig | None = None
) -> str:
    """The query to retrieve with: ``question`` itself, or prefixed with the last user turn's key terms.

    Args:
        question: The new question.
        history: Earlier ``{"role": "user"|"assistant", "content": ...}`` messages, oldest first.
        config: Rewrite settings.

    Returns:
        The retrieval query (``question`` unchanged when it is not a follow-up or there is no history).
    """
    config = config or RewriteConfig()
    previous = last_user_turn(history)
    if not config.enabled or previous is None or not is_follow_up(question, config.max_words):
        return question
    new_terms = set(key_terms(question, limit=64))
    carried = [t for t in key_terms(previous, config.max_terms) if t not in new_terms]
    if not carried:
        return question
    return f"{' '.join(carried)} | {question}"


__all__ = ["ANAPHORA", "is_follow_up", "key_terms", "last_user_turn", "rewrite_question"]

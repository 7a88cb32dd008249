"""What the refresh loop learns from, and the held-out set it is judged on (frozen once, never trained on).

**Sources.** Each source is a function of a :class:`SourceContext` yielding :class:`Example` rows (a
question with an agent-approved answer, an intent label, or both). :data:`SOURCES` lists them in
order; on a duplicate question (compared by :func:`normalize_question`) the later source wins:

* ``intents_file`` — labelled utterances (``refresh.intents_data``, default the shipped sample);
* ``pairs_file`` — past question-answer pairs (``refresh.pairs_data``, optional);
* ``kb`` — the knowledge base's FAQ and dialogue entries: the curated FAQs, agents' corrections once
  indexed (``aigc support export-feedback``) and approved gap FAQs; an entry's category labels its
  question when it is one of the intent labels;
* ``approved_faqs`` — gap drafts a kb_admin approved for this KB (:mod:`apps.customer_service.gap_review`),
  also those the KB has not been rebuilt with yet;
* ``corrections`` — agents' corrected answers (thumbs down with a correction) in the conversation store;
* ``handoffs`` — resolved hand-offs with the agent's answer and the intent the agent gave on resolving.

*Where new intent utterances come from.* Every source but the intents file and the KB comes without
a label; the one that teaches the intent model utterances it has not seen is a resolved hand-off
whose agent said which intent the question was (``support_handoffs.intent``: the queue page's
*Intent* box, ``aigc support resolve ID --intent LABEL``, the API's resolve body). Such a case is an
intent example even without an agent answer. The bot's own predicted intent is never a label (that
would train it on its own mistakes). A label that is none of the intents file's trains nothing: a
note counts them so the refresh says why.

*Where the agent's answer comes from, and hooks for data other features add.* A hand-off counts
once its row in ``support_handoffs`` is ``resolved``. Its question is the user turn before the bot's
hand-off answer; its answer is the agent's first reply after it (``support_messages`` rows with role
``agent``: what a hand-off queue stores as the agent's reply; consecutive replies are joined, and what
the customer wrote while the case waited is skipped) or, where there is none, the agent's
correction of the bot's hand-off answer (thumbs down with a corrected answer, all the chat page
records today). Another source of approved answers plugs in as one more function in
:data:`SOURCES`; nothing else changes.

Text from users, agents and KB files is data: pairs whose question or answer the prompt-injection
screen flags are dropped (a KB entry by its verdict stored at index time), so no instruction-like
text is trained into the answer model.

**Held-out set.** The first refresh draws a stratified share of the intent utterances and a share
of the pairs (``refresh.heldout_fraction``, at most ``refresh.max_heldout_pairs``) and freezes them
in ``heldout/`` beside the versions, an artifact with the sha256 of each file; every later refresh
checks those hashes, evaluates old and new models on exactly these rows, and excludes from training
every example whose question is a held-out question. A part that could not be drawn at the first
refresh (no pairs yet) is frozen the first time there is data for it; a frozen part never changes.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from apps.customer_service.answer_tuning import QAPair, read_dialogue_pairs, write_pairs_jsonl
from apps.customer_service.config import RefreshConfig
from apps.customer_service.entries import Entry
from apps.customer_service.gap_review import approved_rows
from apps.customer_service.injection_screen import screen_entries
from apps.customer_service.intents import HEAD, read_intents_csv
from apps.customer_service.knowledge_base import KnowledgeBase
from apps.customer_service.storage import Feedback, Handoff, Message, SupportStore
from core.atomic import write_bytes_atomic
from core.config import write_json_atomic
from core.io.artifacts import ArtifactError, open_artifact, sha256_file, verify_artifact
from core.storage import session_scope

logger = logging.getLogger(__name__)

SAMPLE_INTENTS = Path(__file__).resolve().parent / "sample_data" / "intents.csv"
HELDOUT_DIR = "heldout"
HELDOUT_KIND = "support-refresh-heldout"
HELDOUT_INTENTS = "intents.csv"
HELDOUT_PAIRS = "pairs.jsonl"
HELDOUT_INFO = "heldout.json"
#: The two parts of the held-out set: intent utterances and question-answer pairs.
PARTS = ("intents", "pairs")
_PART_FILES = {"intents": HELDOUT_INTENTS, "pairs": HELDOUT_PAIRS}
_NOT_WORD = re.compile(r"[\W_]+")


class TrainingDataError(ValueError):
    """The frozen held-out set is damaged, or the data cannot give what a refresh needs."""


@dataclass(frozen=True)
class Example:
    """One thing to learn from: a question with an approved answer, an intent label, or both."""

    id: str
    question: str
    answer: str | None = None
    intent: str | None = None
    source: str = ""


@dataclass
class SourceContext:
    """What sources read: the refresh settings, the conversation store and the KB (either may be absent)."""

    config: RefreshConfig
    store: SupportStore | None = None
    kb: KnowledgeBase | None = None
    notes: list[str] = field(default_factory=list)


Source = Callable[[SourceContext], Iterable[Example]]


def normalize_question(text: str) -> str:
    """Casefolded words only: how questions are compared for duplicates and held-out exclusion."""
    return " ".join(_NOT_WORD.sub(" ", text.casefold()).split())


# ------------------------------------------------------------------------------------ sources
def intents_file(ctx: SourceContext) -> Iterator[Example]:
    """Labelled utterances of ``refresh.intents_data`` (default: the shipped sample)."""
    path = Path(ctx.config.intents_data) if ctx.config.intents_data else SAMPLE_INTENTS
    data = read_intents_csv(path)
    for row, (text, label) in enumerate(zip(data.texts, data.labels["label"], strict=True)):
        yield Example(f"{path.name}#{row}", text, None, label, "intents_file")


def pairs_file(ctx: SourceContext) -> Iterator[Example]:
    """Question-answer pairs of ``refresh.pairs_data`` (past dialogues), if configured."""
    if ctx.config.pairs_data:
        for pair in read_dialogue_pairs(ctx.config.pairs_data):
            yield Example(pair.id, pair.question, pair.answer, None, "pairs_file")


def kb_entries(ctx: SourceContext) -> Iterator[Example]:
    """FAQ and dialogue entries of the KB, except those the injection screen flagged at index time."""
    if ctx.kb is None:
        return
    flagged = 0
    for entry in ctx.kb.entries:
        if entry.kind == "doc" or not entry.question:
            continue
        if ctx.kb.is_flagged(entry):
            flagged += 1
            continue
        yield Example(entry.id, entry.question, entry.text, entry.category, "kb")
    if flagged:
        ctx.notes.append(f"{flagged} KB entries flagged by the injection screen were left out")


def approved_faqs(ctx: SourceContext) -> Iterator[Example]:
    """Gap FAQs a kb_admin approved for this KB, indexed or not yet (the database is their record)."""
    if ctx.store is None or ctx.kb is None or ctx.kb.path is None:
        return
    for row in approved_rows(ctx.store, ctx.kb.path):
        yield Example(row["id"], row["question"], row["answer"], None, "approved_faqs")


def agent_corrections(ctx: SourceContext) -> Iterator[Example]:
    """Answers agents rated down and corrected (the corrected answer is the reference)."""
    if ctx.store is None:
        return
    for c in ctx.store.corrections():
        yield Example(f"feedback-{c.message_id}", c.question, c.answer, None, "corrections")


def resolved_handoffs(ctx: SourceContext) -> Iterator[Example]:
    """Resolved hand-offs with the agent's answer and intent label (see the module docstring for where
    they come from); a case with neither teaches nothing and is skipped."""
    if ctx.store is None:
        return
    with session_scope(ctx.store.engine) as session:
        cases = session.execute(
            sa.select(
                Handoff.message_id,
                Handoff.intent,
                Message.conversation_id,
                Message.position,
                Feedback.corrected_answer,
            )
            .join(Message, Message.id == Handoff.message_id)
            .outerjoin(Feedback, Feedback.message_id == Handoff.message_id)
            .where(Handoff.status == "resolved")
            .order_by(Handoff.id)
        ).all()
        conversations = {c.conversation_id for c in cases}
        turns: dict[str, list[tuple[int, str, str]]] = {}
        for m in session.execute(
            sa.select(Message.conversation_id, Message.position, Message.role, Message.content)
            .where(Message.conversation_id.in_(conversations), Message.role.in_(("user", "agent")))
            .order_by(Message.conversation_id, Message.position)
        ):
            turns.setdefault(m.conversation_id, []).append((m.position, m.role, m.content))
    for case in cases:
        conversation = turns.get(case.conversation_id, [])
        question = next((t for p, r, t in conversation if p == case.position - 1 and r == "user"), None)
        # the agent's answer: the replies after the hand-off, past what the customer added meanwhile
        later = itertools.dropwhile(
            lambda turn: turn[0] == "user", ((r, t) for p, r, t in conversation if p > case.position)
        )
        replies = [t for r, t in itertools.takewhile(lambda turn: turn[0] == "agent", later)]
        answer = (" ".join(replies) if replies else case.corrected_answer or "").strip()
        if question and (answer or case.intent):
            yield Example(f"handoff-{case.message_id}", question, answer or None, case.intent, "handoffs")


#: The sources of a refresh, in order (a later source's answer to the same question wins).
SOURCES: dict[str, Source] = {
    "intents_file": intents_file,
    "pairs_file": pairs_file,
    "kb": kb_entries,
    "approved_faqs": approved_faqs,
    "corrections": agent_corrections,
    "handoffs": resolved_handoffs,
}


@dataclass(frozen=True)
class TrainingData:
    """Everything collected: intent utterances and answer pairs, deduplicated and screened."""

    intents: list[Example]
    pairs: list[Example]
    by_source: dict[str, int]
    screened_out: int
    notes: list[str]

    @property
    def labels(self) -> list[str]:
        """The intent labels."""
        return sorted({e.intent for e in self.intents if e.intent})


def collect(ctx: SourceContext, sources: Mapping[str, Source] | None = None) -> TrainingData:
    """Read every source, keep the last answer and label per question, drop flagged pairs.

    Intent labels are those of the ``intents_file`` source: an example elsewhere labels its
    question only with one of them (a KB category that is no intent label labels nothing; an agent's
    label on a resolved hand-off that is none of them is counted in a note). Pairs are the examples
    with an answer.

    Raises:
        FileNotFoundError, SourceError: A configured file is missing or malformed.
    """
    read = {name: list(source(ctx)) for name, source in (sources or SOURCES).items()}
    known = {e.intent for e in read.get("intents_file", []) if e.intent}
    if note := _unknown_agent_labels(read.get("handoffs", []), known):
        ctx.notes.append(note)
    merged: dict[str, Example] = {}
    for examples in read.values():
        for example in examples:
            key = normalize_question(example.question)
            if not key:
                continue
            earlier = merged.get(key)
            intent = example.intent if example.intent in known else None
            if not example.answer and intent is None:
                continue  # an agent's label the intents file lacks, and no answer: nothing to learn
            if earlier is not None:  # keep what the later source lacks (a file's label, a KB answer)
                intent = intent or earlier.intent
            answer = example.answer or (earlier.answer if earlier is not None else None)
            merged[key] = Example(example.id, example.question, answer, intent, example.source)
    examples = list(merged.values())
    flagged = _flagged_pairs([e for e in examples if e.answer and e.source != "kb"])
    pairs = [e for e in examples if e.answer and e.id not in flagged]
    intents = [e for e in examples if e.intent]
    counts: dict[str, int] = {}
    for e in examples:
        counts[e.source] = counts.get(e.source, 0) + 1
    if flagged:
        ctx.notes.append(f"{len(flagged)} pairs flagged by the injection screen were left out")
    return TrainingData(intents, pairs, counts, len(flagged), list(ctx.notes))


def agent_intent_labels(config: RefreshConfig, served_model: str | Path | None = None) -> list[str]:
    """The intent labels to offer an agent resolving a hand-off, sorted (the queue page's choices).

    The labels of ``refresh.intents_data`` when it is configured (exactly those the refresh trains
    on); else those of the served intent model when ``served_model`` holds one (a classifier's
    ``config.json``); else the shipped sample's, which the refresh then trains on.

    Args:
        config: The refresh settings.
        served_model: The intent classifier the bot serves
            (:func:`apps.customer_service.served_models.intent_model_path`), if any.

    Raises:
        FileNotFoundError, SourceError: The configured intents file is missing or malformed.
        ValueError: The served model's ``config.json`` is not valid JSON or has no intent labels.
    """
    if config.intents_data:
        return read_intents_csv(config.intents_data).label_set(HEAD)
    manifest = Path(served_model) / "config.json" if served_model else None
    if manifest is not None and manifest.is_file():
        try:
            labels = json.loads(manifest.read_text(encoding="utf-8"))["heads"][HEAD]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{manifest} names no intent labels ({err!r}); retrain the model") from err
        return sorted({str(label) for label in labels})
    return read_intents_csv(SAMPLE_INTENTS).label_set(HEAD)


def _unknown_agent_labels(examples: Sequence[Example], known: set[str | None]) -> str | None:
    """A note counting the agents' intent labels that are none of the intents file's (they train nothing)."""
    unknown = sorted(e.intent for e in examples if e.intent and e.intent not in known)
    if not unknown:
        return None
    names = sorted(set(unknown))
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    return (
        f"{len(unknown)} resolved hand-offs have an agent's intent label that the intents file does not "
        f"have ({shown}); they did not train the intent model (add the label to the intents file)"
    )


def _flagged_pairs(examples: Sequence[Example]) -> set[str]:
    if not examples:
        return set()
    entries = [Entry(e.id, "faq", e.question, e.answer or "", e.question[:120]) for e in examples]
    return {i for i, verdict in screen_entries(entries).items() if verdict.flagged}


# ----------------------------------------------------------------------------------- held-out
@dataclass(frozen=True)
class HeldOut:
    """The frozen held-out set: intent utterances, pairs, and the sha256 of each part's file."""

    intents: list[tuple[str, str]]
    pairs: list[QAPair]
    digests: dict[str, str]
    info: dict[str, Any]

    def questions(self) -> set[str]:
        """Normalised questions of both parts (never trained on)."""
        return {normalize_question(t) for t, _ in self.intents} | {
            normalize_question(p.question) for p in self.pairs
        }


def load_heldout(root: str | Path) -> HeldOut | None:
    """The held-out set frozen under ``root`` (``None`` before the first refresh).

    Raises:
        TrainingDataError: Its files do not match their recorded hashes (it was edited or damaged).
    """
    directory = Path(root) / HELDOUT_DIR
    if not directory.is_dir():
        return None
    try:
        verify_artifact(directory, kinds=(HELDOUT_KIND,))
    except (ArtifactError, FileNotFoundError) as err:
        raise TrainingDataError(
            f"the frozen held-out set no longer matches its hashes ({err}); restore {directory} from a "
            "backup: scores are only comparable on the same held-out set"
        ) from err
    info = json.loads((directory / HELDOUT_INFO).read_text(encoding="utf-8"))
    intents: list[tuple[str, str]] = []
    if (directory / HELDOUT_INTENTS).is_file():
        data = read_intents_csv(directory / HELDOUT_INTENTS)
        intents = [(t, str(lab)) for t, lab in zip(data.texts, data.labels["label"], strict=True)]
    pairs = read_dialogue_pairs(directory / HELDOUT_PAIRS) if (directory / HELDOUT_PAIRS).is_file() else []
    digests = {
        part: sha256_file(directory / name)
        for part, name in _PART_FILES.items()
        if (directory / name).is_file()
    }
    return HeldOut(intents, pairs, digests, info)


def draw_heldout(
    data: TrainingData, config: RefreshConfig, existing: HeldOut | None = None
) -> tuple[list[tuple[str, str]] | None, list[QAPair] | None]:
    """The rows to freeze for each part that ``existing`` lacks (``None``: nothing to freeze there).

    Intent utterances are split per label (``core.finetune.split_indices``); pairs are shuffled with
    the seed and the first ``heldout_fraction`` (at least one, at most ``max_heldout_pairs``) kept.
    """
    from core.finetune import split_indices

    intents = pairs = None
    if existing is None or not existing.intents:
        labels = [e.intent or "" for e in data.intents]
        _, held = split_indices(len(labels), config.heldout_fraction, config.seed, strata=labels)
        intents = [(data.intents[i].question, labels[i]) for i in held] or None
    if (existing is None or not existing.pairs) and len(data.pairs) >= config.min_pairs + 1:
        order = list(range(len(data.pairs)))
        random.Random(config.seed).shuffle(order)
        n = min(config.max_heldout_pairs, max(1, round(len(order) * config.heldout_fraction)))
        chosen = sorted(order[:n])
        pairs = [QAPair(data.pairs[i].question, data.pairs[i].answer or "", data.pairs[i].id) for i in chosen]
    return intents, pairs


def freeze_heldout(
    root: str | Path,
    intents: list[tuple[str, str]] | None,
    pairs: list[QAPair] | None,
) -> list[str]:
    """Write the parts given into ``root/heldout`` (keeping any part already frozen); the parts written.

    Raises:
        TrainingDataError: A part given is already frozen (a frozen part never changes).
    """
    directory = Path(root) / HELDOUT_DIR
    new = {"intents": intents, "pairs": pairs}
    frozen = [part for part, rows in new.items() if rows]
    if not frozen:
        return []
    clash = [part for part in frozen if (directory / _PART_FILES[part]).is_file()]
    if clash:
        raise TrainingDataError(f"held-out part(s) {clash} are frozen already and cannot be redrawn")
    with open_artifact(directory, HELDOUT_KIND, update=True) as build:
        info_path = build / HELDOUT_INFO
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {"parts": {}}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if intents:
            write_bytes_atomic(build / HELDOUT_INTENTS, _intents_csv(intents))
            info["parts"]["intents"] = {"rows": len(intents), "frozen_at": now}
        if pairs:
            write_pairs_jsonl(build / HELDOUT_PAIRS, pairs)
            info["parts"]["pairs"] = {"rows": len(pairs), "frozen_at": now}
        write_json_atomic(info_path, info)
    logger.info("Froze held-out set", extra={"path": str(directory), "parts": frozen})
    return frozen


def _intents_csv(rows: Iterable[tuple[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def training_rows(
    data: TrainingData, heldout: HeldOut | None
) -> tuple[list[tuple[str, str]], list[QAPair], int]:
    """Intent rows and pairs to train on, without any held-out question; plus how many were excluded."""
    excluded = heldout.questions() if heldout is not None else set()
    intents = [
        (e.question, e.intent or "") for e in data.intents if normalize_question(e.question) not in excluded
    ]
    pairs = [
        QAPair(e.question, e.answer or "", e.id)
        for e in data.pairs
        if normalize_question(e.question) not in excluded
    ]
    dropped = len(data.intents) - len(intents) + len(data.pairs) - len(pairs)
    return intents, pairs, dropped


def write_training_rows(directory: Path, intents: list[tuple[str, str]], pairs: list[QAPair]) -> None:
    """Keep what a version was trained on beside it: ``intents.csv`` and ``pairs.jsonl`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(directory / "intents.csv", _intents_csv(intents))
    write_pairs_jsonl(directory / "pairs.jsonl", pairs)


__all__ = [
    "HELDOUT_DIR",
    "PARTS",
    "SOURCES",
    "Example",
    "HeldOut",
    "Source",
    "SourceContext",
    "TrainingData",
    "TrainingDataError",
    "agent_corrections",
    "agent_intent_labels",
    "approved_faqs",
    "collect",
    "draw_heldout",
    "freeze_heldout",
    "intents_file",
    "kb_entries",
    "load_heldout",
    "normalize_question",
    "pairs_file",
    "resolved_handoffs",
    "training_rows",
    "write_training_rows",
]

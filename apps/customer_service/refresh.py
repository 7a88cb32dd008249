"""The closed loop: retrain on what agents approved, compare with the served models, promote if not worse.

``aigc support refresh`` runs :func:`refresh`:

1. **Collect** (:mod:`apps.customer_service.training_data`): labelled utterances, KB FAQs and
   dialogues, agents' corrections and resolved hand-offs → intent rows and question-answer pairs.
2. **Hold out**: the first refresh freezes a held-out set; every refresh checks its hashes and trains
   on nothing whose question is in it.
3. **Train** a candidate version in the registry (:class:`core.model_versions.ModelRegistry`): the
   intent classifier with :func:`~apps.customer_service.intents.train_intents` and the answer adapter
   with :func:`~apps.customer_service.answer_tuning.finetune_answers` (their configs, overridable in
   ``refresh.intent_training`` / ``refresh.answer_training``). A part skipped (``--skip-intents``,
   ``--skip-adapter``, or too few pairs) is carried over from the active version.
4. **Evaluate** the served models (what :mod:`~apps.customer_service.served_models` resolves) and the
   candidate on the held-out set: intent accuracy and macro-F1, answer ROUGE-L and BLEU (as BLEU/100)
   closed-book (question -> answer, as the adapter is trained), and, when there is a knowledge base,
   the answer model as the bot uses it (:func:`~apps.customer_service.answer_eval.grounded_answer_scores`:
   each held-out question answered from the KB's passages in ``generate`` mode, behind the grounding
   verifier): the share of verified generated answers and their ROUGE-L. These depend on the KB, which
   changes between refreshes, so the served adapter is scored on it again each time.
5. **Guard** (:func:`core.model_versions.compare_scores`): the candidate is promoted only if it is not
   worse on any compared score by more than ``refresh.tolerance``. Both scores and the decision are
   kept in the version's ``record.json``, in the pointer's history (when promoted) and in the core
   artifact table; the entry points audit it.

:func:`~apps.customer_service.served_models.switch_version` (``aigc support refresh --to VERSION``,
the versions page) activates any committed version: a rollback, or a manual promotion.

A kill at any point leaves the served version as it was: the candidate is built in a temporary
directory and committed whole (fault point ``versions.before_commit``), and the pointer is replaced in
one rename after the commit (``versions.before_activate``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from apps.customer_service.answer_eval import GROUNDED_METRICS, grounded_answer_scores
from apps.customer_service.answer_tuning import (
    SUPPORT_SYSTEM_PROMPT,
    QAPair,
    finetune_answers,
    score_answer_model,
)
from apps.customer_service.bot import SupportBot
from apps.customer_service.config import BotConfig, RefreshConfig, load_bot_config, load_refresh_config
from apps.customer_service.intents import HEAD, evaluate_intents, train_intents
from apps.customer_service.knowledge_base import KnowledgeBase, default_kb_dir
from apps.customer_service.served_models import (
    ADAPTER_PART,
    INTENTS_PART,
    answer_adapter_path,
    intent_model_path,
    support_registry,
)
from apps.customer_service.storage import SupportStore
from apps.customer_service.training_data import (
    HeldOut,
    SourceContext,
    TrainingData,
    collect,
    draw_heldout,
    freeze_heldout,
    load_heldout,
    training_rows,
    write_training_rows,
)
from core.artifact_registry import record_artifact
from core.config import from_dict, to_dict
from core.finetune import CausalLMTrainConfig, ClassifierTrainConfig, LabelledTexts
from core.finetune.loop import CHECKPOINT_DIR, TENSORBOARD_DIR
from core.generation.gguf_export import gguf_adapter_for
from core.model_versions import ModelRegistry, VersionInfo, compare_scores
from core.storage import StorageError

logger = logging.getLogger(__name__)

INTENT_METRICS = ("intent_accuracy", "intent_macro_f1")
ANSWER_METRICS = ("answer_rouge_l", "answer_bleu")
DATA_DIR = "data"


class RefreshError(ValueError):
    """A refresh that cannot run as asked (nothing to train, no held-out rows)."""


@dataclass
class RefreshResult:
    """What a refresh did (or, with ``dry_run``, would do)."""

    version: str | None
    promoted: bool
    active: str | None
    previous: str | None
    dry_run: bool
    components: dict[str, dict[str, Any]]
    data: dict[str, Any]
    heldout: dict[str, Any]
    scores: dict[str, dict[str, float | None]] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        return asdict(self)


# ------------------------------------------------------------------------------------- helpers
def _train_config(cls: type, values: dict[str, Any], **defaults: Any) -> Any:
    """``cls`` from its defaults, ``defaults``, then ``values`` (nested dicts merged one level deep)."""
    base = {**to_dict(cls()), **defaults}
    for key, value in values.items():
        merge = isinstance(value, dict) and isinstance(base.get(key), dict)
        base[key] = {**base[key], **value} if merge else value
    return from_dict(cls, base)


def _drop_run_state(directory: Path) -> None:
    """Resume checkpoints (optimizer state) and TensorBoard logs are not part of a served version."""
    for name in (CHECKPOINT_DIR, TENSORBOARD_DIR):
        shutil.rmtree(directory / name, ignore_errors=True)


def _intent_scores(model_dir: Path, rows: list[tuple[str, str]]) -> dict[str, float | None]:
    labelled = LabelledTexts([t for t, _ in rows], {HEAD: [lab for _, lab in rows]}, "heldout")
    result = evaluate_intents(model_dir, labelled)
    return {"intent_accuracy": result["accuracy"], "intent_macro_f1": result["macro_f1"]}


def _answer_scores(
    adapter: str | Path | None, model: str, pairs: list[QAPair], max_new_tokens: int
) -> dict[str, float | None]:
    result = score_answer_model(pairs, adapter, model, max_new_tokens)
    return {"answer_rouge_l": result["rouge_l"], "answer_bleu": round(result["bleu"] / 100, 4)}


def _cached(
    active: VersionInfo | None, part: str, digest: str | None, metrics: tuple[str, ...]
) -> dict | None:
    """The active version's own held-out scores for ``part``, when measured on the same held-out rows."""
    if active is None or digest is None:
        return None
    record = active.record
    if record.get("heldout", {}).get(part) != digest:
        return None
    scores = record.get("scores", {}).get("new", {})
    if all(scores.get(m) is not None for m in metrics):
        return {m: scores[m] for m in metrics}
    return None


# ------------------------------------------------------------------------------------ the loop
@dataclass
class _Plan:
    """Everything decided before training: data, held-out set, what each part does."""

    data: TrainingData
    heldout: HeldOut | None
    intents: list[tuple[str, str]]
    pairs: list[QAPair]
    excluded: int
    train_intents: bool
    train_adapter: bool
    notes: list[str]


def _plan(
    ctx: SourceContext, registry: ModelRegistry, skip_intents: bool, skip_adapter: bool
) -> tuple[_Plan, tuple[list | None, list | None]]:
    data = collect(ctx)
    heldout = load_heldout(registry.root)
    to_freeze = draw_heldout(data, ctx.config, heldout)
    notes = list(data.notes)
    # Rows that will be frozen now are held out of this very refresh too.
    preview = HeldOut(
        (heldout.intents if heldout else []) + (to_freeze[0] or []),
        (heldout.pairs if heldout else []) + (to_freeze[1] or []),
        {},
        {},
    )
    intents, pairs, excluded = training_rows(data, preview)
    train_adapter = not skip_adapter
    if train_adapter and (len(pairs) < ctx.config.min_pairs or not preview.pairs):
        notes.append(
            f"answer adapter not retrained: {len(pairs)} training pair(s) and {len(preview.pairs)} held-out "
            f"(needs {ctx.config.min_pairs} and 1); the served one stays"
        )
        train_adapter = False
    train_intents = not skip_intents
    if train_intents and not preview.intents:
        raise RefreshError("no held-out intent utterances could be drawn (each label needs two or more)")
    if not (train_intents or train_adapter):
        raise RefreshError("nothing to retrain: both the intent model and the answer adapter are skipped")
    plan = _Plan(data, heldout, intents, pairs, excluded, train_intents, train_adapter, notes)
    return plan, to_freeze


def _export_gguf(adapter: Path, notes: list[str]) -> None:
    """Export the adapter for llama.cpp now, so the committed version is never written to afterwards."""
    try:
        gguf_adapter_for(adapter)
    except (FileNotFoundError, ValueError) as err:
        notes.append(f"no GGUF export of the adapter (served by the torch backend): {err}")


def refresh(
    *,
    config: RefreshConfig | None = None,
    bot_config: BotConfig | None = None,
    kb_dir: str | Path | None = None,
    store: SupportStore | None = None,
    registry: ModelRegistry | None = None,
    skip_intents: bool = False,
    skip_adapter: bool = False,
    dry_run: bool = False,
    actor: str | None = None,
) -> RefreshResult:
    """Retrain the intent model and the answer adapter, and promote the result if it is not worse.

    Args:
        config: Refresh settings (default: the ``refresh:`` section of the app's YAML).
        bot_config: The bot's settings: which models are served now and the answer model.
        kb_dir: Knowledge base to learn FAQs from (default ``$AIGC_DATA_DIR/support/kb``; absent: none).
        store: Conversation store (corrections, hand-offs; default: ``AIGC_DB_URL``).
        registry: Version registry (default ``$AIGC_DATA_DIR/support/models``).
        skip_intents: Carry the active intent model over instead of retraining it.
        skip_adapter: Carry the active answer adapter over instead of retraining it.
        dry_run: Collect and plan only: nothing is frozen, trained or written.
        actor: Who asked (kept with the promotion).

    Returns:
        The result; ``promoted`` says whether the new version is now active.

    Raises:
        RefreshError: Nothing to train, or no held-out rows.
        TrainingDataError: The frozen held-out set was altered.
        RegistryError: Another refresh is running.
        FileNotFoundError, SourceError, KBFormatError: Bad input files or KB.
    """
    start = time.perf_counter()
    config = config or load_refresh_config()
    bot_config = bot_config or load_bot_config()
    registry = registry or support_registry()
    kb_path = Path(kb_dir) if kb_dir else default_kb_dir()
    kb = KnowledgeBase.load(kb_path) if kb_path.exists() else None
    ctx = SourceContext(config, store or SupportStore(), kb)
    if kb is None:
        ctx.notes.append(f"no knowledge base at {kb_path}: no FAQ pairs from it")
    if dry_run:
        plan, to_freeze = _plan(ctx, registry, skip_intents, skip_adapter)
        result = _result(plan, registry, dry_run=True, start=start)
        result.heldout["would_freeze"] = {
            "intents": len(to_freeze[0] or []),
            "pairs": len(to_freeze[1] or []),
        }
        result.components = {
            INTENTS_PART: {"status": "train" if plan.train_intents else "carry"},
            ADAPTER_PART: {"status": "train" if plan.train_adapter else "carry"},
        }
        return result
    with registry.lock():
        plan, to_freeze = _plan(ctx, registry, skip_intents, skip_adapter)
        frozen = freeze_heldout(registry.root, *to_freeze)
        heldout = load_heldout(registry.root)
        if heldout is None:  # _plan refuses a refresh with nothing to hold out; this is a safeguard
            raise RefreshError("no held-out set could be frozen")
        active = registry.active()
        with registry.build() as candidate:
            components, scores = _build(
                candidate.path, plan, heldout, active, config, bot_config, registry, ctx.kb
            )
            metrics = _compared(components)
            comparison = compare_scores(
                {m: scores["old"].get(m) for m in metrics},
                {m: scores["new"].get(m) for m in metrics},
                config.tolerance,
            )
            candidate.write_record(
                {
                    "parent": active.name if active else None,
                    "components": components,
                    "data": _data_summary(plan),
                    "heldout": heldout.digests,
                    "scores": scores,
                    "decision": comparison.to_dict(),
                    "notes": plan.notes,
                    "actor": actor,
                }
            )
        if comparison.promote:
            details = {"scores": scores, "tolerance": config.tolerance}
            registry.activate(candidate.name, action="promote", actor=actor, details=details)
    result = _result(plan, registry, start=start)
    result.version, result.promoted = candidate.name, comparison.promote
    result.previous = active.name if active else None
    result.components, result.scores, result.decision = components, scores, comparison.to_dict()
    result.heldout["frozen_now"] = frozen
    _record_in_store(registry, candidate.name, result)
    logger.info(
        "Refreshed support models",
        extra={"version": candidate.name, "promoted": comparison.promote, "worse": comparison.worse},
    )
    return result


def _compared(components: dict[str, dict[str, Any]]) -> list[str]:
    metrics: list[str] = []
    if components[INTENTS_PART]["status"] == "trained":
        metrics += INTENT_METRICS
    if components[ADAPTER_PART]["status"] == "trained":
        metrics += ANSWER_METRICS + GROUNDED_METRICS  # the grounded ones only where a KB scored them
    return metrics


Scores = dict[str, float | None]
PartResult = tuple[dict[str, Any], Scores, Scores]


def _build(
    build: Path,
    plan: _Plan,
    heldout: HeldOut,
    active: VersionInfo | None,
    config: RefreshConfig,
    bot_config: BotConfig,
    registry: ModelRegistry,
    kb: KnowledgeBase | None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Scores]]:
    """Train or carry each part into ``build``; score the served and the new models on ``heldout``."""
    write_training_rows(
        build / DATA_DIR, plan.intents if plan.train_intents else [], plan.pairs if plan.train_adapter else []
    )
    if plan.train_intents:
        served = intent_model_path(bot_config.intent_model, registry.root)
        intents = _train_intents(build, plan, heldout, active, config, served)
    else:
        intents = _carry(build, INTENTS_PART, active, heldout.digests.get("intents"), INTENT_METRICS)
    if plan.train_adapter:
        answer_model = config.answer_model or bot_config.answer.model
        served_adapter = answer_adapter_path(bot_config.answer.adapter, answer_model, registry.root)
        adapter = _train_adapter(build, plan, heldout, active, config, answer_model, served_adapter)
        if kb is not None:
            served_scores, new_scores = _grounded_scores(
                [served_adapter, str(build / ADAPTER_PART)], answer_model, heldout.pairs, kb, bot_config
            )
            adapter[1].update(served_scores)
            adapter[2].update(new_scores)
        else:
            plan.notes.append("no knowledge base: the answer adapter was scored closed-book only")
    else:
        adapter = _carry(build, ADAPTER_PART, active, heldout.digests.get("pairs"), ANSWER_METRICS)
    if bot_config.intent_model or bot_config.answer.adapter:
        plan.notes.append(
            "the bot's config names its own intent model or adapter: those are served, not this registry's"
        )
    components = {INTENTS_PART: intents[0], ADAPTER_PART: adapter[0]}
    return components, {"old": {**intents[1], **adapter[1]}, "new": {**intents[2], **adapter[2]}}


def _train_intents(
    build: Path,
    plan: _Plan,
    heldout: HeldOut,
    active: VersionInfo | None,
    config: RefreshConfig,
    served: Path,
) -> PartResult:
    rows = LabelledTexts([t for t, _ in plan.intents], {HEAD: [lab for _, lab in plan.intents]}, "refresh")
    train_config = _train_config(ClassifierTrainConfig, config.intent_training)
    report = train_intents(rows, build / INTENTS_PART, config.encoder, train_config)
    _drop_run_state(build / INTENTS_PART)
    component = {
        "status": "trained",
        "examples": len(plan.intents),
        "labels": report["labels"],
        "encoder": config.encoder,
        "seconds": report.get("wall_time_s"),
    }
    new = _intent_scores(build / INTENTS_PART, heldout.intents)
    old: Scores = {}
    if (served / "config.json").is_file():  # else nothing is served: nothing to beat
        in_active = active is not None and served == active.path / INTENTS_PART
        cached = _cached(active, "intents", heldout.digests.get("intents"), INTENT_METRICS)
        old = (cached if in_active else None) or _intent_scores(served, heldout.intents)
    return component, old, new


def _train_adapter(
    build: Path,
    plan: _Plan,
    heldout: HeldOut,
    active: VersionInfo | None,
    config: RefreshConfig,
    answer_model: str,
    served: str | None,
) -> PartResult:
    train_config = _train_config(
        CausalLMTrainConfig, config.answer_training, system_prompt=SUPPORT_SYSTEM_PROMPT
    )
    report = finetune_answers(plan.pairs, build / ADAPTER_PART, answer_model, 0.0, train_config)
    _drop_run_state(build / ADAPTER_PART)
    _export_gguf(build / ADAPTER_PART, plan.notes)
    component = {
        "status": "trained",
        "pairs": len(plan.pairs),
        "base_model": answer_model,
        "seconds": report.get("wall_time_s"),
    }
    new = _answer_scores(build / ADAPTER_PART, answer_model, heldout.pairs, config.max_new_tokens)
    # The served answers: the active version's adapter, a configured one, or the base model alone.
    in_active = active is not None and served == str(active.path / ADAPTER_PART)
    cached = _cached(active, "pairs", heldout.digests.get("pairs"), ANSWER_METRICS)
    old = (cached if in_active else None) or _answer_scores(
        served, answer_model, heldout.pairs, config.max_new_tokens
    )
    return component, old, new


def _grounded_scores(
    adapters: list[str | None], model: str, pairs: list[QAPair], kb: KnowledgeBase, bot_config: BotConfig
) -> list[dict[str, float]]:
    """The answer model with each adapter (``None``: the base) as the bot uses it, on ``pairs``; the
    bots share one query encoder (the KB's), loaded once."""
    from core.generation import Generator

    results, embedder = [], None
    for adapter in adapters:
        answer = replace(bot_config.answer, model=model, adapter=adapter)
        generator = Generator(model, adapter, backend=answer.backend)  # type: ignore[arg-type]
        bot = SupportBot(kb, replace(bot_config, answer=answer), generator=generator, embedder=embedder)
        started = time.perf_counter()
        scores = grounded_answer_scores(bot, pairs)
        embedder = bot.retriever.embedder
        logger.info(
            "Scored grounded answers",
            extra={
                "adapter": adapter,
                "pairs": len(pairs),
                "seconds": round(time.perf_counter() - started, 1),
            }
            | scores,
        )
        results.append(scores)
    return results


def _carry(
    build: Path, part: str, active: VersionInfo | None, digest: str | None, metrics: tuple[str, ...]
) -> PartResult:
    """Copy ``part`` of the active version into the build (its scores, when known, stay with it)."""
    if active is None or not (active.path / part).is_dir():
        return {"status": "absent", "from": None}, {}, {}
    shutil.copytree(active.path / part, build / part)  # copy2: mtimes kept (adapter.gguf stays fresh)
    scores = _cached(active, "intents" if part == INTENTS_PART else "pairs", digest, metrics) or {}
    return {"status": "carried", "from": active.name}, scores, dict(scores)


def _data_summary(plan: _Plan) -> dict[str, Any]:
    return {
        "sources": plan.data.by_source,
        "intent_rows": len(plan.intents),
        "labels": plan.data.labels,
        "pairs": len(plan.pairs),
        "excluded_heldout": plan.excluded,
        "screened_out": plan.data.screened_out,
    }


def _result(plan: _Plan, registry: ModelRegistry, *, dry_run: bool = False, start: float) -> RefreshResult:
    heldout = plan.heldout if dry_run else load_heldout(registry.root)
    return RefreshResult(
        version=None,
        promoted=False,
        active=registry.active_name(),
        previous=None,
        dry_run=dry_run,
        components={},
        data=_data_summary(plan),
        heldout={
            "intents": len(heldout.intents) if heldout else 0,
            "pairs": len(heldout.pairs) if heldout else 0,
        },
        notes=plan.notes,
        seconds=round(time.perf_counter() - start, 1),
    )


def _record_in_store(registry: ModelRegistry, version: str, result: RefreshResult) -> None:
    """Record the version in the core artifact table (best effort: the registry on disk is the truth)."""
    try:
        record_artifact(
            registry.kind,
            registry.versions_dir / version,
            metadata={"scores": result.scores, "decision": result.decision, "promoted": result.promoted},
        )
    except (StorageError, ValueError) as err:
        logger.warning("Model version not recorded in the database", extra={"error": str(err)})


__all__ = [
    "ANSWER_METRICS",
    "INTENT_METRICS",
    "RefreshError",
    "RefreshResult",
    "refresh",
]

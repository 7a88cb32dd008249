"""Train and evaluate the recommender end to end (what ``aigc recommend train``/``eval`` call).

:func:`train_model` on a dataset:

1. time-based validation split (last interaction per user held out);
2. contrastive fine-tuning of the encoder (``finetune.method``: a projection head over the frozen
   encoder, or LoRA; hard negatives mined with the frozen encoder) on the validation split's
   training part, and the text-only next-item metrics of the frozen and the fine-tuned encoder on
   the held-out items (the gain is recorded in the model manifest);
3. the hybrid ranker trained on all data (its own inner time split, whose targets are the held-out
   items of step 1) over the vectors of step 2's encoder, which has not seen those targets;
4. the encoder fine-tuned again on all data: its item vectors, a :class:`~core.index.VectorIndex`
   and the candidates and features the ranker scores when serving;
5. the model directory (:class:`~apps.recommender.model.RecommenderModel`).

:func:`evaluate_models` runs the evaluation protocol of :mod:`apps.recommender.evaluation` with
the baselines (popularity, ItemKNN, BPR when ``implicit`` is installed, text-only with the frozen
encoder), the text-only score of the fine-tuned encoder (``text_ft``), and the hybrid, fit the way
:func:`train_model` fits it (steps 2-4 on the split's training part). Every model that learns, the
encoder included, is fit on each split's training part only.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from apps.recommender.baselines import (
    BPRScorer,
    EASEScorer,
    ItemKNNScorer,
    PopularityScorer,
    TextScorer,
    bpr_available,
)
from apps.recommender.candidates import build_item_index
from apps.recommender.config import RecommenderConfig
from apps.recommender.encoder_training import TrainResult, load_embedder, train_encoder
from apps.recommender.evaluation import evaluate, evaluate_next_item
from apps.recommender.hybrid import HybridScorer
from apps.recommender.interactions import Dataset
from apps.recommender.model import KIND, EncoderInfo, RecommenderModel
from apps.recommender.scorer import Scorer
from apps.recommender.splits import leave_last_out
from apps.recommender.text_vectors import cached_item_vectors, embed_items
from core.io.artifacts import check_target

logger = logging.getLogger(__name__)

MODELS = ("popularity", "itemknn", "ease", "bpr", "text", "text_ft", "hybrid")


class Vectors:
    """Item vectors per encoder, computed once: frozen, and fine-tuned per training split.

    Args:
        dataset: The full catalogue (vectors are in its item order).
        config: Encoder and fine-tuning settings.
        work_dir: Where adapters are written.
        show_progress_bar: Show tqdm bars.
        max_tunes: Fine-tune for at most this many training splits; later splits get the frozen
            vectors (never vectors tuned on another split, which could have seen their targets).
    """

    def __init__(
        self,
        dataset: Dataset,
        config: RecommenderConfig,
        work_dir: Path,
        show_progress_bar: bool = False,
        max_tunes: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.config = config
        self.work_dir = work_dir
        self.show = show_progress_bar
        self.max_tunes = max_tunes
        self._frozen: np.ndarray | None = None
        self._tuned: dict[int, tuple[np.ndarray, TrainResult]] = {}
        self._before_targets: dict[int, tuple[Dataset, Dataset]] = {}
        self.frozen_instead: list[str] = []
        self.split_names: list[str] = []

    def frozen(self) -> np.ndarray:
        """Vectors of the frozen encoder."""
        if self._frozen is None:
            enc = self.config.encoder
            embedder = load_embedder(enc.model, None, enc.max_length)
            self._frozen = cached_item_vectors(self.dataset, embedder, enc.batch_size, self.show)
        return self._frozen

    def tuned(self, train: Dataset) -> tuple[np.ndarray, TrainResult]:
        """Vectors of the encoder fine-tuned on ``train`` (fine-tuned on first request)."""
        key = id(train)
        if key not in self._tuned and self.max_tunes is not None and len(self._tuned) >= self.max_tunes:
            if train.name not in self.frozen_instead:
                logger.warning("Fine-tuning budget spent: frozen vectors", extra={"split": train.name})
                self.frozen_instead.append(train.name)
            return self.frozen(), None  # type: ignore[return-value]
        if key not in self._tuned:
            out = self.work_dir / f"adapter-{len(self._tuned)}"
            result = train_encoder(
                train, out, self.config.encoder.model, self.config.finetune, self.show, self.frozen()
            )
            if result.item_vectors is not None:  # the head: projected frozen vectors, no encoder pass
                vectors = result.item_vectors
            else:
                batch = self.config.encoder.batch_size
                vectors = embed_items(self.dataset, result.embedder, batch, self.show)
            self._tuned[key] = (vectors, result)
            self.split_names.append(train.name)
        return self._tuned[key]

    def for_train(self, train: Dataset) -> np.ndarray:
        """Fine-tuned vectors when fine-tuning is enabled, else frozen."""
        return self.tuned(train)[0] if self.config.finetune.enabled else self.frozen()

    def before_targets(self, train: Dataset) -> np.ndarray | None:
        """Vectors for the rows of a hybrid ranker fit on ``train`` (``None``: not fine-tuned).

        The ranker's targets are each user's last item of ``train``; an encoder tuned on all of
        ``train`` has trained on them, and its text similarities to them would be higher than to
        the items it will rank later. These vectors come from an encoder tuned on ``train``
        without those items (``train_model`` does the same with its own data).
        """
        if not self.config.finetune.enabled:
            return None
        if id(train) not in self._before_targets:
            # The training set is kept with its inner part, so its id is not reused while cached.
            self._before_targets[id(train)] = (train, leave_last_out(train).train)
        return self.tuned(self._before_targets[id(train)][1])[0]

    def training_summaries(self) -> list[dict[str, Any]]:
        """One summary per fine-tuning run."""
        return [
            {"split": k, **r.summary()}
            for k, (_, r) in zip(self.split_names, self._tuned.values(), strict=True)
        ]


class DeferredScorer(Scorer):
    """A scorer whose real model is built at ``fit`` time from the training split.

    Args:
        name: Model name in reports.
        build: Called with the training data; returns an unfitted scorer.
    """

    def __init__(self, name: str, build: Callable[[Dataset], Scorer]) -> None:
        super().__init__()
        self.name = name
        self.build = build
        self.inner: Scorer | None = None

    def _fit(self, train: Dataset) -> None:
        self.inner = self.build(train).fit(train)

    def _score_users(self, user_idx: np.ndarray) -> np.ndarray:
        assert self.inner is not None
        return self.inner._score_users(user_idx)


def _hybrid(vectors: Vectors, config: RecommenderConfig, train: Dataset) -> HybridScorer:
    """The hybrid for ``train``: it serves vectors tuned on ``train``, its ranker learns from
    vectors tuned without the ranker's targets (:meth:`Vectors.before_targets`)."""
    return HybridScorer(vectors.for_train(train), config.ranker, row_vectors=vectors.before_targets(train))


def scorer_factories(
    vectors: Vectors, config: RecommenderConfig, names: tuple[str, ...] = MODELS
) -> dict[str, Callable[[], Scorer]]:
    """Model name -> factory of an unfitted scorer (unknown names raise ``ValueError``)."""
    table: Mapping[str, Callable[[], Scorer]] = {
        "popularity": PopularityScorer,
        "itemknn": ItemKNNScorer,
        "ease": EASEScorer,
        "bpr": BPRScorer,
        "text": lambda: DeferredScorer("text", lambda _: TextScorer(item_vectors=vectors.frozen())),
        "text_ft": lambda: DeferredScorer("text_ft", lambda t: TextScorer(item_vectors=vectors.tuned(t)[0])),
        "hybrid": lambda: DeferredScorer("hybrid", lambda t: _hybrid(vectors, config, t)),
        "hybrid_frozen": lambda: DeferredScorer(
            "hybrid_frozen", lambda _: HybridScorer(vectors.frozen(), config.ranker)
        ),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {sorted(table)}")
    out = {}
    for name in names:
        if name == "bpr" and not bpr_available():
            logger.warning("BPR skipped: the 'implicit' package is not installed")
            continue
        if name == "text_ft" and not config.finetune.enabled:
            continue
        out[name] = table[name]
    return out


def evaluate_models(
    dataset: Dataset,
    config: RecommenderConfig | None = None,
    names: tuple[str, ...] = MODELS,
    cold_start: bool = True,
    show_progress_bar: bool = False,
    max_tunes: int | None = None,
) -> dict[str, Any]:
    """The evaluation protocol with baselines and the hybrid, as a JSON-serialisable report.

    ``max_tunes=1`` fine-tunes the encoder for the next-item split only; the cold-start split then
    uses the frozen encoder for ``text_ft`` and ``hybrid`` (recorded in ``encoder.frozen_instead``).

    Returns:
        ``{"protocol", "models": {name: metrics}, "cold_start": {...}, "encoder": {...}}``; ``encoder``
        compares text-only ``text`` (frozen) with ``text_ft`` (fine-tuned) and lists the fine-tuning runs.
    """
    config = config or RecommenderConfig()
    with tempfile.TemporaryDirectory(prefix="aigc-rec-eval-") as work:
        vectors = Vectors(dataset, config, Path(work), show_progress_bar, max_tunes)
        factories = scorer_factories(vectors, config, names)
        report = evaluate(dataset, factories, config.eval, cold_start, show_progress_bar)
        report["encoder"] = _encoder_section(report, config, vectors.training_summaries())
        report["encoder"]["frozen_instead"] = vectors.frozen_instead
    return report


def _encoder_section(report: dict[str, Any], config: RecommenderConfig, runs: list[dict[str, Any]]) -> dict:
    section: dict[str, Any] = {
        "base": config.encoder.model,
        "fine_tuned": config.finetune.enabled,
        "runs": runs,
    }
    found = report["models"]
    if "text" in found and "text_ft" in found:
        frozen, tuned = found["text"]["ndcg@10"], found["text_ft"]["ndcg@10"]
        section["text_ndcg@10"] = {
            "frozen": frozen,
            "fine_tuned": tuned,
            "ratio": tuned / frozen if frozen else None,
        }
    for runs_key in ("runs",):
        for run in section[runs_key]:
            run.pop("adapter_dir", None)  # a temporary directory, gone after the run
    return section


def train_model(
    dataset: Dataset,
    out_dir: str | Path,
    config: RecommenderConfig | None = None,
    show_progress_bar: bool = False,
) -> RecommenderModel:
    """Fine-tune the encoder, build the index, train the ranker and save the model directory.

    With fine-tuning on, the encoder is tuned twice: on the validation split's training part
    (its text-only gain on the held-out items goes into the manifest, and its vectors build the
    ranker's training rows, whose targets are those held-out items), then on all data (the
    encoder the model serves and saves).

    Args:
        dataset: Items and interactions.
        out_dir: Model directory (replaced atomically when it exists).
        config: Settings.
        show_progress_bar: Show tqdm bars.

    Returns:
        The saved model (``metrics["encoder"]`` holds the validation gain of fine-tuning).
    """
    check_target(out_dir, KIND)  # refuse a KB or any other directory before hours of training
    config = config or RecommenderConfig()
    enc = config.encoder
    split = leave_last_out(dataset)
    metrics: dict[str, Any] = {"validation": split.info}
    with tempfile.TemporaryDirectory(prefix="aigc-rec-train-") as work:
        adapter, row_vectors = None, None
        if config.finetune.enabled:
            frozen = cached_item_vectors(
                dataset, load_embedder(enc.model, None, enc.max_length), enc.batch_size
            )
            show = show_progress_bar
            result, row_vectors = _tune(split.train, dataset, Path(work) / "validation", config, frozen, show)
            before, after = (
                evaluate_next_item(TextScorer(item_vectors=v).fit(split.train), split, config.eval)
                for v in (frozen, row_vectors)
            )
            serving, vectors = _tune(dataset, dataset, Path(work) / "encoder", config, frozen, show)
            embedder, adapter = serving.embedder, serving.adapter_dir
            metrics["encoder"] = {
                **_summary(result),
                "validation_text_only": {"frozen": _core(before), "fine_tuned": _core(after)},
                "served": _summary(serving),
            }
        else:
            embedder = load_embedder(enc.model, None, enc.max_length)
            vectors = cached_item_vectors(dataset, embedder, enc.batch_size, show_progress_bar)
        index = build_item_index(dataset, vectors, embedder.model_id)
        scorer = HybridScorer(vectors, config.ranker, index=index, row_vectors=row_vectors).fit(dataset)
        info = EncoderInfo(enc.model, embedder.model_id, "encoder" if adapter else None, enc.max_length)
        model = RecommenderModel(scorer, info, index, metrics)
        model._adapter_source = adapter
        model.save(out_dir)
    return model


def _tune(
    train: Dataset,
    dataset: Dataset,
    out: Path,
    config: RecommenderConfig,
    frozen: np.ndarray,
    show_progress_bar: bool,
) -> tuple[TrainResult, np.ndarray]:
    """The encoder fine-tuned on ``train`` and its vectors of ``dataset``'s items."""
    result = train_encoder(train, out, config.encoder.model, config.finetune, show_progress_bar, frozen)
    if result.item_vectors is not None:  # the head: projected frozen vectors
        return result, result.item_vectors
    return result, embed_items(dataset, result.embedder, config.encoder.batch_size, show_progress_bar)


def _summary(result: TrainResult) -> dict[str, Any]:
    return {k: v for k, v in result.summary().items() if k != "adapter_dir"}


def _core(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "few_history"}

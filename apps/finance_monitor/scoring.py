"""Scoring: label texts with the trained classifiers, stored news items (the monitor) or a whole file.

:class:`Scorer` wraps the trained classifiers: a sentiment model and an optional topic model,
or one model with both heads (then one encoder pass labels both). Its ``version`` names the
model(s) (see :func:`apps.finance_monitor.classifiers.model_version`); scores are stored per
(item, version), so scoring with a new model adds rows and keeps the old ones (history), and
scoring again with the same model skips what it already scored.

:func:`score_pending` commits each batch in its own transaction: an interrupted run keeps the
batches already done, and the next run continues with the items still unscored. With a linker,
each item's entity links (:mod:`apps.finance_monitor.entities`) go into the same transaction as its
scores, so no scored item lacks its entities.
The headline (``title``) is what is classified: the models are trained on headlines and
single sentences.

:func:`classify_file` (``aigc finance classify``) labels every row of a file instead. Input: CSV /
TSV (a header, a text column; CRLF and newlines inside quotes are fine), Parquet, JSON Lines (read
by :mod:`core.io.tables`), or plain text (one text per line). The text column is ``--text-column``
or the first of ``text``, ``title``, ``headline``, ``sentence``. Output (by extension: ``.csv``,
``.jsonl``, ``.parquet``): the input columns plus, for each head, ``<head>`` and
``<head>_confidence`` (calibrated), written atomically (complete or absent).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from apps.finance_monitor.classifiers import head_probabilities, load_model, model_version
from apps.finance_monitor.datasets import read_texts
from apps.finance_monitor.entities import EntityLinker, link_stored
from apps.finance_monitor.labels import SENTIMENT_LABELS
from apps.finance_monitor.sources import NewsItem
from apps.finance_monitor.storage import Item, ScoreRow, store_scores, unscored_items
from core.atomic import write_bytes_atomic
from core.classifier_ensemble import Classifier
from core.failpoints import failpoint
from core.io.spreadsheet import spreadsheet_csv
from core.precision import InferencePrecision
from core.progress import progress_bar
from core.storage import session_scope, utcnow

logger = logging.getLogger(__name__)

SENTIMENT_HEAD = "sentiment"
TOPIC_HEAD = "topic"
OUTPUT_FORMATS: tuple[str, ...] = (".csv", ".jsonl", ".parquet")


@dataclass
class Label:
    """One text's labels: sentiment and topic with their (calibrated) confidences."""

    sentiment: str
    sentiment_confidence: float
    topic: str | None
    topic_confidence: float | None
    probabilities: dict[str, dict[str, float]]


class Scorer:
    """Labels texts with sentiment (and topic) from one or two trained classifiers.

    Args:
        sentiment_model: A classifier with a sentiment head (named ``sentiment``, or its only head),
            and possibly a ``topic`` head too.
        topic_model: A separate topic classifier (its ``topic`` head, or its only head).
        version: Model version recorded with every score.

    Raises:
        ValueError: The sentiment head's labels are not negative / neutral / positive.
    """

    def __init__(
        self,
        sentiment_model: Classifier,
        topic_model: Classifier | None = None,
        version: str = "unversioned",
    ) -> None:
        self.sentiment_model = sentiment_model
        self.topic_model = topic_model
        self.version = version
        self.sentiment_head = _pick_head(sentiment_model, SENTIMENT_HEAD)
        labels = set(sentiment_model.labels(self.sentiment_head))
        if not labels <= set(SENTIMENT_LABELS):
            raise ValueError(
                f"the sentiment model's labels {sorted(labels)} must be among {list(SENTIMENT_LABELS)}; "
                "train it with --label-map to name numeric labels"
            )
        if topic_model is not None:
            self.topic_head: str | None = _pick_head(topic_model, TOPIC_HEAD)
        else:
            self.topic_head = TOPIC_HEAD if TOPIC_HEAD in sentiment_model.head_names else None

    @classmethod
    def from_dirs(
        cls,
        sentiment_dir: str | Path,
        topic_dir: str | Path | None = None,
        *,
        precision: InferencePrecision = "auto",
        workers: int = 1,
    ) -> Scorer:
        """Load the models saved in ``sentiment_dir`` (and ``topic_dir``).

        Args:
            sentiment_dir: The sentiment (or two-head) model.
            topic_dir: A separate topic model.
            precision: Arithmetic of the encoders (``auto``, ``fp32``, ``bf16``, ``int8``; see
                :func:`apps.finance_monitor.classifiers.load_model`). The model version does not
                depend on it.
            workers: Forward passes run at once, each on its own thread (see :meth:`set_workers`).

        Raises:
            FileNotFoundError, ValueError: A directory is missing, incomplete or corrupt.
        """
        sentiment = load_model(sentiment_dir, precision)
        topic = load_model(topic_dir, precision) if topic_dir else None
        version = model_version(sentiment_dir) + (f"+{model_version(topic_dir)}" if topic_dir else "")
        scorer = cls(sentiment, topic, version)
        scorer.set_workers(workers)
        return scorer

    def set_workers(self, workers: int) -> None:
        """Run up to ``workers`` forward passes at once, each on its own thread (1: one at a time).

        A batch of ``model_batch_size * workers`` texts or more keeps ``workers`` cores busy; the
        labels are those of one worker (the same passes). Give torch one intra-op thread per pass
        (:func:`core.batching.single_thread_passes`), or the passes contend for the same cores.
        """
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        for model in (self.sentiment_model, self.topic_model):
            if model is not None:
                model.inference_workers = workers

    def label_titles(self, texts: Sequence[str], batch_size: int = 64) -> dict[str, Label]:
        """``{text: label}`` for the distinct ``texts`` (a label depends on the text alone)."""
        distinct = list(dict.fromkeys(texts))
        return dict(zip(distinct, self.label(distinct, batch_size), strict=True))

    def label(self, texts: Sequence[str], batch_size: int = 64) -> list[Label]:
        """Sentiment and topic of each text, with calibrated confidences."""
        texts = list(texts)
        probs = head_probabilities(self.sentiment_model, texts, batch_size)
        sentiment = probs[self.sentiment_head]
        topic = None
        if self.topic_model is not None and self.topic_head is not None:
            topic = head_probabilities(self.topic_model, texts, batch_size)[self.topic_head]
            topic_labels = self.topic_model.labels(self.topic_head)
        elif self.topic_head is not None:
            topic = probs[self.topic_head]
            topic_labels = self.sentiment_model.labels(self.topic_head)
        sentiment_labels = self.sentiment_model.labels(self.sentiment_head)
        out = []
        for i in range(len(texts)):
            s = int(sentiment[i].argmax())
            p: dict[str, dict[str, float]] = {
                "sentiment": {
                    lab: round(float(v), 5) for lab, v in zip(sentiment_labels, sentiment[i], strict=True)
                }
            }
            if topic is not None:
                t = int(topic[i].argmax())
                p["topic"] = {lab: round(float(v), 5) for lab, v in zip(topic_labels, topic[i], strict=True)}
                out.append(
                    Label(sentiment_labels[s], float(sentiment[i, s]), topic_labels[t], float(topic[i, t]), p)
                )
            else:
                out.append(Label(sentiment_labels[s], float(sentiment[i, s]), None, None, p))
        return out


def _pick_head(model: Classifier, wanted: str) -> str:
    if wanted in model.head_names:
        return wanted
    if len(model.head_names) == 1:
        return model.head_names[0]
    raise ValueError(f"the model has heads {model.head_names} and none is named {wanted!r}")


def score_pending(
    engine: Engine,
    scorer: Scorer,
    *,
    batch_size: int = 64,
    limit: int | None = None,
    show_progress_bar: bool = False,
    linker: EntityLinker | None = None,
    model_batch_size: int | None = None,
) -> list[str]:
    """Score the stored items that ``scorer.version`` has not scored yet, oldest first.

    Args:
        engine: Migrated database.
        scorer: The models.
        batch_size: Items per batch (one transaction each).
        limit: Score at most this many items.
        show_progress_bar: Show a tqdm bar over batches.
        linker: Also link each batch's items to entities, in the scores' transaction.
        model_batch_size: Texts per forward pass (default ``batch_size``).

    Returns:
        Ids of the items scored by this call.
    """
    done: list[str] = []
    bar = progress_bar(desc="Scoring", unit="item", disable=not show_progress_bar)
    try:
        while limit is None or len(done) < limit:
            size = batch_size if limit is None else min(batch_size, limit - len(done))
            with session_scope(engine) as session:
                items = unscored_items(session, scorer.version, limit=size)
                if not items:
                    break
                ids = score_into(
                    session, scorer, items, batch_size=model_batch_size or batch_size, linker=linker
                )
            failpoint("monitor.after_score_commit")
            done += ids
            bar.update(len(ids))
    finally:
        bar.close()
    if done:
        logger.info("Scored items", extra={"count": len(done), "model_version": scorer.version})
    return done


def score_into(
    session: Session,
    scorer: Scorer,
    items: Sequence[Item | NewsItem],
    *,
    batch_size: int = 64,
    linker: EntityLinker | None = None,
    labels: Mapping[str, Label] | None = None,
) -> list[str]:
    """Score ``items`` (stored, or being stored in ``session``) and write the scores in its transaction.

    The caller chooses which items (unscored ones) and commits; with a linker, their entity links go
    into the same transaction.

    Args:
        session: The open transaction (the caller commits).
        scorer: The models.
        items: The items to score.
        batch_size: Texts per forward pass.
        linker: Also link the items to entities.
        labels: Labels already computed by ``scorer`` for these titles (``{title: label}``, see
            :meth:`Scorer.label_titles`); titles not in it are labelled now.

    Returns:
        The ids scored, in the order of ``items``.
    """
    if not items:
        return []
    known = dict(labels or {})
    missing = list(dict.fromkeys(item.title for item in items if item.title not in known))
    if missing:
        known.update(scorer.label_titles(missing, batch_size))
    now = utcnow()
    store_scores(session, [_row(item.id, scorer.version, known[item.title], now) for item in items])
    if linker is not None:
        link_stored(session, linker, items)
    return [item.id for item in items]


def _row(item_id: str, version: str, label: Label, now: Any) -> ScoreRow:
    return ScoreRow(
        item_id=item_id,
        model_version=version,
        sentiment=label.sentiment,
        sentiment_confidence=label.sentiment_confidence,
        topic=label.topic,
        topic_confidence=label.topic_confidence,
        probabilities=label.probabilities,
        scored_at=now,
    )


# --- files (aigc finance classify) ------------------------------------------------------------------


def classify_file(
    model_dir: str | Path,
    input_path: str | Path,
    out_path: str | Path,
    *,
    text_column: str | None = None,
    batch_size: int = 64,
    show_progress_bar: bool = True,
) -> int:
    """Label every row of ``input_path`` with every head of the model and write ``out_path``.

    Returns:
        The number of rows written.

    Raises:
        FileNotFoundError, ValueError: Missing input or a missing / corrupt model directory.
        DataError: Bad input rows.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() not in OUTPUT_FORMATS:
        raise ValueError(f"output {out_path}: use one of the extensions {list(OUTPUT_FORMATS)}")
    if out_path.is_dir():
        raise ValueError(f"output {out_path} is a folder; --out must be a file path")
    frame, column = read_texts(input_path, text_column)  # bad input fails before the model loads
    model = load_model(model_dir)
    texts = frame[column].tolist()
    chunk = batch_size * 8
    results: dict[str, list] = {h: [] for h in model.head_names}
    confidences: dict[str, list[float]] = {h: [] for h in model.head_names}
    with progress_bar(
        total=len(texts), desc="Classifying", unit="text", disable=not show_progress_bar
    ) as bar:
        for start in range(0, len(texts), chunk):
            probs = head_probabilities(model, texts[start : start + chunk], batch_size)
            for head, p in probs.items():
                labels = model.labels(head)
                results[head] += [labels[i] for i in p.argmax(axis=1)]
                confidences[head] += [round(float(v), 5) for v in p.max(axis=1)]
            bar.update(min(chunk, len(texts) - start))
    out = frame.copy()
    for head in model.head_names:
        out[head] = results[head]
        out[f"{head}_confidence"] = confidences[head]
    write_frame(out, out_path)
    logger.info(
        "Classified file", extra={"input": str(input_path), "output": str(out_path), "rows": len(out)}
    )
    return len(out)


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as CSV / JSON Lines / Parquet (by extension), atomically (:mod:`core.atomic`).

    CSV cells that a spreadsheet would run as a formula (a headline starting with ``=``, ``+``, ``-``
    or ``@``) get a leading ``'`` (:mod:`core.io.spreadsheet`); JSON Lines and Parquet keep every text
    exactly."""
    suffix = Path(path).suffix.lower()
    if suffix == ".parquet":
        data = frame.to_parquet(index=False)
    elif suffix == ".jsonl":
        data = frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8")
    else:  # CSV is opened in spreadsheets: text that would run as a formula gets a leading '
        data = spreadsheet_csv(frame).encode("utf-8")
    write_bytes_atomic(path, data)

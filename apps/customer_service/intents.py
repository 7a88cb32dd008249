"""Intent classification of customer questions: read labelled utterances, train, evaluate, predict.

The classifier is a :class:`~core.classification.TextClassifier` (MiniLM by default, LoRA-adapted)
trained with :func:`core.finetune.train_classifier`; this module adds the support app's data
handling around it:

* :func:`read_intents_csv` reads a CSV of ``text,label`` rows (other column names by argument) with
  errors naming the file, row, line and field;
* :func:`load_banking77` reads the BANKING77 files (``text,category``, CRLF line endings, quoted
  fields with embedded newlines) and checks every label against ``categories.json``;
* :func:`train_intents` trains and saves a classifier, calibrates its temperature on the held-out
  validation split (so :meth:`IntentModel.predict` confidences mean something) and writes that
  split beside the model as ``validation.csv`` for :func:`evaluate_intents`;
* :func:`evaluate_intents` reports accuracy and macro-F1 (:mod:`core.metrics`).

Example:
    >>> report = train_intents("sample_data/intents.csv", "runs/intents", epochs=5)
    >>> IntentModel.load("runs/intents").predict(["where is my parcel"])[0].label
    'track_order'
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apps.customer_service.errors import SourceError
from core.atomic import write_bytes_atomic
from core.classification import KIND as CLASSIFIER_KIND
from core.classification import TextClassifier
from core.config import write_json_atomic
from core.errors import check_path_kind
from core.finetune import (
    ClassifierTrainConfig,
    LabelledTexts,
    split_indices,
    train_classifier,
    with_overrides,
)
from core.finetune.data import require_validation
from core.finetune.loop import REPORT_FILE, RUN_STATE
from core.io.artifacts import open_artifact
from core.io.tables import read_rows, read_text
from core.metrics import accuracy, classification_report, f1
from core.models import DEFAULT_ENCODER
from core.paths import data_dir

logger = logging.getLogger(__name__)

HEAD = "label"
VALIDATION_FILE = "validation.csv"
#: Artifact kind of an intent model directory (a core classifier plus its validation split).
KIND = "support-intents"
EVAL_FILE = "eval.json"
BANKING77_SPLITS = ("train", "test")


def default_intent_dir() -> Path:
    """Where ``aigc support train-intents`` saves the classifier by default."""
    return data_dir() / "support" / "intents"


def read_intents_csv(
    path: str | Path, text_column: str = "text", label_column: str = "label"
) -> LabelledTexts:
    """Read labelled utterances from a UTF-8 CSV with a header row.

    Quoted fields may hold commas and newlines; any line ending works.

    Args:
        path: The CSV file.
        text_column: Column of the utterances.
        label_column: Column of the intent labels.

    Returns:
        Texts (stripped) and their labels under the head ``"label"``.

    Raises:
        FileNotFoundError: The file does not exist.
        SourceError: Bad encoding, malformed CSV, missing column, an empty text or label, no rows,
            or fewer than two distinct labels — naming the row (0-based), line and field.
    """
    path = check_path_kind(path, "file")
    if not path.exists():
        raise FileNotFoundError(f"intent file {path} does not exist")
    texts: list[str] = []
    labels: list[str | None] = []
    columns = (text_column, label_column)
    for record in read_rows(path, columns=columns, format="csv", row_base=0, error=SourceError):
        for column in columns:
            if not record.text(column):
                raise record.error("is empty", field=column)
        texts.append(record.text(text_column))
        labels.append(record.text(label_column))
    if not texts:
        raise SourceError(path, "holds no labelled rows")
    distinct = sorted(set(labels))  # type: ignore[type-var]
    if len(distinct) < 2:
        raise SourceError(
            path, f"has {len(distinct)} distinct label(s) {distinct}; a classifier needs two or more",
            field=label_column,
        )  # fmt: skip
    logger.info("Read intents", extra={"path": str(path), "rows": len(texts), "labels": len(distinct)})
    return LabelledTexts(texts, {HEAD: labels}, str(path))


def load_banking77(root: str | Path, split: str = "train") -> LabelledTexts:
    """Read a BANKING77 split (Casanueva et al., 2020) from its upstream files.

    Args:
        root: The folder with ``train.csv``, ``test.csv`` and ``categories.json``.
        split: ``train`` (10,003 rows) or ``test`` (3,080 rows).

    Returns:
        Texts and labels (head ``"label"``).

    Raises:
        FileNotFoundError: A file is missing.
        ValueError: Unknown split.
        SourceError: A malformed row, or a label that is not in ``categories.json``.
    """
    if split not in BANKING77_SPLITS:
        raise ValueError(f"BANKING77 split must be one of {BANKING77_SPLITS}, got {split!r}")
    root = Path(root)
    categories_path = root / "categories.json"
    if not categories_path.is_file():
        raise FileNotFoundError(f"{categories_path} does not exist (is {root} the BANKING77 folder?)")
    try:
        categories = set(json.loads(read_text(categories_path, error=SourceError)))
    except (json.JSONDecodeError, TypeError) as err:
        raise SourceError(categories_path, f"expected a JSON list of label strings: {err}") from err
    data = read_intents_csv(root / f"{split}.csv", text_column="text", label_column="category")
    unknown = sorted({label for label in data.labels[HEAD] if label not in categories})
    if unknown:
        row = data.labels[HEAD].index(unknown[0])
        raise SourceError(
            root / f"{split}.csv",
            f"label {unknown[0]!r} is not in categories.json",
            row=row,
            field="category",
        )
    return data


@dataclass(frozen=True)
class IntentPrediction:
    """The predicted intent of one text and its calibrated probability."""

    label: str
    confidence: float


class IntentModel:
    """A trained intent classifier, for tagging conversations.

    Args:
        classifier: The underlying text classifier (single head).
    """

    def __init__(self, classifier: TextClassifier) -> None:
        self.classifier = classifier

    @classmethod
    def load(cls, directory: str | Path | None = None) -> IntentModel:
        """Load a classifier saved by :func:`train_intents` (default: :func:`default_intent_dir`)."""
        return cls(TextClassifier.from_pretrained(directory or default_intent_dir()))

    @property
    def labels(self) -> list[str]:
        """The intent labels."""
        return self.classifier.labels()

    def predict(self, texts: list[str], batch_size: int = 64) -> list[IntentPrediction]:
        """The most likely intent of each text with its (temperature-calibrated) probability."""
        probs = self.classifier.predict_proba(texts, batch_size=batch_size)
        labels = self.labels
        return [IntentPrediction(labels[int(p.argmax())], float(p.max())) for p in probs]


def _as_labelled(data: LabelledTexts | str | Path, text_column: str, label_column: str) -> LabelledTexts:
    if isinstance(data, LabelledTexts):
        return data
    return read_intents_csv(data, text_column, label_column)


def _write_csv_atomic(path: Path, texts: list[str], labels: list[str]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(zip(texts, labels, strict=True))
    write_bytes_atomic(path, buffer.getvalue().encode("utf-8"))


def train_intents(
    data: LabelledTexts | str | Path,
    out_dir: str | Path | None = None,
    model: str = DEFAULT_ENCODER,
    config: ClassifierTrainConfig | None = None,
    text_column: str = "text",
    label_column: str = "label",
    calibrate: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Fine-tune an intent classifier and save it.

    The validation split (``config.val_fraction``, stratified by label) picks the best epoch, fits
    the softmax temperature and is saved as ``validation.csv`` in ``out_dir``.

    Args:
        data: Labelled utterances, or a CSV path (see :func:`read_intents_csv`).
        out_dir: Where the classifier goes (default :func:`default_intent_dir`).
        model: Encoder spec, e.g. ``"minilm-l6"`` or a local Hugging Face directory.
        config: Training settings (default :class:`~core.finetune.ClassifierTrainConfig`).
        text_column: Text column of a CSV.
        label_column: Label column of a CSV.
        calibrate: Fit the temperature on the validation split.
        **overrides: Replace config fields, e.g. ``epochs=5``.

    Returns:
        The training report (see :func:`core.finetune.train_classifier`) plus ``labels``,
        ``temperature`` and ``validation_file``.

    Raises:
        FileNotFoundError: Missing data file.
        SourceError: Bad data (see :func:`read_intents_csv`).
        ValueError: An unknown config field.
    """
    labelled = _as_labelled(data, text_column, label_column)
    config = with_overrides(config or ClassifierTrainConfig(), overrides)
    out_dir = Path(out_dir or default_intent_dir())
    labels = [str(label) for label in labelled.labels[HEAD]]
    # The same stratified split classifier_task() draws: data order, fraction and seed are unchanged.
    _, val = split_indices(len(labels), config.val_fraction, config.val_split_seed, strata=labels)
    require_validation(val, len(labels), config.val_fraction, str(labelled.source))
    # Built aside and swapped in whole; a directory holding anything but an intent model is refused.
    with open_artifact(
        out_dir, KIND, legacy=(CLASSIFIER_KIND,), unhashed=RUN_STATE, embeds=(CLASSIFIER_KIND,)
    ) as build:
        report = train_classifier(list(zip(labelled.texts, labels, strict=True)), build, model, config=config)
        report["labels"] = sorted(set(labels))
        report["data"] = labelled.source
        report["output_dir"] = str(out_dir)
        if val:
            val_texts, val_labels = [labelled.texts[i] for i in val], [labels[i] for i in val]
            _write_csv_atomic(build / VALIDATION_FILE, val_texts, val_labels)
            report["validation_file"] = str(out_dir / VALIDATION_FILE)
            if calibrate:
                classifier = TextClassifier.from_pretrained(build, merge=False)
                report["temperature"] = classifier.calibrate_temperature(val_texts, val_labels)
                classifier.save_pretrained(build)
        write_json_atomic(build / REPORT_FILE, report)
    return report


def evaluate_intents(
    model_dir: str | Path | None = None,
    data: LabelledTexts | str | Path | None = None,
    text_column: str = "text",
    label_column: str = "label",
    batch_size: int = 64,
    per_label: bool = False,
) -> dict[str, Any]:
    """Accuracy and macro-F1 of a saved intent classifier on labelled utterances.

    Args:
        model_dir: Classifier directory (default :func:`default_intent_dir`).
        data: Labelled utterances or a CSV; default: the model's held-out ``validation.csv``.
        text_column: Text column of a CSV.
        label_column: Label column of a CSV.
        batch_size: Texts per forward pass.
        per_label: Add per-label precision/recall/F1.

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "examples", "labels", "unknown_labels", "data",
        "model"}`` (plus ``"per_label"``). Gold labels the model does not know count as errors and
        are listed in ``unknown_labels``.

    Raises:
        FileNotFoundError: Missing model or data (or no ``validation.csv`` when ``data`` is omitted).
        SourceError: Bad data.
    """
    model_dir = Path(model_dir or default_intent_dir())
    model = IntentModel.load(model_dir)
    if data is None:
        data = model_dir / VALIDATION_FILE
        if not data.is_file():
            raise FileNotFoundError(
                f"{model_dir} has no {VALIDATION_FILE} (trained without a validation split): pass data"
            )
        text_column, label_column = "text", "label"
    labelled = _as_labelled(data, text_column, label_column)
    gold = [str(label) for label in labelled.labels[HEAD]]
    predicted = [p.label for p in model.predict(labelled.texts, batch_size=batch_size)]
    known = set(model.labels)
    result: dict[str, Any] = {
        "accuracy": round(accuracy(gold, predicted), 4),
        "macro_f1": round(f1(gold, predicted, average="macro"), 4),
        "weighted_f1": round(f1(gold, predicted, average="weighted"), 4),
        "examples": len(gold),
        "labels": len(set(gold)),
        "unknown_labels": sorted(set(gold) - known),
        "data": labelled.source,
        "model": str(model_dir),
    }
    if per_label:
        report = classification_report(gold, predicted)
        result["per_label"] = report.get("per_class", report)
    counts = Counter(p == g for p, g in zip(predicted, gold, strict=True))
    logger.info("Evaluated intents", extra={"correct": counts[True], **{k: result[k] for k in ("accuracy",)}})
    return result


__all__ = [
    "HEAD",
    "IntentModel",
    "IntentPrediction",
    "default_intent_dir",
    "evaluate_intents",
    "load_banking77",
    "read_intents_csv",
    "train_intents",
]

"""Seed ensembles of text classifiers: several trained classifiers, one averaged prediction.

The members are :class:`core.classification.TextClassifier` directories with the same heads and labels,
typically one training set-up run with different seeds. The ensemble's probabilities are the mean of its
members' calibrated probabilities (each member applies its own temperatures), and its label is the
argmax of that mean. Averaging a few seeds of a fine-tune removes part of the seed-to-seed variance of a
single run (``docs/benchmarks/finance.md`` measures it); scoring costs one encoder pass per member.

Saved layout, inside any directory (a finance model directory, say)::

    ensemble.json          kind, format_version, heads, and per member its path (relative) and the
                           sha256 of its config.json, which holds the sha256 of its weight files
    members/<name>/        one TextClassifier directory per member (each with its own artifact.json)

Loading checks every member's ``config.json`` against ``ensemble.json`` before its weights are read, so a
member swapped for another model, or one missing, is refused; each member then checks its own weights.

Example:
    >>> model = load_classifier("runs/sentiment")  # a TextClassifier, or a ClassifierEnsemble
    >>> model.head_probabilities(["Profit fell 40 %"])["sentiment"].round(2)
    array([[0.93, 0.05, 0.02]], dtype=float32)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.classification import CONFIG_FILE, HeadPredictions, TextClassifier
from core.config import write_json_atomic
from core.io.artifacts import read_kind_json, recover, sha256_file
from core.precision import InferencePrecision

logger = logging.getLogger(__name__)

ENSEMBLE_FILE = "ensemble.json"
KIND = "text-classifier-ensemble"
FORMAT_VERSION = 1
#: Folder of the member directories inside an ensemble directory.
MEMBERS_DIR = "members"


class ClassifierEnsemble(HeadPredictions):
    """Classifiers with the same heads and labels whose calibrated probabilities are averaged.

    It has the prediction methods of :class:`~core.classification.TextClassifier`
    (:class:`~core.classification.HeadPredictions`: ``head_names``, ``labels``, ``head_probabilities``,
    ``predict_proba``, ``predict``, ``predict_all``), so code that scores with a classifier scores with
    an ensemble unchanged.

    Args:
        members: The loaded classifiers (one gives that classifier's own predictions).

    Raises:
        ValueError: No members, or members whose heads or labels differ.
    """

    def __init__(self, members: Sequence[TextClassifier]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member classifier")
        heads = members[0].head_labels
        for i, member in enumerate(members[1:], start=1):
            if member.head_labels != heads:
                raise ValueError(
                    f"ensemble member {i} has heads {member.head_labels}, member 0 has {heads}: "
                    "members must share heads and label order"
                )
        self.members = list(members)
        self.head_labels: dict[str, list[str]] = {h: list(labels) for h, labels in heads.items()}

    @property
    def inference_workers(self) -> int:
        """Forward passes each member runs at once (see ``TextClassifier.inference_workers``)."""
        return self.members[0].inference_workers

    @inference_workers.setter
    def inference_workers(self, workers: int) -> None:
        for member in self.members:
            member.inference_workers = workers

    @property
    def encoder(self) -> torch.nn.Module:
        """The first member's encoder (its dtype and device stand for all members')."""
        return self.members[0].encoder

    def head_probabilities(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False
    ) -> dict[str, np.ndarray]:
        """Mean of the members' calibrated probabilities, every head: ``{head: (n, n_labels)}``."""
        runs = []
        for i, member in enumerate(self.members):
            logger.debug("Scoring with ensemble member", extra={"member": i, "texts": len(texts)})
            runs.append(member.head_probabilities(texts, batch_size, show_progress_bar))
        return {
            h: np.mean([run[h] for run in runs], axis=0, dtype=np.float64).astype(np.float32)
            for h in self.head_labels
        }

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device | None = None,
        precision: InferencePrecision = "auto",
    ) -> ClassifierEnsemble:
        """Load the ensemble saved in ``directory`` (see :func:`write_ensemble`).

        Raises:
            FileNotFoundError: The directory, ``ensemble.json`` or a member is missing.
            ValueError: ``ensemble.json`` is unreadable or of another kind, or a member's
                ``config.json`` is not the one recorded (or its weights are corrupt).
        """
        directory = Path(directory)
        manifest = read_ensemble(directory)
        members = []
        for entry in manifest["members"]:
            member_dir = directory / entry["path"]
            config = member_dir / CONFIG_FILE
            if not config.is_file():
                raise FileNotFoundError(
                    f"{config} is missing: ensemble member {entry['path']!r} is incomplete"
                )
            if sha256_file(config) != entry["config_sha256"]:
                raise ValueError(
                    f"{config} is not the member recorded in {directory / ENSEMBLE_FILE} "
                    "(changed or replaced after the ensemble was written)"
                )
            members.append(TextClassifier.from_pretrained(member_dir, device=device, precision=precision))
        logger.info("Loaded classifier ensemble", extra={"dir": str(directory), "members": len(members)})
        return cls(members)


def is_ensemble(directory: str | Path) -> bool:
    """Whether ``directory`` holds an ``ensemble.json`` (rather than one classifier)."""
    return (Path(directory) / ENSEMBLE_FILE).is_file()


def write_ensemble(
    directory: str | Path, members: Sequence[str], info: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``directory/ensemble.json`` for the classifier directories ``members`` (relative paths).

    Args:
        directory: The ensemble directory; the members must already be saved inside it.
        members: Member paths relative to ``directory`` (``members/s42``, ...), in order.
        info: Extra JSON fields recorded beside the members (seeds, how they were trained).

    Returns:
        The manifest written.

    Raises:
        FileNotFoundError: A member has no ``config.json``.
        ValueError: No members, a path outside ``directory``, or members with different heads.
    """
    directory = Path(directory)
    if not members:
        raise ValueError("an ensemble needs at least one member")
    entries = []
    heads = None
    for path in members:
        member_dir = (directory / path).resolve()
        if directory.resolve() not in member_dir.parents:
            raise ValueError(f"ensemble member {path!r} is not inside {directory}")
        config_path = member_dir / CONFIG_FILE
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} is missing: {path!r} is not a saved classifier")
        member_heads = json.loads(config_path.read_text(encoding="utf-8"))["heads"]
        if heads is not None and member_heads != heads:
            raise ValueError(f"ensemble member {path!r} has heads {member_heads}, the first has {heads}")
        heads = member_heads
        entries.append({"path": Path(path).as_posix(), "config_sha256": sha256_file(config_path)})
    manifest = {
        "kind": KIND,
        "format_version": FORMAT_VERSION,
        "heads": heads,
        "members": entries,
        **dict(info or {}),
    }
    write_json_atomic(directory / ENSEMBLE_FILE, manifest)
    return manifest


def read_ensemble(directory: str | Path) -> dict[str, Any]:
    """The checked ``ensemble.json`` of ``directory`` (kind, version and member list).

    Raises:
        FileNotFoundError: No such directory or file. ValueError: Unreadable or of another kind.
    """
    directory = Path(directory)
    recover(directory)  # a save killed between the two renames of its swap
    path = directory / ENSEMBLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: '{directory}' is not a classifier ensemble")
    manifest = read_kind_json(path, KIND, FORMAT_VERSION)
    members = manifest.get("members")
    if (
        not isinstance(members, list)
        or not members
        or not all(
            isinstance(m, dict) and isinstance(m.get("path"), str) and isinstance(m.get("config_sha256"), str)
            for m in members
        )
    ):
        raise ValueError(f"{path}: 'members' must be a non-empty list of {{path, config_sha256}}")
    return manifest


def load_classifier(
    directory: str | Path,
    precision: InferencePrecision = "auto",
    device: str | torch.device | None = None,
) -> TextClassifier | ClassifierEnsemble:
    """Load the classifier or the classifier ensemble saved in ``directory`` (for prediction).

    Args:
        directory: A :class:`~core.classification.TextClassifier` directory or an ensemble directory.
        precision: Encoder arithmetic of every member (see ``TextClassifier.from_pretrained``).
        device: Move the weights there (default: CPU).
    """
    recover(Path(directory))  # a save killed between the two renames of its swap
    if is_ensemble(directory):
        return ClassifierEnsemble.from_pretrained(directory, device=device, precision=precision)
    return TextClassifier.from_pretrained(directory, device=device, precision=precision)


#: A loaded model that scores texts: one classifier or an ensemble of them.
Classifier = TextClassifier | ClassifierEnsemble

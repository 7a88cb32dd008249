"""Evaluation metrics for classification, calibration, retrieval, ranking, clustering and generation.

Plain functions over plain Python values. Classification uses scikit-learn, BLEU uses sacrebleu and
ROUGE-L uses rouge-score, so the numbers match what those libraries report elsewhere. Retrieval and
ranking metrics use binary relevance and are averaged over queries (or users).

Every function raises ``ValueError`` on empty inputs, mismatched lengths or ``k < 1`` rather than
returning a misleading number (except :func:`expected_calibration_error`, which is 0 for no rows).
Calibration metrics (:func:`softmax`, :func:`expected_calibration_error`,
:func:`negative_log_likelihood`, :func:`calibration_stats`) work on NumPy arrays of logits or
probabilities; fitting a temperature is model-side code in :mod:`core.calibration`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Hashable, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Gold = Collection[str] | str


def _check_pair(name_a: str, a: Sequence[Any], name_b: str, b: Sequence[Any]) -> None:
    if len(a) == 0:
        raise ValueError(f"{name_a} is empty: nothing to evaluate.")
    if len(a) != len(b):
        raise ValueError(
            f"{name_a} has {len(a)} items but {name_b} has {len(b)}; they must match one to one."
        )


def _check_k(k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


# --- classification -------------------------------------------------------------------------------


def accuracy(y_true: Sequence[Hashable], y_pred: Sequence[Hashable]) -> float:
    """Fraction of predictions equal to the true label."""
    from sklearn.metrics import accuracy_score

    _check_pair("y_true", y_true, "y_pred", y_pred)
    return float(accuracy_score(list(y_true), list(y_pred)))


def f1(
    y_true: Sequence[Hashable],
    y_pred: Sequence[Hashable],
    average: str = "macro",
    labels: Sequence[Hashable] | None = None,
) -> float:
    """F1 score averaged over classes (``"macro"`` or ``"weighted"`` by support); 0 for undefined classes."""
    from sklearn.metrics import f1_score

    _check_pair("y_true", y_true, "y_pred", y_pred)
    if average not in {"macro", "weighted", "micro"}:
        raise ValueError(f"average must be 'macro', 'weighted' or 'micro', got {average!r}")
    return float(f1_score(list(y_true), list(y_pred), average=average, labels=labels, zero_division=0))


def classification_report(
    y_true: Sequence[Hashable], y_pred: Sequence[Hashable], labels: Sequence[Hashable] | None = None
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, per-class scores and the confusion matrix.

    Args:
        y_true: True labels.
        y_pred: Predicted labels.
        labels: Label order for the per-class scores and the confusion matrix; defaults to the sorted
            union of labels seen in ``y_true`` and ``y_pred``.

    Returns:
        ``{"accuracy", "macro_f1", "weighted_f1", "per_class": {label: {"precision", "recall", "f1",
        "support"}}, "confusion": {"labels": [...], "matrix": [[...]]}}``; matrix rows are true labels,
        columns predicted labels. Classes with no predictions or no support score 0, not NaN.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    _check_pair("y_true", y_true, "y_pred", y_pred)
    y_true, y_pred = list(y_true), list(y_pred)
    labels = list(labels) if labels is not None else sorted(set(y_true) | set(y_pred), key=str)
    unknown = (set(y_true) | set(y_pred)) - set(labels)
    if unknown:
        raise ValueError(f"labels {sorted(map(str, unknown))} occur in the data but not in `labels`")
    precision, recall, scores, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = {
        label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for label, p, r, f, s in zip(labels, precision, recall, scores, support, strict=True)
    }
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": f1(y_true, y_pred, "macro", labels),
        "weighted_f1": f1(y_true, y_pred, "weighted", labels),
        "per_class": per_class,
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
    }


# --- retrieval and ranking ------------------------------------------------------------------------


def _as_gold(gold: Sequence[Gold], allow_empty: bool = False) -> list[set[str]]:
    sets = [{g} if isinstance(g, str) else set(g) for g in gold]
    if not allow_empty:
        for i, g in enumerate(sets):
            if not g:
                raise ValueError(f"gold[{i}] is empty: drop queries without relevant items before scoring")
    return sets


def _per_query(ranked_ids: Sequence[Sequence[str]], gold: Sequence[Gold], k: int) -> list[tuple[list, set]]:
    _check_pair("ranked_ids", ranked_ids, "gold", gold)
    _check_k(k)
    return [(list(r[:k]), g) for r, g in zip(ranked_ids, _as_gold(gold), strict=True)]


def recall_at_k(ranked_ids: Sequence[Sequence[str]], gold: Sequence[Gold], k: int) -> float:
    """Mean over queries of (relevant items in the top ``k``) / (relevant items).

    Args:
        ranked_ids: Per query, retrieved ids, best first.
        gold: Per query, the set of relevant ids (a single string counts as a one-item set).
        k: Cut-off.
    """
    rows = _per_query(ranked_ids, gold, k)
    return sum(len(set(top) & g) / len(g) for top, g in rows) / len(rows)


def hit_rate_at_k(ranked_ids: Sequence[Sequence[str]], gold: Sequence[Gold], k: int) -> float:
    """HR@k: fraction of queries (users) with at least one relevant item in the top ``k``."""
    rows = _per_query(ranked_ids, gold, k)
    return sum(bool(set(top) & g) for top, g in rows) / len(rows)


def mrr_at_k(ranked_ids: Sequence[Sequence[str]], gold: Sequence[Gold], k: int) -> float:
    """Mean reciprocal rank of the first relevant item within the top ``k`` (0 when none)."""
    rows = _per_query(ranked_ids, gold, k)
    total = 0.0
    for top, g in rows:
        total += next((1.0 / rank for rank, item in enumerate(top, start=1) if item in g), 0.0)
    return total / len(rows)


def ndcg_at_k(ranked_ids: Sequence[Sequence[str]], gold: Sequence[Gold], k: int) -> float:
    """nDCG@k with binary relevance and a ``log2(rank + 1)`` discount, averaged over queries.

    The ideal ranking puts ``min(len(gold), k)`` relevant items first. Used both for retrieval
    (several relevant passages) and next-item ranking (one held-out item per user).
    """
    rows = _per_query(ranked_ids, gold, k)
    total = 0.0
    for top, g in rows:
        seen: set[str] = set()
        dcg = 0.0
        for rank, item in enumerate(top, start=1):
            if item in g and item not in seen:  # a duplicate id must not count twice
                dcg += 1.0 / math.log2(rank + 1)
            seen.add(item)
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(g), k) + 1))
        total += dcg / ideal
    return total / len(rows)


def catalogue_coverage(
    recommended: Sequence[Sequence[str]], catalogue_size: int, k: int | None = None
) -> float:
    """Fraction of the catalogue that appears in at least one recommendation list.

    Args:
        recommended: Per user, recommended ids, best first.
        catalogue_size: Number of items that could be recommended.
        k: Only count each list's top ``k`` (all when ``None``).
    """
    if len(recommended) == 0:
        raise ValueError("recommended is empty: nothing to evaluate.")
    if catalogue_size < 1:
        raise ValueError(f"catalogue_size must be >= 1, got {catalogue_size}")
    if k is not None:
        _check_k(k)
    items = {item for recs in recommended for item in (recs if k is None else recs[:k])}
    if len(items) > catalogue_size:
        raise ValueError(f"{len(items)} distinct items recommended but catalogue_size is {catalogue_size}")
    return len(items) / catalogue_size


# --- clustering -----------------------------------------------------------------------------------


def clustering_scores(
    y_true: Sequence[Hashable], clusters: Sequence[int], unclustered: int = -1
) -> dict[str, float | int]:
    """How well ``clusters`` recover the classes ``y_true``.

    Rows whose cluster is ``unclustered`` are in no cluster. They are left out of ``purity`` (the
    share of clustered rows whose cluster's majority class is their own) and counted in
    ``unclustered_share``; for ``nmi`` and ``ari`` (scikit-learn's normalized mutual information and
    adjusted Rand index, over every row) each of them is a cluster of its own, so leaving rows
    unclustered is not free.

    Returns:
        ``purity``, ``nmi``, ``ari``, ``clusters`` (count), ``classes`` (count), ``unclustered_share``;
        ``purity`` is 0 when no row is clustered.
    """
    from collections import Counter

    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    _check_pair("y_true", y_true, "clusters", clusters)
    members: dict[int, list[Hashable]] = {}
    for label, cluster in zip(y_true, clusters, strict=True):
        if cluster != unclustered:
            members.setdefault(int(cluster), []).append(label)
    clustered = sum(len(m) for m in members.values())
    majority = sum(Counter(m).most_common(1)[0][1] for m in members.values())
    # Unclustered rows as singletons: ids after the real ones.
    top = max(members, default=-1)
    singletons = [c if c != unclustered else top + 1 + i for i, c in enumerate(clusters)]
    return {
        "purity": majority / clustered if clustered else 0.0,
        "nmi": float(normalized_mutual_info_score(list(y_true), singletons)),
        "ari": float(adjusted_rand_score(list(y_true), singletons)),
        "clusters": len(members),
        "classes": len(set(y_true)),
        "unclustered_share": 1.0 - clustered / len(clusters),
    }


# --- generation -----------------------------------------------------------------------------------


def _check_texts(hypotheses: Sequence[str], references: Sequence[Any]) -> None:
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError("hypotheses and references must be lists of strings, not a single string")
    _check_pair("hypotheses", hypotheses, "references", references)


def bleu(hypotheses: Sequence[str], references: Sequence[str | Sequence[str]]) -> float:
    """Corpus BLEU (0-100) with sacrebleu's defaults (13a tokenisation, exponential smoothing).

    Args:
        hypotheses: Generated texts.
        references: Per hypothesis, one reference string or a list of references (the same number
            for every hypothesis).
    """
    import sacrebleu

    _check_texts(hypotheses, references)
    refs = [[r] if isinstance(r, str) else list(r) for r in references]
    counts = {len(r) for r in refs}
    if len(counts) != 1 or 0 in counts:
        raise ValueError(
            f"every hypothesis needs the same (non-zero) number of references, got {sorted(counts)}"
        )
    streams = [
        list(stream) for stream in zip(*refs, strict=True)
    ]  # sacrebleu wants one list per reference set
    return float(sacrebleu.corpus_bleu(list(hypotheses), streams).score)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str], use_stemmer: bool = False) -> float:
    """Mean ROUGE-L F-measure (0-1) over hypothesis/reference pairs (rouge-score's tokeniser).

    Args:
        hypotheses: Generated texts.
        references: One reference per hypothesis.
        use_stemmer: Porter-stem tokens before matching.
    """
    from rouge_score import rouge_scorer

    _check_texts(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=use_stemmer)
    scores = [
        scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references, strict=True)
    ]
    return float(sum(scores) / len(scores))


# --- calibration ------------------------------------------------------------------------------------


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise ``softmax(logits / temperature)`` (float64)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def expected_calibration_error(probs: np.ndarray, targets: Sequence[int], bins: int = 10) -> float:
    """Expected calibration error of the top-class confidence over ``bins`` equal-width bins.

    Args:
        probs: ``(n, n_classes)`` probabilities.
        targets: True class index per row.
        bins: Number of confidence bins on ``[0, 1]``.

    Returns:
        ``sum_b |acc_b - conf_b| * n_b / n``; 0 for empty input.
    """
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(targets)
    if len(probs) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += abs(correct[mask].mean() - conf[mask].mean()) * mask.sum()
    return float(total / len(probs))


def negative_log_likelihood(probs: np.ndarray, targets: Sequence[int]) -> float:
    """Mean ``-log p(true class)`` (probabilities clipped at 1e-12)."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)).mean())


def calibration_stats(logits: np.ndarray, targets: Sequence[int], temperature: float) -> dict[str, float]:
    """NLL and ECE before (``T = 1``) and after scaling by ``temperature``, and the accuracy."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": float(temperature),
        "n": len(targets),
        "nll_before": negative_log_likelihood(before, targets),
        "nll_after": negative_log_likelihood(after, targets),
        "ece_before": expected_calibration_error(before, targets),
        "ece_after": expected_calibration_error(after, targets),
        "accuracy": float((np.asarray(logits).argmax(axis=1) == np.asarray(targets)).mean()),
    }

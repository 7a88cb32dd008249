"""The offline evaluation protocol: next-item ranking, and cold-start items.

**Next item** (:func:`evaluate_next_item` on :func:`~apps.recommender.splits.leave_last_out`):
per user, the last interaction by time is the test item and earlier ones train. Each model ranks
*every* catalogue item the user has not interacted with in training (full ranking, no sampled
negatives; ties broken by item index). Reported: ``hr@10``, ``ndcg@10``, ``recall@50`` (with one
test item, the share of users whose item is in the top 50), ``mrr`` (mean reciprocal rank over
the full ranking, no cut-off) and ``coverage`` (share of the catalogue appearing in at least one
top-10 list). Users with at most ``few_history`` training interactions are also reported alone.

**Cold start** (:func:`evaluate_cold_start` on :func:`~apps.recommender.splits.cold_start_split`):
items whose first interaction comes after a global time cut are hidden from training. For each
user with training history who later interacts with such items, the model ranks all unseen
items (or only the cold ones, ``cold_candidates="cold"``); reported: recall@50 and hr@10 of the
user's cold items.

HR, NDCG, recall and coverage come from :mod:`core.metrics` over the top-k lists; MRR is computed
here from the full rank (:func:`~apps.recommender.scorer.rank_of`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from apps.recommender.config import EvalConfig
from apps.recommender.interactions import Dataset
from apps.recommender.scorer import Scorer, rank_of, top_k
from apps.recommender.splits import Split, cold_start_split, leave_last_out
from core import metrics
from core.progress import progress_bar

logger = logging.getLogger(__name__)


ScorerFactory = Callable[[], Scorer]


def _sample(split: Split, config: EvalConfig) -> tuple[np.ndarray, list[np.ndarray]]:
    users, targets = split.test_users, split.test_items
    if config.max_users is not None and len(users) > config.max_users:
        rng = np.random.default_rng(config.seed)
        keep = np.sort(rng.choice(len(users), size=config.max_users, replace=False))
        users, targets = users[keep], [targets[i] for i in keep]
    return users, targets


def _ranked(
    scorer: Scorer,
    split: Split,
    users: np.ndarray,
    k: int,
    allowed: np.ndarray | None,
    first_targets: np.ndarray | None,
    batch_size: int,
    show_progress_bar: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Top-k item indices per user (and the rank of ``first_targets`` when given)."""
    seen = split.train.user_item_matrix()
    tops, ranks = [], []
    starts = range(0, len(users), batch_size)
    for start in progress_bar(
        starts, desc=f"Scoring {scorer.name}", unit="batch", disable=not show_progress_bar
    ):
        batch = users[start : start + batch_size]
        scores = scorer.score_indices(batch, exclude_seen=True)
        # The protocol, not the model, owns the exclusion of seen items.
        block = seen[batch].tocoo()
        scores[block.row, block.col] = -np.inf
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        tops.append(top_k(scores, k)[0])
        if first_targets is not None:
            ranks.append(rank_of(scores, first_targets[start : start + batch_size]))
    top = np.concatenate(tops) if tops else np.empty((0, k), dtype=np.int64)
    return top, (np.concatenate(ranks) if first_targets is not None and ranks else None)


def _lists(top: np.ndarray, item_ids: np.ndarray) -> list[list[str]]:
    return [item_ids[row[row >= 0]].tolist() for row in top]


def evaluate_next_item(
    scorer: Scorer, split: Split, config: EvalConfig | None = None, show_progress_bar: bool = False
) -> dict[str, Any]:
    """Metrics of a scorer fit on ``split.train`` for the leave-last-out targets.

    Args:
        scorer: A fitted scorer (on ``split.train``).
        split: From :func:`~apps.recommender.splits.leave_last_out` (one target per user).
        config: Cut-offs.
        show_progress_bar: Show a tqdm bar over user batches.

    Returns:
        ``{"hr@10", "ndcg@10", "recall@50", "mrr", "coverage", "n_users", "few_history"}``.

    Raises:
        ValueError: The split has no test users, is a cold-start split or has several targets per user.
    """
    config = config or EvalConfig()
    users, targets = _sample(split, config)
    if not len(users):
        raise ValueError(f"{split.train.name}: no test users (every user has a single interaction?)")
    if split.cold_items is not None or any(len(t) != 1 for t in targets):
        raise ValueError("evaluate_next_item needs exactly one target item per user; use evaluate_cold_start")
    target = np.array([t[0] for t in targets], dtype=np.int64)
    k = max(config.hr_k, config.ndcg_k, config.recall_k, config.coverage_k)
    top, ranks = _ranked(scorer, split, users, k, None, target, config.batch_size, show_progress_bar)
    assert ranks is not None
    item_ids = split.train.item_ids
    result = _next_item_metrics(_lists(top, item_ids), item_ids[target].tolist(), ranks, split, config)
    history = np.diff(split.train.user_item_matrix().indptr)[users]
    few = history <= config.few_history
    result["few_history"] = {"max_history": config.few_history, "n_users": int(few.sum())}
    if few.any():
        lists = _lists(top[few], item_ids)
        result["few_history"].update(
            _next_item_metrics(lists, item_ids[target[few]].tolist(), ranks[few], split, config)
        )
    return result


def _next_item_metrics(
    lists: list[list[str]], gold: list[str], ranks: np.ndarray, split: Split, config: EvalConfig
) -> dict[str, Any]:
    return {
        f"hr@{config.hr_k}": metrics.hit_rate_at_k(lists, gold, config.hr_k),
        f"ndcg@{config.ndcg_k}": metrics.ndcg_at_k(lists, gold, config.ndcg_k),
        f"recall@{config.recall_k}": metrics.recall_at_k(lists, gold, config.recall_k),
        "mrr": float(np.mean(1.0 / ranks)),
        "coverage": metrics.catalogue_coverage(lists, split.train.n_items, k=config.coverage_k),
        "n_users": len(lists),
    }


def evaluate_cold_start(
    scorer: Scorer, split: Split, config: EvalConfig | None = None, show_progress_bar: bool = False
) -> dict[str, Any]:
    """Recall of cold items for a scorer fit on a cold-start ``split.train``.

    Args:
        scorer: A fitted scorer (on ``split.train``).
        split: From :func:`~apps.recommender.splits.cold_start_split`.
        config: Cut-offs and ``cold_candidates``.
        show_progress_bar: Show a tqdm bar over user batches.

    Returns:
        ``{"recall@50", "hr@10", "n_users"}``; ``None`` metrics when the split has no test users.
    """
    config = config or EvalConfig()
    if split.cold_items is None:
        raise ValueError("evaluate_cold_start needs a split from cold_start_split")
    users, targets = _sample(split, config)
    keys = (f"recall@{config.recall_k}", f"hr@{config.hr_k}")
    if not len(users):
        return {**dict.fromkeys(keys), "n_users": 0}
    allowed = None
    if config.cold_candidates == "cold":
        allowed = np.zeros(split.train.n_items, dtype=bool)
        allowed[split.cold_items] = True
    k = max(config.recall_k, config.hr_k)
    top, _ = _ranked(scorer, split, users, k, allowed, None, config.batch_size, show_progress_bar)
    item_ids = split.train.item_ids
    lists = _lists(top, item_ids)
    gold = [item_ids[t].tolist() for t in targets]
    return {
        keys[0]: metrics.recall_at_k(lists, gold, config.recall_k),
        keys[1]: metrics.hit_rate_at_k(lists, gold, config.hr_k),
        "n_users": len(users),
    }


def evaluate(
    dataset: Dataset,
    scorers: Mapping[str, ScorerFactory],
    config: EvalConfig | None = None,
    cold_start: bool = True,
    show_progress_bar: bool = False,
) -> dict[str, Any]:
    """Run the whole protocol: every model on the next-item split, then on the cold-start split.

    Each factory is called once per split, so no state leaks between the two.

    Args:
        dataset: The full data.
        scorers: Model name -> a function returning a new, unfitted scorer.
        config: Protocol options.
        cold_start: Also run the cold-start protocol.
        show_progress_bar: Show tqdm bars.

    Returns:
        ``{"protocol": {...}, "models": {name: metrics}, "cold_start": {...}}`` (JSON-serialisable).
    """
    config = config or EvalConfig()
    split = leave_last_out(dataset)
    report: dict[str, Any] = {
        "protocol": {
            **split.info,
            "dataset": dataset.summary(),
            "ranking": "full: all items not seen in training; ties by item index",
            "metrics": [
                f"hr@{config.hr_k}",
                f"ndcg@{config.ndcg_k}",
                f"recall@{config.recall_k}",
                "mrr",
                "coverage",
            ],
            "coverage_k": config.coverage_k,
            "max_users": config.max_users,
        },
        "models": {},
    }
    for name, factory in scorers.items():
        clock = _Clock()
        scorer = factory().fit(split.train)
        fit = clock.lap()
        result = evaluate_next_item(scorer, split, config, show_progress_bar)
        evaluation = clock.lap()
        result.update(
            fit_seconds=fit[0],
            eval_seconds=evaluation[0],
            fit_cpu_seconds=fit[1],
            eval_cpu_seconds=evaluation[1],
        )
        report["models"][name] = result
        logger.info("Evaluated model", extra={"model": name, "metrics": result})
    if cold_start:
        cold = cold_start_split(dataset, config.cold_quantile, config.cold_split_time)
        section: dict[str, Any] = {**cold.info, "candidates": config.cold_candidates, "models": {}}
        for name, factory in scorers.items():
            clock = _Clock()
            scorer = factory().fit(cold.train)
            fit = clock.lap()
            result = evaluate_cold_start(scorer, cold, config, show_progress_bar)
            result.update(fit_cpu_seconds=fit[1], eval_cpu_seconds=clock.lap()[1])
            section["models"][name] = result
        report["cold_start"] = section
    return report


class _Clock:
    """Wall and CPU seconds (this process, all threads) since the last lap. On a machine shared with
    other jobs the wall time depends on them; the CPU time does not."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = (round(wall - self.wall, 3), round(cpu - self.cpu, 3))
        self.wall, self.cpu = wall, cpu
        return out

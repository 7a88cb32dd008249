"""Seed ensembles of the finance benchmarks: average the class probabilities that saved runs wrote.

Every run of ``bench.finance_phrasebank`` / ``bench.finance_tfns`` writes its calibrated per-row
probabilities to ``bench/results/finance_<name>_probs/<config>-<tag>.json`` (the validation carve-out,
and the test part unless ``--no-test``). Runs of several ``--seed`` values with one ``--split-seed``
hold out the same validation rows, so their probabilities can be averaged row by row. This scores
every subset of the given runs on validation, chooses the ensemble size on validation alone (the
highest mean validation macro F1 over the subsets of that size, the metric that also picks epochs;
a tie goes to fewer members), and with ``--test`` scores the test part once, for the chosen
configuration: the first ``k`` runs in the order given (give the runs in a fixed order, e.g. by seed,
before looking at any score). Runs without a validation carve-out (``--refit``: the whole training
part) are averaged at a size fixed beforehand with ``--size N``, which scores the test part alone.

Run: ``.venv/bin/python -m bench.finance_ensemble --name phrasebank --runs preset-accurate-ens-s42
preset-accurate-ens-s7 preset-accurate-ens-s1234 [--test]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.finance_common import RESULTS
from core.config import write_json_atomic
from core.metrics import classification_report


def load_part(paths: Sequence[Path], part: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """The ``part`` probabilities of each run, the true labels and the class order (checked equal)."""
    saved = [json.loads(Path(p).read_text())[part] for p in paths]
    first = saved[0]
    for path, other in zip(paths, saved, strict=True):
        if other["rows"] != first["rows"] or other["classes"] != first["classes"]:
            raise SystemExit(f"{path}: other {part} rows or classes than {paths[0]} (same --split-seed?)")
    return [np.asarray(s["probs"], dtype=np.float64) for s in saved], first["labels"], first["classes"]


def score(probs: Sequence[np.ndarray], labels: Sequence[str], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro and weighted F1 of the mean of ``probs`` (one array per member)."""
    mean = np.mean(np.stack(probs), axis=0)
    predicted = [classes[i] for i in mean.argmax(axis=1)]
    report = classification_report(list(labels), predicted, labels=list(classes))
    return {k: round(float(report[k]), 4) for k in ("accuracy", "macro_f1", "weighted_f1")}


def validation_table(probs: Sequence[np.ndarray], labels: Sequence[str], classes: Sequence[str]) -> dict:
    """Every subset's validation scores, the mean per size, and the size validation chooses."""
    subsets = {}
    for k in range(1, len(probs) + 1):
        for members in itertools.combinations(range(len(probs)), k):
            subsets[members] = score([probs[i] for i in members], labels, classes)
    sizes = {
        k: {
            metric: round(float(np.mean([s[metric] for m, s in subsets.items() if len(m) == k])), 4)
            for metric in ("accuracy", "macro_f1", "weighted_f1")
        }
        for k in range(1, len(probs) + 1)
    }
    # highest mean validation macro F1; max() keeps the first (smallest) size on a tie
    chosen = max(sizes, key=lambda k: sizes[k]["macro_f1"])
    return {"subsets": subsets, "sizes": sizes, "chosen_size": chosen}


def chosen_on_validation(name: str, runs: Sequence[str], paths: Sequence[Path], test: bool) -> dict[str, Any]:
    """The ensemble size chosen on validation (see the module doc), and its test scores if ``test``."""
    probs, labels, classes = load_part(paths, "val")
    table = validation_table(probs, labels, classes)
    chosen = table["chosen_size"]
    result: dict[str, Any] = {
        "benchmark": name,
        "runs": list(runs),
        "val_rows": len(labels),
        "rule": "size with the highest mean validation macro F1 over its subsets; the first k runs",
        "val_subsets": [{"members": [runs[i] for i in m], **s} for m, s in table["subsets"].items()],
        "val_mean_by_size": table["sizes"],
        "chosen_size": chosen,
        "chosen_runs": list(runs[:chosen]),
        "chosen_val": table["subsets"][tuple(range(chosen))],
    }
    if test:
        test_probs, test_labels, test_classes = load_part(paths[:chosen], "test")
        result["test_rows"] = len(test_labels)
        result["chosen_test"] = score(test_probs, test_labels, test_classes)
    return result


def fixed_size(name: str, runs: Sequence[str], paths: Sequence[Path], size: int) -> dict[str, Any]:
    """The test scores of the first ``size`` runs averaged (a size fixed before, no validation)."""
    if not 1 <= size <= len(runs):
        raise SystemExit(f"--size {size}: give between 1 and {len(runs)} (the number of --runs)")
    probs, labels, classes = load_part(paths[:size], "test")
    return {
        "benchmark": name,
        "runs": list(runs),
        "rule": f"fixed size {size}, the first runs given (no validation part to choose on)",
        "chosen_size": size,
        "chosen_runs": list(runs[:size]),
        "test_rows": len(labels),
        "chosen_test": score(probs, labels, classes),
        "members_test": [score([p], labels, classes) for p in probs],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="benchmark: phrasebank, tfns")
    parser.add_argument("--runs", nargs="+", required=True, help="<config>-<tag> of each member, in order")
    parser.add_argument("--test", action="store_true", help="score the chosen ensemble on the test part")
    parser.add_argument(
        "--tag",
        default=None,
        help="names the result file, finance_<name>_ensemble-<tag>.json (default: none)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=None,
        help="average the first N runs without a validation choice (runs that had no validation "
        "carve-out, e.g. --refit); scores the test part",
    )
    args = parser.parse_args()
    folder = RESULTS / f"finance_{args.name}_probs"
    paths = [folder / f"{run}.json" for run in args.runs]
    if args.size is not None:
        result = fixed_size(args.name, args.runs, paths, args.size)
    else:
        result = chosen_on_validation(args.name, args.runs, paths, args.test)
    out = RESULTS / ("-".join(filter(None, (f"finance_{args.name}_ensemble", args.tag))) + ".json")
    write_json_atomic(out, result)
    print(json.dumps({k: result[k] for k in result if k != "val_subsets"}, indent=1))


if __name__ == "__main__":
    main()

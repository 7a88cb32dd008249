"""PhraseBank errors by annotator agreement: where the 50Agree test sentences are got wrong.

Financial PhraseBank ships each sentence in the files of the agreement levels it reaches
(``Sentences_50Agree`` … ``Sentences_AllAgree``: more than 50 %, 66 %, 75 % and all of the 5–8
annotators of the sentence, out of 16 in all, agreeing with its label). Every test sentence of the
benchmark's split (``bench.finance_phrasebank``) gets its highest level as a tier: 50–65 %, 66–74 %,
75–99 % or 100 %. The saved test probabilities of the given runs
(``bench/results/finance_phrasebank_probs/<run>.json``) are averaged as ``bench.finance_ensemble``
does, and scored per tier, with the weighted F1 the whole test part would reach if the sentences of
one tier were all right (how much of the gap to a target each tier holds).

Run: ``.venv/bin/python -m bench.finance_agreement --runs preset-accurate-ens-s42 ... [--tag all5]``;
writes ``bench/results/finance_phrasebank_agreement[-<tag>].json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.finance_common import DATA, RESULTS
from bench.finance_ensemble import load_part
from core.config import write_json_atomic
from core.metrics import classification_report

logger = logging.getLogger(__name__)

#: (file suffix, tier label), lowest agreement first; a sentence's tier is the last file that has it.
TIERS: tuple[tuple[str, str], ...] = (
    ("50Agree", "50-65%"),
    ("66Agree", "66-74%"),
    ("75Agree", "75-99%"),
    ("AllAgree", "100%"),
)


#: A label confidence per tier for ``--agreement-confidence`` training: the middle of the tier's range
#: of annotator shares (fixed before any run with it).
TIER_CONFIDENCE: dict[str, float] = {"50-65%": 0.58, "66-74%": 0.70, "75-99%": 0.87, "100%": 1.0}


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def agreement_tiers() -> dict[str, str]:
    """``{normalised sentence: tier label}`` from the four PhraseBank files."""
    from apps.finance_monitor.datasets import load_labelled

    tiers: dict[str, str] = {}
    for suffix, label in TIERS:
        data = load_labelled(DATA / "financial_phrasebank" / f"Sentences_{suffix}.txt", dedup="none")
        tiers.update({_key(t): label for t in data.texts})
    return tiers


def with_agreement_confidence(data: Any) -> Any:
    """``data`` (PhraseBank ``LabelledData``) with each row's confidence from its agreement tier.

    Raises:
        SystemExit: A sentence is in none of the four files.
    """
    from dataclasses import replace

    tiers = agreement_tiers()
    missing = [t for t in data.texts if _key(t) not in tiers]
    if missing:
        raise SystemExit(f"{len(missing)} training sentences have no agreement tier, e.g. {missing[0]!r}")
    return replace(data, confidence=[TIER_CONFIDENCE[tiers[_key(t)]] for t in data.texts])


def by_tier(
    labels: Sequence[str], predicted: Sequence[str], tiers: Sequence[str], classes: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Rows, accuracy and errors per tier, and the weighted F1 with that tier's rows all right."""
    out: dict[str, dict[str, Any]] = {}
    for _, tier in TIERS:
        rows = [i for i, t in enumerate(tiers) if t == tier]
        right = sum(predicted[i] == labels[i] for i in rows)
        fixed = [labels[i] if tiers[i] == tier else p for i, p in enumerate(predicted)]
        out[tier] = {
            "rows": len(rows),
            "accuracy": round(right / len(rows), 4) if rows else None,
            "errors": len(rows) - right,
            "weighted_f1_if_all_right": round(
                float(classification_report(list(labels), fixed, labels=list(classes))["weighted_f1"]), 4
            ),
        }
    return out


def plot(result: Mapping[str, Any], path: Any) -> None:
    """Accuracy per tier (bars, with row counts) and the share of all errors each tier holds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiers = list(result["tiers"])
    acc = [result["tiers"][t]["accuracy"] or 0 for t in tiers]
    errors = [result["tiers"][t]["errors"] for t in tiers]
    total = max(sum(errors), 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bars = left.bar(tiers, acc, color="#4C72B0")
    for bar, t in zip(bars, tiers, strict=True):
        left.annotate(
            f"n={result['tiers'][t]['rows']}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    left.set_ylim(0, 1.05)
    left.set_xlabel("annotators agreeing with the label")
    left.set_ylabel("test accuracy")
    left.set_title(f"accuracy by agreement ({len(result['runs'])} runs averaged)")
    right.bar(tiers, [e / total for e in errors], color="#C44E52")
    right.set_xlabel("annotators agreeing with the label")
    right.set_ylabel("share of all test errors")
    right.set_title(f"where the {total} errors are (weighted F1 {result['weighted_f1']:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="<config>-<tag> of each saved run")
    parser.add_argument("--tag", default=None, help="names the result files")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"real data not found at {DATA}; this benchmark needs ../shared/data/finance")
    from bench.finance_phrasebank import load

    _, test, _ = load()
    folder = RESULTS / "finance_phrasebank_probs"
    probs, labels, classes = load_part([folder / f"{r}.json" for r in args.runs], "test")
    if len(labels) != len(test.texts):
        raise SystemExit(f"the saved test part has {len(labels)} rows, the split {len(test.texts)}")
    known = agreement_tiers()
    tiers = [known[_key(t)] for t in test.texts]
    predicted = [classes[i] for i in np.mean(np.stack(probs), axis=0).argmax(axis=1)]
    report = classification_report(list(labels), predicted, labels=list(classes))
    result = {
        "benchmark": "phrasebank",
        "runs": args.runs,
        "test_rows": len(labels),
        "weighted_f1": round(float(report["weighted_f1"]), 4),
        "tiers": by_tier(labels, predicted, tiers, classes),
    }
    stem = "-".join(filter(None, ("finance_phrasebank_agreement", args.tag)))
    write_json_atomic(RESULTS / f"{stem}.json", result)
    plot(result, RESULTS / f"{stem}.png")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

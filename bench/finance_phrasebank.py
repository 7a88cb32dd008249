"""Financial PhraseBank 50Agree, de-duplicated, random 75/25 split (seed 42): weighted F1 (target 0.88).

Run: ``.venv/bin/python -m bench.finance_phrasebank [--threads 1] [--config lora-all]``.
"""

from __future__ import annotations

import numpy as np

from bench.finance_common import DATA, run


def load():
    """De-duplicated 50Agree (conflicting texts dropped), shuffled with seed 42, 75 % train / 25 % test."""
    from apps.finance_monitor.datasets import load_labelled

    data = load_labelled(DATA / "financial_phrasebank" / "Sentences_50Agree.txt", dedup="text")
    order = np.random.default_rng(42).permutation(len(data)).tolist()
    cut = int(round(len(data) * 0.75))

    protocol = {
        "file": "Sentences_50Agree.txt",
        "rows_after_dedup": len(data),
        "duplicates_removed": data.duplicates_removed,
        "conflicting_rows_removed": data.conflicts_removed,
        "split": "numpy default_rng(42) permutation, first 75% train, rest test",
        "note": "FinGPT uses HF Dataset.train_test_split(seed=42); same proportions, not the same rows",
    }
    return data.subset(order[:cut]), data.subset(order[cut:]), protocol


if __name__ == "__main__":
    run("phrasebank", __doc__, load, ("weighted_f1", 0.88))

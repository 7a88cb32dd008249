"""The hybrid's served lists against a golden file written by the per-user implementation.

``data/hybrid_golden.parquet`` holds what the hybrid returned on the shipped sample catalogue
(seeded random item vectors, so no encoder is involved) when every user's list was merged, filled
and explained one user at a time (the code of commit 7bcca4e). The vectorised implementation must
return the same items, cold slots, most similar history items, scores and reasons.

Regenerate only when the model itself is meant to change (features, candidates, ranker)::

    PYTHONPATH=. python -m tests.apps.recommender.test_hybrid_golden
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.recommender.config import CandidateConfig, RankerConfig
from apps.recommender.hybrid import HybridScorer
from apps.recommender.scorer import top_k
from apps.recommender.splits import cold_start_split

GOLDEN = Path(__file__).parent / "data" / "hybrid_golden.parquet"
SAMPLE_DIR = Path(__file__).resolve().parents[3] / "apps" / "recommender" / "sample_data"
K = 30
# The ranker settings the golden file was written with: the defaults of that commit. They are
# pinned (candidate counts text 100, CF 100, EASE 100, EASE source l2 200; the defaults are 200, 50,
# 200 since round 4 and l2 50 since round 6) because the file records the per-user implementation's
# output, which cannot be regenerated from the current code; the check is that the vectorised code
# serves the same lists for the same settings.
GOLDEN_CONFIG = RankerConfig(candidates=CandidateConfig(n_text=100, n_cf=100, n_ease=100), ease_l2=200.0)
# Few candidates per source: lists run out of ranked items and are filled with popular ones.
FEW = RankerConfig(candidates=CandidateConfig(n_text=8, n_cf=8, n_popular=4, n_ease=8), ease_l2=200.0)
NUMBER = re.compile(r"[-+]?\d+\.\d\d")


def golden_frames(dataset) -> pd.DataFrame:
    """The lists the golden file records.

    ``default`` is fit on the whole sample; ``cold`` and ``few_candidates`` on the training part of
    the cold-start split, where the newest items have no interactions yet (reserved cold slots);
    ``full_scores`` is the full-ranking score of ``few_candidates`` (the evaluation path).
    """
    vectors = np.random.default_rng(0).standard_normal((dataset.n_items, 32)).astype(np.float32)
    cold_train = cold_start_split(dataset).train
    users = [str(u) for u in dataset.user_ids]
    frames = []
    for case, train, config, chosen in (
        ("default", dataset, GOLDEN_CONFIG, [*users[:100], "nobody", users[3]]),
        ("cold", cold_train, GOLDEN_CONFIG, [*users[100:200], "nobody"]),
        ("few_candidates", cold_train, FEW, [*users[200:280], "nobody"]),
    ):
        scorer = HybridScorer(vectors, config).fit(train)
        frames.append(scorer.recommend_with_reasons(chosen, k=K).assign(case=case))
    items, values = top_k(scorer.score(users[:40]), 60)
    frames.append(
        pd.DataFrame(
            {
                "case": "full_scores",
                "user_id": np.repeat(users[:40], items.shape[1]),
                "rank": np.tile(np.arange(1, items.shape[1] + 1), 40),
                "item_id": dataset.item_ids[items.ravel()],
                "score": values.ravel().astype(np.float64),
            }
        )
    )
    return pd.concat(frames, ignore_index=True)


def _split_reasons(reasons: pd.Series) -> tuple[pd.Series, list[list[float]]]:
    text = reasons.fillna("").str.replace(NUMBER, "#", regex=True)
    numbers = [[float(x) for x in NUMBER.findall(r)] for r in reasons.fillna("")]
    return text, numbers


def test_served_lists_equal_the_per_user_implementation(sample_dataset):
    if not GOLDEN.is_file():
        pytest.fail(f"{GOLDEN} is missing; see this module's docstring")
    expected = pd.read_parquet(GOLDEN)
    found = golden_frames(sample_dataset)
    assert len(found) == len(expected)
    for column in ("case", "user_id", "rank", "item_id", "similar_item_id", "cold_slot"):
        left = found[column].astype(object).where(found[column].notna(), None).tolist()
        right = expected[column].astype(object).where(expected[column].notna(), None).tolist()
        assert left == right, column
    np.testing.assert_allclose(found["score"], expected["score"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(found["similar_score"], expected["similar_score"], rtol=0, atol=1e-5)
    # Reasons: the same words; their two-decimal numbers may differ in the last digit only where
    # a value sits on a rounding boundary and BLAS summed in another order.
    text, numbers = _split_reasons(found["reason"])
    expected_text, expected_numbers = _split_reasons(expected["reason"])
    assert text.tolist() == expected_text.tolist()
    flat = np.array([x for row in numbers for x in row])
    expected_flat = np.array([x for row in expected_numbers for x in row])
    np.testing.assert_allclose(flat, expected_flat, rtol=0, atol=0.0101)
    identical = (found["reason"].fillna("") == expected["reason"].fillna("")).mean()
    assert identical > 0.999


if __name__ == "__main__":
    from apps.recommender.public_datasets import load_folder

    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    golden_frames(load_folder(SAMPLE_DIR)).to_parquet(GOLDEN, index=False, compression="zstd")
    print(f"wrote {GOLDEN}")

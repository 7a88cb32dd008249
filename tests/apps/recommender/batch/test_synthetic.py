"""The synthetic catalogue: clustered vectors, a saved calibrated index, job-time calibration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from apps.recommender.batch.job import run_batch
from apps.recommender.batch.scorers import parse_synthetic
from apps.recommender.batch.synthetic import SyntheticCatalogue
from apps.recommender.config import BatchConfig

CLUSTERED = SyntheticCatalogue(n_items=3000, n_users=40, dim=16, history=10, clusters=30)


def test_clustered_items_sit_near_their_centre_and_users_like_two_clusters():
    scorer = CLUSTERED()
    members, bounds = scorer._members, scorer._bounds
    first = scorer.vectors[members[bounds[0] : bounds[1]]]
    other = scorer.vectors[members[bounds[1] : bounds[2]]]
    assert (first @ first.T).mean() > 0.4 > 0.1 > abs((first @ other.T).mean())
    cluster_of = np.empty(CLUSTERED.n_items, dtype=np.int64)
    for c in range(CLUSTERED.clusters):
        cluster_of[members[bounds[c] : bounds[c + 1]]] = c
    for user in scorer.user_ids()[:10]:
        history = scorer.history(user)
        assert len(set(history.tolist())) == 10 and len(set(cluster_of[history].tolist())) <= 2
    again = CLUSTERED()
    np.testing.assert_array_equal(again.vectors, scorer.vectors)
    assert again.history("u000003").tolist() == scorer.history("u000003").tolist()
    # The uniform catalogue is unchanged by the clustered option (same seed streams as before).
    plain = SyntheticCatalogue(n_items=500, n_users=5, dim=8, history=4)()
    rng = np.random.default_rng([0, 2, 1])
    assert plain.history("u000001").tolist() == rng.choice(500, 4, replace=False).tolist()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_a_saved_calibrated_index_serves_the_job_and_recalibrates_for_a_larger_k(tmp_path, kind):
    spec = dataclasses.replace(CLUSTERED, index=kind)
    path = spec.build_index(tmp_path / "index", k=30)
    saved = dataclasses.replace(spec, index_dir=str(path))
    scorer = saved()
    assert scorer.index.kind == kind and scorer.index.calibration.k == 40
    assert scorer.index.calibration.recall >= 0.95
    config = BatchConfig(k=30, chunk_size=16)
    run_batch(saved, tmp_path / "approx.parquet", config=config, show_progress_bar=False)
    flat = dataclasses.replace(CLUSTERED, index="flat")
    run_batch(flat, tmp_path / "exact.parquet", config=config, show_progress_bar=False)
    approx, exact = pd.read_parquet(tmp_path / "approx.parquet"), pd.read_parquet(tmp_path / "exact.parquet")
    found, truth = (
        approx.groupby("user_id")["item_id"].apply(set),
        exact.groupby("user_id")["item_id"].apply(set),
    )
    assert np.mean([len(found[u] & truth[u]) / len(truth[u]) for u in truth.index]) >= 0.9
    # A job asking for longer lists tunes the index again before its first chunk.
    scorer.recommend_chunk(["u000001"], 60)
    assert scorer.index.calibration.k == 70
    assert parse_synthetic(
        f"synthetic:items=3000,clusters=30,index={kind},index_dir={path}"
    ).index_dir == str(path)
    with pytest.raises(ValueError, match="spread > 0"):
        SyntheticCatalogue(spread=0)

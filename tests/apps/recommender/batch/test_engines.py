"""The Ray engine on a local Ray instance started here: the same output as the local engine."""

from __future__ import annotations

import pytest

from apps.recommender.batch.job import run_batch
from apps.recommender.batch.synthetic import SyntheticCatalogue
from apps.recommender.config import BatchConfig
from tests.apps.recommender.sample_model import saved_sample_model

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "ray[data]")')


@pytest.fixture(scope="module")
def local_ray():
    """A local two-CPU Ray instance for this module (the engine uses it and leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2)
    yield
    ray.shutdown()


def test_ray_output_is_byte_identical_to_local_on_the_sample_model(
    local_ray, tmp_path, tmp_path_factory, sample_dataset, sample_minilm_vectors
):
    from apps.recommender.model import ModelLoader

    model = ModelLoader(
        saved_sample_model(tmp_path_factory.mktemp("rec-ray"), sample_dataset, sample_minilm_vectors)
    )
    users = [*sample_dataset.user_ids[:57].tolist(), "unknown-user"]
    local = run_batch(
        model, tmp_path / "local.csv", users, BatchConfig(k=25, chunk_size=10), show_progress_bar=False
    )
    remote = run_batch(
        model,
        tmp_path / "ray.csv",
        users,
        BatchConfig(k=25, chunk_size=10, engine="ray"),
        show_progress_bar=False,
    )
    assert (local.n_rows, remote.n_rows) == (58 * 25, 58 * 25) and remote.n_chunks == 6
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "ray.csv").read_bytes()


def test_ray_resumes_a_local_run_and_matches_it(local_ray, tmp_path):
    spec = SyntheticCatalogue(n_items=3000, n_users=120, dim=16, history=10)
    run_batch(
        spec, tmp_path / "local.parquet", config=BatchConfig(k=30, chunk_size=20), show_progress_bar=False
    )
    # Chunks 0-2 scored locally and kept, as if the job had been killed; Ray scores the other three.
    out = tmp_path / "mixed.parquet"
    run_batch(spec, out, config=BatchConfig(k=30, chunk_size=20, keep_work_dir=True), show_progress_bar=False)
    out.unlink()
    for i in range(3, 6):
        (tmp_path / "mixed.parquet.work" / f"chunk-{i:06d}.parquet").unlink()
    result = run_batch(
        spec,
        out,
        config=BatchConfig(k=30, chunk_size=20, engine="ray", ray_workers=2),
        show_progress_bar=False,
    )
    assert (result.chunks_resumed, result.chunks_scored) == (3, 3)
    assert out.read_bytes() == (tmp_path / "local.parquet").read_bytes()

"""`aigc demo` for the recommender: model, batch output and evaluation from the sample; idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from apps.recommender.demo import DEMO_K, demo_dir, is_current, prepare
from apps.recommender.model import ModelLoader
from apps.recommender.storage import latest_run, recommendations
from core.storage import create_engine


@pytest.mark.slow
def test_prepare_builds_demo_state_once(tmp_path: Path):
    prepare(tmp_path)
    root = demo_dir(tmp_path)
    recs = pd.read_parquet(root / "recommendations.parquet")
    assert recs["user_id"].nunique() == 400 and recs.groupby("user_id").size().eq(DEMO_K).all()
    report = json.loads((root / "eval.json").read_text())
    assert set(report["models"]) == {"popularity", "itemknn", "text", "hybrid"}
    assert report["models"]["hybrid"]["ndcg@10"] > report["models"]["popularity"]["ndcg@10"]
    assert is_current(tmp_path)
    stamp = (root / "model" / "manifest.json").stat().st_mtime_ns
    prepare(tmp_path)  # nothing changed: nothing rebuilt
    assert (root / "model" / "manifest.json").stat().st_mtime_ns == stamp
    # The batch run is in the database too (the API serves it); a new database gets it again.
    for fresh in (False, True):
        if fresh:
            for db_file in tmp_path.glob("aigc.db*"):
                db_file.unlink()
            prepare(tmp_path)
            assert (root / "model" / "manifest.json").stat().st_mtime_ns == stamp
        engine = create_engine(f"sqlite:///{tmp_path / 'aigc.db'}")
        run = latest_run(engine, ModelLoader(root / "model").fingerprint())
        assert run is not None and run[1] == DEMO_K
        assert len(recommendations(engine, run[0])) == 400 * DEMO_K
        engine.dispose()
    (root / "eval.json").unlink()
    assert not is_current(tmp_path)

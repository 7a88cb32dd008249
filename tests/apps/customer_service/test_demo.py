"""`prepare()` builds the calibrated sample KB once and is a cheap no-op afterwards."""

from __future__ import annotations

import os
import time
from pathlib import Path

from apps.customer_service.confidence import CALIBRATION_FILE, Calibration
from apps.customer_service.demo import demo_kb_dir, is_current, prepare
from apps.customer_service.knowledge_base import MANIFEST_FILE, KnowledgeBase


def test_prepare_builds_once_then_skips():
    data_dir = Path(os.environ["AIGC_DATA_DIR"])
    prepare(data_dir)
    kb_dir = demo_kb_dir(data_dir)
    assert len(KnowledgeBase.load(kb_dir)) > 40
    assert Calibration.load(kb_dir).fitted
    assert is_current(kb_dir)
    stamp = (kb_dir / MANIFEST_FILE).stat().st_mtime_ns
    start = time.perf_counter()
    prepare(data_dir)
    assert time.perf_counter() - start < 2.0
    assert (kb_dir / MANIFEST_FILE).stat().st_mtime_ns == stamp
    (kb_dir / CALIBRATION_FILE).unlink()  # stale: no calibration -> rebuilt (incrementally) and recalibrated
    assert not is_current(kb_dir)
    prepare(data_dir)
    assert is_current(kb_dir) and KnowledgeBase.load(kb_dir).last_build.embedded == 0

"""Demo state of the support bot: the shipped sample KB, indexed and calibrated (``aigc demo``).

:func:`prepare` is idempotent and cheap when nothing changed: it reads the sample files (no
embedding), compares their entry hashes with the KB's manifest, and rebuilds (incrementally) only
when the KB is missing, stale, built with another encoder, or lacks its calibration.
"""

from __future__ import annotations

import logging
from pathlib import Path

from apps.customer_service.confidence import CALIBRATION_FILE, calibrate_kb
from apps.customer_service.config import KBConfig
from apps.customer_service.errors import KBFormatError
from apps.customer_service.knowledge_base import KnowledgeBase, read_manifest
from apps.customer_service.sources import load_sources
from core.models import resolve

logger = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent / "sample_data"
SAMPLE_SOURCES = (SAMPLE_DIR / "faq.csv", SAMPLE_DIR / "policies")
QUERIES = SAMPLE_DIR / "queries.csv"
OUT_OF_SCOPE = SAMPLE_DIR / "out_of_scope.csv"


def demo_kb_dir(data_dir: Path) -> Path:
    """Where the demo KB lives: ``data_dir/support/kb`` (the default ``--kb-dir``)."""
    return Path(data_dir) / "support" / "kb"


def is_current(kb_dir: Path, config: KBConfig | None = None) -> bool:
    """Whether ``kb_dir`` holds exactly the sample entries, built with the configured encoder, calibrated."""
    config = config or KBConfig()
    try:
        manifest = read_manifest(kb_dir)
    except (FileNotFoundError, KBFormatError):
        return False
    entries = load_sources(list(SAMPLE_SOURCES), config.chunking)
    same_entries = manifest["hashes"] == {e.id: e.content_hash for e in entries}
    same_model = manifest["embedding_model"] in (config.embedding_model, _model_id(config.embedding_model))
    return same_entries and same_model and (kb_dir / CALIBRATION_FILE).is_file()


def _model_id(spec: str) -> str:
    try:
        return resolve(spec).id
    except Exception:  # noqa: BLE001 - an unresolvable spec just never matches
        return spec


def prepare(data_dir: Path) -> None:
    """Build (or refresh) the sample KB at ``data_dir/support/kb`` and calibrate its answer gate.

    Args:
        data_dir: The suite's data directory.
    """
    kb_dir = demo_kb_dir(data_dir)
    if is_current(kb_dir):
        logger.info("Support demo KB is current", extra={"path": str(kb_dir)})
        return
    kb = KnowledgeBase.build(list(SAMPLE_SOURCES), kb_dir)
    calibration = calibrate_kb(kb_dir, QUERIES, OUT_OF_SCOPE)
    logger.info(
        "Prepared support demo KB",
        extra={"path": str(kb_dir), "entries": len(kb), "handoff_threshold": calibration.handoff_threshold},
    )


__all__ = ["OUT_OF_SCOPE", "QUERIES", "SAMPLE_DIR", "SAMPLE_SOURCES", "demo_kb_dir", "is_current", "prepare"]

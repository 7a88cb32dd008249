"""Where the suite keeps its data, caches and runs.

Everything lives under one root so a demo or a test can be pointed elsewhere with one
environment variable:

* ``AIGC_HOME`` — root (default ``~/.aigc``);
* ``AIGC_DATA_DIR`` — databases, knowledge bases, demo artifacts (default ``$AIGC_HOME/data``);
* ``AIGC_CACHE_DIR`` — materialised model weights (default ``$AIGC_HOME/cache``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """Root directory of the suite's state."""
    return Path(os.environ.get("AIGC_HOME", Path.home() / ".aigc")).expanduser()


def data_dir() -> Path:
    """Directory for databases, knowledge bases and demo artifacts (created on demand)."""
    path = Path(os.environ.get("AIGC_DATA_DIR", home_dir() / "data")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """Directory for materialised model weights (created on demand)."""
    path = Path(os.environ.get("AIGC_CACHE_DIR", home_dir() / "cache")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def project_root() -> Path:
    """The source checkout (where ``configs/`` and ``data/`` sample files live)."""
    return Path(__file__).resolve().parent.parent

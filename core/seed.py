"""One function that makes a run reproducible."""

from __future__ import annotations

import os
import random

DEFAULT_SEED = 42


def set_seed(seed: int = DEFAULT_SEED, deterministic: bool = False) -> int:
    """Seed Python, NumPy and torch (CPU and CUDA).

    Args:
        seed: The seed.
        deterministic: Also ask torch for deterministic kernels (slower; off by default).

    Returns:
        The seed, so callers can record it with their artifacts.
    """
    import numpy as np
    import torch  # imported here: DEFAULT_SEED serves settings that load no model

    random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return seed

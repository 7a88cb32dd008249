"""Which base model a saved LoRA adapter belongs to (read by every backend and by GGUF export).

A causal-LM adapter directory holds peft's files plus ``aigc_adapter.json``, the suite's manifest
written by :mod:`core.finetune.causal_lm`, which names the base model.
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_MANIFEST = "aigc_adapter.json"


def adapter_base_model(adapter_dir: str | Path) -> str:
    """The base model an adapter directory was trained on.

    Reads ``aigc_adapter.json`` (key ``base_model``) and falls back to peft's ``adapter_config.json``
    (``base_model_name_or_path``).

    Raises:
        FileNotFoundError: if ``adapter_dir`` has no ``adapter_config.json``.
        ValueError: if neither file names a base model.
    """
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: '{adapter_dir}' is not a peft adapter directory.")
    manifest_path = adapter_dir / ADAPTER_MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        base = manifest.get("base_model") or manifest.get("base_model_name_or_path")
        if base:
            return str(base)
    base = json.loads(config_path.read_text()).get("base_model_name_or_path")
    if not base:
        raise ValueError(
            f"No base model recorded in {manifest_path} ('base_model') or {config_path} "
            "('base_model_name_or_path'); pass model= explicitly."
        )
    return str(base)


__all__ = ["ADAPTER_MANIFEST", "adapter_base_model"]

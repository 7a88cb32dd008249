"""Numeric precision of model weights and compute: fp32, or bf16 where the CPU runs it fast.

bf16 halves the bytes per weight and, on CPUs with bf16 dot-product instructions (AVX512-BF16 or
AMX, which oneDNN uses), runs matrix products about twice as fast as fp32. ``auto`` picks bf16 only
there, so results stay exact fp32 on CPUs where bf16 would be emulated (and slower).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # the settings types serve configs that load no model
    import torch

Precision = Literal["auto", "fp32", "bf16"]
#: Inference-only settings of a merged classifier: a float precision, or ``int8`` (see :func:`quantize_int8`).
InferencePrecision = Literal["auto", "fp32", "bf16", "int8"]


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX) that oneDNN uses."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    import torch

    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in flags or "amx_bf16" in flags)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Weight dtype for ``precision`` on ``device`` (``auto``: bf16 on a CPU with fast bf16, else fp32)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    import torch

    if precision == "bf16" or (precision == "auto" and device.type == "cpu" and cpu_has_fast_bf16()):
        return torch.bfloat16
    return torch.float32


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every ``nn.Linear`` dynamically quantised to int8 (CPU inference only).

    Weights are stored as int8 per output channel; activations are quantised per call from their
    range, so no calibration data is needed. On a CPU with AVX512-VNNI this costs about half the
    CPU time of fp32, but it changes some predictions (docs/benchmarks/finance.md): an opt-in.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantisation warns that torchao replaces it
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(module, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


__all__ = ["InferencePrecision", "Precision", "cpu_has_fast_bf16", "quantize_int8", "resolve_precision"]

"""Write GGUF files for llama.cpp: LoRA adapters from peft, and F16 copies of quantised models.

:func:`export_lora_to_gguf` turns a peft LoRA adapter into a GGUF LoRA adapter that llama.cpp applies
on top of the quantised base weights, so a fine-tuned model runs on the same fast path as the base
model. It follows llama.cpp's ``convert_lora_to_gguf.py`` and is checked to be exact: llama.cpp on an
F32 copy of the base model with the exported adapter gives the logits of the torch model with the
adapter merged (to 1e-4).

:func:`dense_companion` writes a de-quantised (F32 or F16) copy of a quantised GGUF model, used by
:class:`core.generation.llamacpp.LlamaCppGenerator` to evaluate prompts quickly.

Only ``gguf``, ``numpy`` and ``safetensors`` are needed here, not llama.cpp itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.atomic import atomic_path
from core.generation.adapters import adapter_base_model
from core.models import file_cache_key, resolve
from core.paths import cache_dir

logger = logging.getLogger(__name__)

GGUF_ADAPTER_FILE = "adapter.gguf"
# peft saves module names under this prefix; the rest is the HF module path of the base model.
_PEFT_PREFIX = "base_model.model."
# llama.cpp's converter permutes q/k rows of Llama-architecture checkpoints for its rope layout.
_PERMUTED = {"attn_q": "head_count", "attn_k": "head_count_kv"}
# peft features whose weights a plain GGUF LoRA adapter cannot express.
_UNSUPPORTED = {
    "use_dora": "DoRA",
    "lora_bias": "LoRA bias",
    "modules_to_save": "modules_to_save",
    "trainable_token_indices": "trainable tokens",
    "layer_replication": "layer replication",
}


def gguf_path_of(spec: str) -> Path:
    """The GGUF file a model spec resolves to.

    Raises:
        ValueError: if the spec resolves to a model without a GGUF file.
    """
    resolved = resolve(spec)
    if resolved.gguf_file is None:
        raise ValueError(
            f"Model '{spec}' has no GGUF file; the llama.cpp backend needs one (a .gguf file, a directory "
            "holding one, or a packaged GGUF model such as 'smollm2-135m-instruct')."
        )
    return Path(resolved.path) / resolved.gguf_file


def _permute_rows(weight: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder output rows like llama.cpp's ``LlamaModel.permute`` (HF rotate-half -> interleaved rope)."""
    return (
        weight.reshape(n_head, 2, weight.shape[0] // n_head // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _read_base_header(base_gguf: Path) -> dict[str, Any]:
    import gguf

    reader = gguf.GGUFReader(base_gguf)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("tok")}
    arch = fields.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"{base_gguf}: LoRA export supports the 'llama' GGUF architecture, not {arch!r}.")
    return {
        "arch": arch,
        "n_blocks": int(fields["llama.block_count"]),
        "head_count": int(fields["llama.attention.head_count"]),
        "head_count_kv": int(
            fields.get("llama.attention.head_count_kv", fields["llama.attention.head_count"])
        ),
        "tensors": {t.name: tuple(int(d) for d in t.shape) for t in reader.tensors},
    }


def _lora_scaling(config: dict[str, Any], module: str, rank: int) -> float:
    """peft's scale of one module: ``alpha / r`` (``alpha / sqrt(r)`` with rsLoRA), with alpha_pattern."""
    from peft.utils.other import get_pattern_key

    alpha_pattern = config.get("alpha_pattern") or {}
    alpha = alpha_pattern.get(get_pattern_key(list(alpha_pattern), module), config["lora_alpha"])
    return float(alpha) / (rank**0.5 if config.get("use_rslora") else rank)


def export_lora_to_gguf(adapter_dir: str | Path, out_path: str | Path, base_model: str | None = None) -> Path:
    """Write a peft LoRA adapter as a GGUF LoRA adapter for llama.cpp.

    Follows llama.cpp's ``convert_lora_to_gguf.py``: ``general.type = adapter``, ``adapter.type = lora``,
    tensors ``blk.N.<name>.weight.lora_a`` (``[r, in]``) and ``.lora_b`` (``[out, r]``) in float32. Two
    differences make every peft variant exact: peft's per-module scale (``lora_alpha / r``, rsLoRA,
    ``alpha_pattern``) is folded into ``lora_b`` and ``adapter.lora.alpha`` is 0, which llama.cpp reads as
    "scale 1"; and ``lora_b`` of q/k projections is row-permuted like the base GGUF's q/k weights.

    Args:
        adapter_dir: A peft adapter directory (``adapter_config.json`` + ``adapter_model.safetensors``).
        out_path: The ``.gguf`` file to write (atomically).
        base_model: The base model spec, which must resolve to a GGUF file; defaults to the base model
            recorded in the adapter (see :func:`core.generation.adapters.adapter_base_model`).

    Returns:
        ``out_path``.

    Raises:
        FileNotFoundError: if the adapter files are missing.
        ValueError: for a non-LoRA adapter, features GGUF adapters cannot hold (DoRA, bias, modules_to_save,
            ...), a module with no llama.cpp counterpart, or shapes that do not fit the base model.
    """
    import gguf
    from safetensors.numpy import load_file

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    weights_path, config_path = adapter_dir / "adapter_model.safetensors", adapter_dir / "adapter_config.json"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: '{adapter_dir}' is not a saved peft adapter.")
    config = json.loads(config_path.read_text())
    if config.get("peft_type") != "LORA":
        raise ValueError(
            f"{adapter_dir}/adapter_config.json: peft_type is {config.get('peft_type')!r}, not LORA."
        )
    used = [label for key, label in _UNSUPPORTED.items() if config.get(key)]
    if used:
        raise ValueError(
            f"{adapter_dir}: GGUF LoRA adapters cannot express {', '.join(used)}; merge instead."
        )
    base_gguf = gguf_path_of(base_model or adapter_base_model(adapter_dir))
    header = _read_base_header(base_gguf)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, header["n_blocks"])

    state = load_file(str(weights_path))
    unknown = sorted(k for k in state if not k.endswith((".lora_A.weight", ".lora_B.weight")))
    if unknown:
        raise ValueError(f"{weights_path}: tensors a GGUF LoRA adapter cannot hold: {unknown[:3]}")
    writer_tensors: list[tuple[str, np.ndarray]] = []
    for key in sorted(k for k in state if k.endswith(".lora_A.weight")):
        module = key.removesuffix(".lora_A.weight").removeprefix(_PEFT_PREFIX)
        lora_a = state[key].astype(np.float32)
        if key.replace(".lora_A.", ".lora_B.") not in state:
            raise ValueError(f"{weights_path}: '{module}' has lora_A but no lora_B.")
        lora_b = state[key.replace(".lora_A.", ".lora_B.")].astype(np.float32)
        target = names.get_name(module)
        if target is None or f"{target}.weight" not in header["tensors"]:
            raise ValueError(f"{weights_path}: module '{module}' has no tensor in {base_gguf.name}.")
        in_dim, out_dim = header["tensors"][f"{target}.weight"]  # GGUF shapes are [in, out]
        if lora_a.shape[1] != in_dim or lora_b.shape[0] != out_dim:
            raise ValueError(
                f"{weights_path}: '{module}' has shape {lora_b.shape[0]}x{lora_a.shape[1]}, but "
                f"{target}.weight in {base_gguf.name} is {out_dim}x{in_dim}: wrong base model?"
            )
        lora_b = lora_b * _lora_scaling(config, module, lora_a.shape[0])
        kind = target.rsplit(".", 1)[-1]
        if kind in _PERMUTED:
            lora_b = _permute_rows(lora_b, header[_PERMUTED[kind]])
        writer_tensors += [(f"{target}.weight.lora_a", lora_a), (f"{target}.weight.lora_b", lora_b)]
    if not writer_tensors or len(writer_tensors) != len(state):
        raise ValueError(f"{weights_path}: expected matching lora_A/lora_B pairs.")

    fields = [
        ("general.type", gguf.GGUFType.ADAPTER, gguf.GGUFValueType.STRING, None),
        (gguf.Keys.Adapter.TYPE, "lora", gguf.GGUFValueType.STRING, None),
        # 0 tells llama.cpp to apply lora_b as it is: peft's scale is already folded in.
        (gguf.Keys.Adapter.LORA_ALPHA, 0.0, gguf.GGUFValueType.FLOAT32, None),
        ("general.name", adapter_dir.name, gguf.GGUFValueType.STRING, None),
    ]

    def add_tensors(writer: Any) -> None:
        for name, tensor in writer_tensors:
            writer.add_tensor(name, np.ascontiguousarray(tensor))

    _write_gguf(out_path, header["arch"], fields, add_tensors)
    logger.info("Exported LoRA adapter to GGUF", extra={"adapter": str(adapter_dir), "gguf": str(out_path)})
    return out_path


def gguf_adapter_for(adapter_dir: str | Path) -> Path:
    """The GGUF export beside a peft adapter (``adapter.gguf``), written or refreshed when stale."""
    adapter_dir = Path(adapter_dir)
    out = adapter_dir / GGUF_ADAPTER_FILE
    weights = adapter_dir / "adapter_model.safetensors"
    if not out.is_file() or (weights.is_file() and out.stat().st_mtime < weights.stat().st_mtime):
        export_lora_to_gguf(adapter_dir, out)
    return out


# llama.cpp's general.file_type codes for the types a companion can have (dense, or re-quantised).
_DENSE_TYPES: dict[str, tuple[Any, int]] = {"F32": (np.float32, 0), "F16": (np.float16, 1)}
_QUANT_TYPES: dict[str, int] = {"Q8_0": 7, "Q4_0": 2}
CompanionType = Literal["F32", "F16", "Q8_0", "Q4_0"]


def dense_companion(gguf_path: str | Path, dtype: CompanionType = "F32") -> Path:
    """A de-quantised copy of a quantised GGUF model, written once to the cache (the fast-prefill weights).

    llama.cpp evaluates a 512-token prompt 3x (F32) or 2x (F16) as fast from dense weights as from Q4_1
    ones on this CPU, while single-token decoding is fastest on Q4_1. Every quantised matrix is
    de-quantised, the token embedding (the LM head of tied models) included. F32 is exact: its logits
    are those of the de-quantised torch model, so the first generated token is the torch path's. F16 is
    half the size and nearly as close.

    ``"Q8_0"`` and ``"Q4_0"`` re-quantise the de-quantised weights instead (llama.cpp repacks these types
    into its interleaved CPU layouts at load time): a decoding companion that
    :class:`core.generation.llamacpp.LlamaCppGenerator` can use instead of the original file.

    Args:
        gguf_path: The quantised model.
        dtype: ``"F32"`` (exact, 4 bytes a weight), ``"F16"``, ``"Q8_0"`` or ``"Q4_0"``.

    Returns:
        The dense file, or ``gguf_path`` itself when it holds no quantised matrices.
    """
    import gguf

    if dtype not in _DENSE_TYPES and dtype not in _QUANT_TYPES:
        raise ValueError(f"dtype must be one of {sorted([*_DENSE_TYPES, *_QUANT_TYPES])}, got {dtype!r}")
    np_type, file_type = _DENSE_TYPES.get(dtype, (np.float32, _QUANT_TYPES.get(dtype, 0)))
    quant = getattr(gguf.GGMLQuantizationType, dtype) if dtype in _QUANT_TYPES else None
    gguf_path = Path(gguf_path)
    key = file_cache_key(gguf_path)
    target = cache_dir() / "models" / f"{gguf_path.stem}-{key}.{dtype}.gguf"
    if target.is_file():
        return target
    reader = gguf.GGUFReader(gguf_path)
    kept = {gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16, gguf.GGMLQuantizationType.BF16}
    if all(t.tensor_type in kept for t in reader.tensors):
        return gguf_path
    logger.info("Writing dense prefill companion once", extra={"gguf": str(gguf_path), "target": str(target)})

    def add_tensors(writer: Any) -> None:
        for tensor in reader.tensors:
            if tensor.tensor_type in kept:
                writer.add_tensor(
                    tensor.name, tensor.data, raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type
                )
            else:
                dense = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
                if quant is not None:
                    writer.add_tensor(tensor.name, gguf.quants.quantize(dense, quant), raw_dtype=quant)
                else:
                    writer.add_tensor(tensor.name, dense.astype(np_type))

    fields = _copied_fields(reader, file_type)
    _write_gguf(target, reader.fields["general.architecture"].contents(), fields, add_tensors)
    return target


def _copied_fields(reader: Any, ftype: int) -> list[tuple[str, Any, Any, Any]]:
    import gguf

    fields = []
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # written by GGUFWriter itself
        value_type = field.types[0]
        sub_type = field.types[-1] if value_type == gguf.GGUFValueType.ARRAY else None
        value = ftype if field.name == "general.file_type" else field.contents()
        fields.append((field.name, value, value_type, sub_type))
    return fields


def _write_gguf(
    out_path: Path, arch: str, fields: Sequence[tuple[str, Any, Any, Any]], add_tensors: Callable[[Any], None]
) -> None:
    """Write a GGUF file atomically: key/values, then whatever ``add_tensors(writer)`` adds."""
    import gguf

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        writer = gguf.GGUFWriter(str(tmp), arch)
        for name, value, value_type, sub_type in fields:
            writer.add_key_value(name, value, value_type, sub_type=sub_type)
        add_tensors(writer)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

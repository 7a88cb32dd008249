"""Safetensors files read as views of a memory map: arrays without a copy.

``safetensors.safe_open(...).get_tensor`` copies each array out of the file. A large weight matrix
(a recommender's dense EASE weights: 144 MB) then costs a copy at every load and a private copy per
process. :func:`map_safetensors` maps the file read-only and returns numpy views into the map
instead: loading costs no copy, the pages come from the page cache as they are first read, and
processes that load the same file (Ray actors, batch workers) share them.

The views are read-only. They stay valid while the arrays live, even if the file is later deleted
or replaced by a rename (how :func:`core.io.artifacts.open_artifact` replaces a directory); a file
truncated or rewritten in place under a running process is the one thing a map cannot survive
(SIGBUS on the next read), and artifact directories are never written in place.

The layout (https://huggingface.co/docs/safetensors): an 8-byte little-endian header length ``N``,
``N`` bytes of JSON (``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the data, the offsets relative to its start. Every field is checked before a view is made
(dtype known, offsets inside the data, lengths matching the shapes, no two tensors overlapping):
a damaged file raises :class:`ValueError`, never reads outside the map.
"""

from __future__ import annotations

import json
import logging
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: safetensors dtype names -> little-endian numpy dtypes (``BF16`` and the 8-bit floats have none).
DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "F16": np.dtype("<f2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "F32": np.dtype("<f4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F64": np.dtype("<f8"),
}
_MAX_HEADER = 100_000_000  # the limit of the reference implementation


def map_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and metadata of a safetensors file, the arrays as read-only views of a memory map.

    An array whose offset is not a multiple of its item size (files written by the reference
    library never have one) is copied, so every returned array is aligned.

    Args:
        path: The ``.safetensors`` file.

    Returns:
        ``(arrays, metadata)``: arrays by name in file order, and the ``__metadata__`` strings.

    Raises:
        FileNotFoundError: No such file.
        ValueError: Not a well-formed safetensors file, or a dtype numpy lacks (``BF16``).
    """
    path = Path(path)
    with path.open("rb") as fh:
        size = path.stat().st_size
        if size < 8:
            raise ValueError(f"{path.name}: {size} bytes, too short for a safetensors header")
        buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)  # stays valid after close
    (length,) = struct.unpack("<Q", buffer[:8])
    if length > min(_MAX_HEADER, size - 8):
        raise ValueError(f"{path.name}: header of {length} bytes in a file of {size}")
    try:
        header = json.loads(buffer[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path.name}: unreadable header ({err})") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path.name}: the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path.name}: __metadata__ must map names to strings")
    start = 8 + length
    spans = {name: _span(path.name, name, entry, size - start) for name, entry in header.items()}
    _check_disjoint(path.name, spans)
    arrays = {}
    for name, (dtype, shape, begin) in spans.items():
        count = int(np.prod(shape, dtype=np.int64))
        view = np.frombuffer(buffer, dtype=dtype, count=count, offset=start + begin).reshape(shape)
        arrays[name] = view if view.flags.aligned else view.copy()
    return arrays, metadata


def _span(file: str, name: str, entry: Any, data_size: int) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, begin)`` of one header entry, checked against the data section's size."""
    if not isinstance(entry, dict):
        raise ValueError(f"{file}: tensor {name!r} has no dtype/shape/data_offsets")
    dtype = DTYPES.get(entry.get("dtype"))  # type: ignore[arg-type]
    if dtype is None:
        raise ValueError(f"{file}: tensor {name!r} has dtype {entry.get('dtype')!r}, not one numpy reads")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValueError(f"{file}: tensor {name!r} has shape {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) for o in offsets)
        or not 0 <= offsets[0] <= offsets[1] <= data_size
    ):
        raise ValueError(f"{file}: tensor {name!r} has data offsets {offsets!r} outside {data_size} bytes")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offsets[1] - offsets[0] != expected:
        held = offsets[1] - offsets[0]
        raise ValueError(f"{file}: tensor {name!r} holds {held} bytes, its shape {shape} needs {expected}")
    return dtype, tuple(shape), offsets[0]


def _check_disjoint(file: str, spans: dict[str, tuple[np.dtype, tuple[int, ...], int]]) -> None:
    ends = sorted(
        (begin, begin + int(np.prod(shape, dtype=object)) * dtype.itemsize, name)
        for name, (dtype, shape, begin) in spans.items()
    )
    for (_, end, first), (begin, _, second) in zip(ends, ends[1:], strict=False):
        if begin < end:
            raise ValueError(f"{file}: tensors {first!r} and {second!r} overlap")


__all__ = ["DTYPES", "map_safetensors"]

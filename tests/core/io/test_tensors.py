"""Safetensors files mapped without copies: the library's round trip, and damaged files refused."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from core.io.tensors import map_safetensors


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "weights": rng.standard_normal((37, 11)).astype(np.float32),
        "items": np.arange(37, dtype=np.int64),
        "flags": rng.integers(0, 2, 5).astype(np.uint8),
        "half": rng.standard_normal(3).astype(np.float16),
        "double": np.array(2.5, dtype=np.float64),  # a 0-d tensor
        "empty": np.zeros((0, 4), dtype=np.float32),
    }


def _raw(path: Path, header: dict, data: bytes) -> Path:
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_arrays_and_metadata_equal_the_librarys_and_are_read_only_views(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file(_arrays(), str(path), metadata={"settings": '{"l2": 50}'})
    arrays, metadata = map_safetensors(path)
    expected = load_file(str(path))
    assert metadata == {"settings": '{"l2": 50}'} and set(arrays) == set(expected)
    for name, value in expected.items():
        assert arrays[name].dtype == value.dtype and arrays[name].shape == value.shape
        np.testing.assert_array_equal(arrays[name], value)
        assert arrays[name].flags.aligned and not arrays[name].flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arrays["weights"][0, 0] = 1.0
    # Views of the map, not copies: they stay readable after the file is removed (a model replaced).
    path.unlink()
    np.testing.assert_array_equal(arrays["weights"], expected["weights"])


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8, "outside 8 bytes"),
        ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, b"\0" * 16, "holds 16 bytes"),
        ({"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "not one numpy reads"),
        ({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "has shape"),
        (
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            },
            b"\0" * 12,
            "overlap",
        ),
        ({"__metadata__": {"n": 1}}, b"", "__metadata__"),
        ({"a": [1, 2]}, b"", "no dtype"),
    ],
)
def test_damaged_headers_are_refused(tmp_path, header, data, match):
    with pytest.raises(ValueError, match=match):
        map_safetensors(_raw(tmp_path / "bad.safetensors", header, data))


def test_short_files_and_unreadable_headers_are_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    path.write_bytes(b"\1\0")
    with pytest.raises(ValueError, match="too short"):
        map_safetensors(path)
    path.write_bytes(struct.pack("<Q", 1_000) + b"{}")
    with pytest.raises(ValueError, match="header of 1000 bytes"):
        map_safetensors(path)
    path.write_bytes(struct.pack("<Q", 3) + b"{no")
    with pytest.raises(ValueError, match="unreadable header"):
        map_safetensors(path)
    with pytest.raises(FileNotFoundError):
        map_safetensors(tmp_path / "missing.safetensors")

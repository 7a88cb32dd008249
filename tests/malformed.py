"""Hypothesis strategies for malformed input files, and the property every reading command must keep.

Each strategy draws the bytes of a file that no reader may accept: a CSV without a required column, a
header with no rows, text that is not UTF-8, an empty file, a JSON Lines file with a broken or non-object
line, YAML that does not parse, a Parquet file cut short. :func:`check_rejected` runs a command on it
and asserts what the README promises: exit code 2, one ``error:`` line naming the file (and the row where
the format has rows), no traceback, and nothing written.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.cli_run import assert_one_line_error, run_aigc

#: Few examples per command: the whole property suite stays well under a minute.
FEW = settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

WORDS = st.text(alphabet="abcdefghij klmnop", min_size=1, max_size=12).map(lambda s: s.strip() or "x")


@dataclass(frozen=True)
class Malformed:
    """A bad input file: its name, bytes, and the text the error line must contain besides the path."""

    name: str
    data: bytes
    expect: tuple[str, ...] = ()

    def write(self, folder: Path) -> Path:
        """Write the file into ``folder`` and return its path."""
        path = folder / self.name
        path.write_bytes(self.data)
        return path


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    frame = pd.DataFrame([list(r) for r in rows], columns=list(header))
    return frame.to_csv(index=False).encode()


@st.composite
def csv_missing_column(draw, required: Sequence[str], suffix: str = ".csv") -> Malformed:
    """A CSV whose header lacks one of ``required`` (others are there, plus noise columns)."""
    dropped = draw(st.sampled_from(list(required)))
    header = [c for c in required if c != dropped] + draw(
        st.lists(st.sampled_from(["notes", "extra", "id2", "misc"]), max_size=2, unique=True)
    )
    header = header or ["unrelated"]
    rows = draw(st.lists(st.lists(WORDS, min_size=len(header), max_size=len(header)), min_size=1, max_size=4))
    return Malformed(f"missing{suffix}", _csv(header, rows), (dropped,))


@st.composite
def csv_header_only(draw, required: Sequence[str], suffix: str = ".csv") -> Malformed:
    """The required header and no rows (optionally a trailing blank line)."""
    tail = draw(st.sampled_from(["\n", "\r\n", "\n\n"]))
    return Malformed(f"header{suffix}", (",".join(required) + tail).encode())


@st.composite
def csv_not_utf8(draw, required: Sequence[str], suffix: str = ".csv") -> Malformed:
    """A well-formed CSV with bytes that are not UTF-8 in one cell."""
    n = draw(st.integers(min_value=1, max_value=4))
    bad = draw(st.integers(min_value=0, max_value=n - 1))
    lines = [",".join(required).encode()]
    for i in range(n):
        cells = [draw(WORDS).encode() for _ in required]
        if i == bad:
            cells[0] = cells[0] + draw(st.sampled_from([b"\xff\xfe", b"\xe9t\xe9", b"\x80"]))
        lines.append(b",".join(cells))
    return Malformed(f"latin{suffix}", b"\n".join(lines) + b"\n")


def empty_file(suffix: str) -> st.SearchStrategy[Malformed]:
    """A zero-byte file."""
    return st.just(Malformed(f"empty{suffix}", b""))


@st.composite
def jsonl_broken_line(draw, required: Sequence[str]) -> Malformed:
    """JSON Lines with one truncated or non-object line among good ones; the error names its line."""
    import json

    n = draw(st.integers(min_value=1, max_value=4))
    bad = draw(st.integers(min_value=0, max_value=n - 1))
    lines = []
    for i in range(n):
        line = json.dumps({c: draw(WORDS) for c in required})
        if i == bad:
            line = draw(st.sampled_from([line[: len(line) // 2], "[1, 2]", "42", line + ",", "{'a': 1}"]))
        lines.append(line)
    # Apps number rows from 0 or 1 (each says which); the physical line is 1-based everywhere.
    return Malformed("broken.jsonl", ("\n".join(lines) + "\n").encode(), (f"(line {bad + 1})",))


@st.composite
def yaml_broken(draw) -> Malformed:
    """YAML that does not parse: an unclosed flow, a tab indent, a bad mapping."""
    text = draw(
        st.sampled_from(
            [
                "epochs: [1,\n",
                "a:\n\t- b\n",
                "key: value\n  other: : x\n",
                "{unclosed: 1\n",
                "- a\nb: c\n",
            ]
        )
    )
    return Malformed("broken.yaml", text.encode(), ("broken.yaml",))


@st.composite
def parquet_truncated(draw, required: Sequence[str]) -> Malformed:
    """A Parquet file cut short (or random bytes under a .parquet name)."""
    frame = pd.DataFrame({c: [draw(WORDS) for _ in range(3)] for c in required})
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data = buffer.getvalue()
    cut = draw(st.integers(min_value=0, max_value=len(data) - 1))
    return Malformed("cut.parquet", data[:cut])


def check_rejected(
    folder: Path, bad: Malformed, command: Callable[[Path], Sequence[str]], out_root: Path
) -> str:
    """Run ``aigc`` on ``bad`` written into ``folder``: exit 2, one line naming the file, nothing written.

    Args:
        folder: A folder for the input file (emptied first).
        bad: The file.
        command: Maps the input path to the ``aigc`` arguments.
        out_root: The folder the command's outputs go to: it must still be empty afterwards (no output,
            no temporary or lock file).

    Returns:
        The error line.
    """
    folder.mkdir(parents=True, exist_ok=True)
    out_root.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    path = bad.write(folder)
    result = run_aigc(*command(path))
    line = assert_one_line_error(result, str(path), *bad.expect)
    assert sorted(p.name for p in out_root.iterdir()) == [], line
    assert sorted(p.name for p in folder.iterdir()) == [path.name], line
    return line

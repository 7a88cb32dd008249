"""Options shared by the `aigc support` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

KBDirOption = Annotated[
    Path | None,
    typer.Option("--kb-dir", help="Knowledge-base directory (default: $AIGC_DATA_DIR/support/kb)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]

__all__ = ["JsonOption", "KBDirOption"]

"""What every ``aigc finance`` command shares: the ``--config``/``--set`` options and its error exits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from core.console import EXIT_DATABASE, exit_on_error

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML with train: and monitor: sections.")
]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting, e.g. epochs=5 or lora.r=16.")
]


def config_path(path: Path | None) -> Path | None:
    """``--config``, else the shipped ``configs/finance_monitor.yaml`` when it exists."""
    if path is not None:
        return path
    from apps.finance_monitor.config import CONFIG_FILE  # the settings module imports the model libraries

    return CONFIG_FILE if CONFIG_FILE.is_file() else None


@contextmanager
def command_errors() -> Iterator[None]:
    """Known errors become one error line (:mod:`core.console`): exit 3 for a database or broker, else 2."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.bus import BusError
    from core.storage import StorageError

    with (
        exit_on_error(FileNotFoundError, ValueError, OSError),
        exit_on_error(StorageError, SQLAlchemyError, BusError, code=EXIT_DATABASE),
    ):
        yield

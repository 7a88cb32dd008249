"""Error lines never wrap: any console width, any path length, no TTY."""

from __future__ import annotations

import pytest
import typer

from core.console import exit_on_error, fail, one_line, print_error
from tests.cli_run import run_aigc_process


def test_one_line_folds_newlines_and_runs_of_spaces():
    assert one_line("row\n0 (line 2),\n\n  field 'label'") == "row 0 (line 2), field 'label'"


def test_print_error_keeps_brackets_and_one_line(capsys):
    print_error("bad value in data[1].csv\nrow 3 [red]x[/]")
    err = capsys.readouterr().err
    assert err == "error: bad value in data[1].csv row 3 [red]x[/]\n"


def test_exit_on_error_turns_errors_into_exit_2(capsys):
    with pytest.raises(typer.Exit) as caught, exit_on_error(ValueError):
        raise ValueError("field 'x'\nis empty")
    assert caught.value.exit_code == 2
    assert capsys.readouterr().err == "error: field 'x' is empty\n"
    assert fail("db down", code=3).exit_code == 3


def test_cli_error_line_is_whole_in_a_narrow_console_with_a_long_path(tmp_path):
    """The real console script, no TTY, COLUMNS=20 and a path far longer than the width."""
    deep = tmp_path.joinpath(*(["a-rather-long-folder-name"] * 6))
    deep.mkdir(parents=True)
    bad = deep / "bad.csv"
    bad.write_text("text,label\nhi,\n", encoding="utf-8")
    result = run_aigc_process(
        "support", "train-intents", "--data", str(bad), "--out", str(tmp_path / "m"),
        env={"COLUMNS": "20", "TERM": "dumb"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "is empty" in line]
    assert len(lines) == 1, result.stderr
    assert str(bad) in lines[0] and "row 0 (line 2), field 'label': is empty" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()

import json

from typer.testing import CliRunner

from core import __version__
from core.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_models_json_lists_both_defaults_installed():
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) >= {"smollm2-135m-instruct", "minilm-l6"}
    assert all(row["status"] == "installed" for row in rows.values())


def test_app_subcommands_are_mounted():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("support", "finance", "recommend", "ui", "models", "db"):
        assert name in result.stdout


def test_db_upgrade_and_current(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    current = runner.invoke(app, ["db", "current", "--url", url])
    assert current.exit_code == 0 and "(no schema" not in current.stdout

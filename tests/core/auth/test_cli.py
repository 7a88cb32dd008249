"""``aigc users`` and ``aigc audit`` (in-process through typer's runner; stdin is not a terminal)."""

import json

from typer.testing import CliRunner

from core.auth import verify_api_key
from core.cli import app

runner = CliRunner()


def aigc(*args: str, stdin: str | None = None):
    return runner.invoke(app, list(args), input=stdin)


def test_users_and_audit_commands():
    added = aigc("users", "add", "alice", "--role", "admin", "--password-stdin", stdin="correct horse\n")
    assert added.exit_code == 0, added.output
    no_tty = aigc("users", "add", "bob", "--role", "agent", stdin="")
    assert no_tty.exit_code == 2 and "--password-stdin" in no_tty.stderr
    bad = aigc("users", "add", "bob", "--role", "boss", "--password-stdin", stdin="correct horse\n")
    assert bad.exit_code == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: unknown role 'boss'")
    assert aigc("users", "set-role", "alice", "kb_admin").exit_code == 0
    listed = json.loads(aigc("users", "list", "--json").stdout)
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "kb_admin")]
    key = aigc("users", "api-key", "alice", "--label", "crm")
    last = key.stdout.strip().splitlines()[-1]
    assert key.exit_code == 0 and last.startswith("aigc_")
    assert verify_api_key(last).name == "alice"
    assert aigc("users", "disable", "alice").exit_code == 0
    assert aigc("users", "reset-password", "nobody", "--password-stdin", stdin="x" * 9).exit_code == 2
    events = json.loads(aigc("audit", "--since", "1h", "--json").stdout)
    assert [e["action"] for e in events] == ["user_disable", "api_key_create", "user_set_role", "user_add"]
    assert all(e["actor"].startswith("cli") for e in events)
    assert "correct horse" not in json.dumps(events) and last not in json.dumps(events)
    assert aigc("audit", "--since", "yesterday").exit_code == 2


def test_ui_refuses_a_public_address_while_no_user_exists(capsys):
    import pytest

    from core.auth import add_user
    from core.cli import UserError, check_ui_exposure, is_loopback

    assert is_loopback("localhost") and is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_ui_exposure("127.0.0.1", no_auth=False)  # local use without users stays open
    with pytest.raises(UserError, match="refusing to serve on 0.0.0.0"):
        check_ui_exposure("0.0.0.0", no_auth=False)
    check_ui_exposure("0.0.0.0", no_auth=True)
    assert "warning: serving on 0.0.0.0 WITHOUT sign-in" in capsys.readouterr().err
    add_user("lead", "admin", "correct horse")
    check_ui_exposure("0.0.0.0", no_auth=False)  # sign-in is on now


def test_the_audit_table_prints_brackets_in_names_and_details_as_typed():
    """A failed sign-in records the name as typed: rich markup in it is shown, not obeyed or fatal."""
    from core.auth.audit import record_event
    from core.schema import migrate

    migrate()
    record_event("sign_in", actor="[/b]mallory", outcome="denied", details={"note": "[red]x[/red]"})
    shown = aigc("audit", "--since", "1h")
    assert shown.exit_code == 0, shown.output
    # each column's pieces in order (a narrow terminal folds long cells over lines)
    rows = [line.split("│") for line in shown.stdout.splitlines() if line.count("│") == 7]
    actor, details = ("".join("".join(row[k] for row in rows).split()) for k in (2, 6))
    assert "[/b]mallory" in actor and '{"note":"[red]x[/red]"}' in details

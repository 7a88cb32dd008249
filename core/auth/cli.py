"""``aigc users ...`` and ``aigc audit``: manage who may sign in, and read what they did.

Passwords are read from an interactive prompt (typed twice, not echoed) or, for scripts, from
the first line of standard input with ``--password-stdin``; never from an argument, which would
land in shell history and ``ps``. Every change is audited with the actor ``cli:<login>``.
"""

from __future__ import annotations

import getpass
import json
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from core.cli_bounds import MAX_ROWS
from core.console import console, fail, out

T = TypeVar("T")

users_app = typer.Typer(
    help="Users of the UI and API: add, list, roles, disable, passwords, API keys.", no_args_is_help=True
)

_ROLES_HELP = "agent, kb_admin, analyst or admin"
_RELATIVE = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def cli_actor() -> str:
    """The audit actor for commands run at a terminal: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name in a bare container
        return "cli"


def _engine():
    from core.schema import migrate
    from core.storage import create_engine

    engine = create_engine()
    migrate(engine)
    return engine


def record_cli_event(action: str, target: str | None = None, details: dict | None = None) -> None:
    """Audit a command that changed shared state (KB index, calibration, export), as ``cli:<login>``."""
    from core.auth.audit import record_event

    engine = _engine()
    try:
        record_event(action, actor=cli_actor(), target=target, details=details, engine=engine)
    finally:
        engine.dispose()


def read_password(from_stdin: bool) -> str:
    """A new password from stdin's first line (``--password-stdin``) or a prompt typed twice.

    Raises:
        typer.Exit: No TTY to prompt on, or an empty password.
    """
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not sys.stdin.isatty():
        raise fail("no terminal to prompt for the password on; pipe it with --password-stdin")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if not password:
        raise fail("empty password")
    return password


def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from core.auth.users import UserError

    try:
        return fn(*args, **kwargs)
    except UserError as err:
        raise fail(err) from None


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, . _ @ -).")],
    role: Annotated[str, typer.Option(help=_ROLES_HELP)] = "agent",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Add a user (the password is prompted for, or read with --password-stdin)."""
    from core.auth.roles import parse_role
    from core.auth.users import add_user, check_name

    try:
        check_name(name)
        parse_role(role)
    except ValueError as err:
        raise fail(err) from None
    password = read_password(password_stdin)
    user = _run(add_user, name, role, password, actor=cli_actor(), engine=_engine())
    console.print(
        f"added user [bold]{escape(user.name)}[/] ({user.role.value}); sign-in is now required in `aigc ui`"
    )


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List users with their role and state."""
    from core.auth.users import list_users

    users = list_users(engine=_engine())
    if as_json:
        out.print_json(json.dumps([u.as_dict() for u in users]))
        return
    table = Table(title="Users")
    for col in ("name", "role", "state", "last sign-in"):
        table.add_column(col, overflow="fold")
    for u in users:
        state = "disabled" if u.disabled else ("locked" if u.locked() else "active")
        last = f"{u.last_sign_in_at:%Y-%m-%d %H:%M} UTC" if u.last_sign_in_at else "never"
        table.add_row(Text(u.name), u.role.value, state, last)
    out.print(table)
    if not users:
        console.print("no users yet: `aigc users add NAME --role admin` turns sign-in on")


@users_app.command("set-role")
def users_set_role(
    name: Annotated[str, typer.Argument(help="User name.")],
    role: Annotated[str, typer.Argument(help=_ROLES_HELP)],
) -> None:
    """Change a user's role (their sessions end)."""
    from core.auth.users import set_role

    user = _run(set_role, name, role, actor=cli_actor(), engine=_engine())
    console.print(f"{user.name} is now {user.role.value}", markup=False)


@users_app.command("disable")
def users_disable(
    name: Annotated[str, typer.Argument(help="User name.")],
    enable: Annotated[bool, typer.Option("--enable", help="Re-enable instead.")] = False,
) -> None:
    """Disable a user: no sign-in, sessions and API keys stop working (--enable undoes it)."""
    from core.auth.users import set_disabled

    user = _run(set_disabled, name, not enable, actor=cli_actor(), engine=_engine())
    console.print(f"{user.name} is {'disabled' if user.disabled else 'enabled'}", markup=False)


@users_app.command("reset-password")
def users_reset_password(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Set a new password (also lifts a lockout and ends the user's sessions)."""
    from core.auth.users import get_user, reset_password

    engine = _engine()
    if get_user(name, engine=engine) is None:
        raise fail(f"no user {name.strip()!r}; `aigc users list` shows who exists")
    password = read_password(password_stdin)
    user = _run(reset_password, name, password, actor=cli_actor(), engine=engine)
    console.print(f"password of {user.name} reset", markup=False)


@users_app.command("api-key")
def users_api_key(
    name: Annotated[str, typer.Argument(help="User the key acts as.")],
    label: Annotated[str | None, typer.Option(help="What the key is for.")] = None,
    revoke: Annotated[str | None, typer.Option(help="Revoke the key with this prefix instead.")] = None,
) -> None:
    """Create an API key for a user; it is printed once, alone on the last line."""
    from core.auth.api_keys import create_api_key, revoke_api_key

    engine = _engine()
    if revoke is not None:
        info = _run(revoke_api_key, revoke, actor=cli_actor(), engine=engine)
        console.print(f"revoked key {info.prefix} of {info.user}", markup=False)
        return
    info, key = _run(create_api_key, name, label=label, actor=cli_actor(), engine=engine)
    console.print(f"API key {info.prefix} for {info.user} (shown once; store it now):", markup=False)
    sys.stdout.write(key + "\n")
    sys.stdout.flush()


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``--since`` as an aware datetime: ISO 8601 (``2026-12-01T08:00``) or ``30m``/``2h``/``7d`` ago.

    Raises:
        ValueError: Neither form.
    """
    text = value.strip()
    match = _RELATIVE.fullmatch(text)
    if match:
        return (now or datetime.now(UTC)) - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {value!r}: give an ISO date/time (2026-12-01T08:00) or 30m, 2h, 7d, 1w"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def audit(
    since: Annotated[str | None, typer.Option(help="Only events since: ISO time or 30m, 2h, 7d.")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this user's events.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (sign_in, kb_upload...).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=MAX_ROWS, help="At most this many events.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the audit log, newest first: sign-ins, lockouts, uploads, re-indexes, user changes..."""
    from core.auth.audit import audit_events

    try:
        start = parse_since(since) if since else None
    except ValueError as err:
        raise fail(err) from None
    events = audit_events(start, actor=actor, action=action, limit=limit, engine=_engine())
    if as_json:
        out.print_json(json.dumps([{**e, "at": e["at"].isoformat()} for e in events]))
        return
    table = Table(title="Audit log")
    for col in ("when (UTC)", "actor", "action", "target", "outcome", "details"):
        table.add_column(col, overflow="fold")
    for e in events:
        # Text cells: names, targets and details can hold any user's text, never rich markup
        table.add_row(
            f"{e['at']:%Y-%m-%d %H:%M:%S}",
            Text(e["actor"] or "-"),
            Text(e["action"]),
            Text(e["target"] or "-"),
            Text(e["outcome"]),
            Text(json.dumps(e["details"], ensure_ascii=False) if e["details"] else ""),
        )
    out.print(table)


__all__ = ["audit", "cli_actor", "parse_since", "read_password", "record_cli_event", "users_app"]

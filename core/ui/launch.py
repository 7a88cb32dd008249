"""Starting the Streamlit suite: the loopback guard, ``launch_ui`` and each app's ``ui`` command.

Apps build their ``aigc <app> ui`` command from :func:`app_ui_command`. It lives here, not in
:mod:`core.cli`, because ``core.cli`` mounts the apps' CLIs when it is imported: an app CLI that
imported ``core.cli`` would re-enter its own import.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from core.console import console, print_error
from core.errors import UserError


def is_loopback(address: str) -> bool:
    """Whether ``address`` (an IP or host name to bind) only accepts connections from this machine."""
    import ipaddress

    if address.strip().lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(address.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to a public interface


def check_ui_exposure(address: str, no_auth: bool) -> None:
    """Refuse to serve the UI beyond this machine while no user exists (sign-in would be off).

    Raises:
        UserError: ``address`` is not loopback, no user exists and ``no_auth`` is not set.
    """
    from core.auth import users_exist
    from core.schema import migrate
    from core.storage import create_engine

    engine = create_engine()
    try:
        migrate(engine)
        has_users = users_exist(engine=engine)
    finally:
        engine.dispose()
    if has_users:
        return
    if not no_auth and not is_loopback(address):
        raise UserError(
            f"refusing to serve on {address}: no user exists, so anyone reaching the port could read every "
            "conversation and change the knowledge base. Add one with `aigc users add NAME --role admin` "
            "(sign-in is then on), serve on localhost, or pass --no-auth to serve without sign-in anyway"
        )
    if not is_loopback(address):
        print_error(
            f"serving on {address} WITHOUT sign-in (--no-auth): anyone who reaches the port can read every "
            "conversation, upload files and re-index the knowledge base",
            label="warning",
        )


def app_ui_command(app_name: str) -> typer.Typer:
    """A typer sub-app holding the ``ui`` command that starts only ``app_name``'s pages.

    Every app adds it to its CLI (``app.add_typer(app_ui_command("finance"))``), so ``aigc finance ui``
    and the other apps' ``ui`` commands are one function.
    """
    sub = typer.Typer()

    @sub.command()
    def ui(
        port: Annotated[int, typer.Option(help="Port to serve on.")] = 8501,
        address: Annotated[str, typer.Option(help="Address to bind.")] = "localhost",
    ) -> None:
        """Start only this app's Streamlit pages."""
        raise typer.Exit(launch_ui([app_name], port, address))

    return sub


def launch_ui(
    apps: list[str] | None = None,
    port: int = 8501,
    address: str = "localhost",
    headless: bool = True,
    no_auth: bool = False,
) -> int:
    """Start the Streamlit suite (all apps, or only ``apps``) and wait for it to exit.

    Sign-in is on whenever at least one user exists. With no user, the suite refuses to listen
    on a non-loopback address unless ``no_auth`` is set (see :func:`check_ui_exposure`).

    Returns:
        The Streamlit process's exit code.

    Raises:
        UserError: Non-loopback address, no user, and no ``no_auth``.
    """
    from core.ui.shell import APP_SCRIPT

    check_ui_exposure(address, no_auth)

    env = dict(os.environ)
    if apps:
        env["AIGC_UI_APPS"] = ",".join(apps)
    cmd = [
        sys.executable, "-m", "streamlit", "run", APP_SCRIPT,
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", str(headless).lower(),
        "--browser.gatherUsageStats", "false",
        # agents and analysts are viewers: no Deploy / Rerun / Clear cache developer menu (Streamlit
        # shows it to any browser on localhost), and an uncaught exception shows its type in the
        # browser, never its message or traceback (those go to the server log)
        "--client.toolbarMode", "viewer",
        "--client.showErrorDetails", "type",
    ]  # fmt: skip
    console.print(f"[bold]aigc-suite[/] on {escape(f'http://{address}:{port}')}  (Ctrl-C stops it)")
    proc = subprocess.Popen(cmd, env=env)

    def forward(signum: int, _frame: Any) -> None:
        # A signal sent to this process alone (a service manager's SIGTERM, `kill`) must stop the
        # Streamlit server too, or it is left running without its parent.
        if proc.poll() is None:
            proc.send_signal(signum)

    signals = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, forward) for s in signals}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if code < 0 else code  # stopped by a signal (Ctrl-C, SIGTERM): a normal shutdown

"""Sign-in in the Streamlit suite (AppTest runs the real entry script against a real database)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from core.auth import add_user, audit_events
from core.schema import migrate
from core.ui.shell import APP_SCRIPT


def sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="aigc_sign_in_name").input(name)
    at.text_input(key="aigc_sign_in_password").input(password)
    at.button[0].click()
    return at.run()


def test_visitor_sees_only_the_sign_in_form_then_signs_in(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")
    migrate()
    add_user("ana", "agent", "ana-password")
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.exception and len(at.text_input) == 2 and not at.sidebar.button
    sign_in(at, "ana", "wrong-password")
    assert "Wrong user name or password" in at.error[0].value
    sign_in(at, "ana", "ana-password")
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["aigc-suite"]  # the home page
    assert "Signed in as **ana** · agent" in at.sidebar.caption[0].value
    actions = [e["action"] for e in audit_events()]
    assert actions[:2] == ["sign_in", "sign_in_failed"]


def test_five_failures_lock_the_account_in_the_form(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")
    migrate()
    add_user("ana", "agent", "ana-password")
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    for _ in range(5):
        sign_in(at, "ana", "wrong-password")
    assert "locked" in at.error[0].value
    sign_in(at, "ana", "ana-password")
    assert "locked" in at.error[0].value and [t.value for t in at.title] == ["Sign in"]


def test_sign_in_is_off_without_users(monkeypatch):
    monkeypatch.setenv("AIGC_UI_APPS", "support")
    at = AppTest.from_file(APP_SCRIPT, default_timeout=60).run()
    assert [t.value for t in at.title] == ["aigc-suite"] and not at.exception

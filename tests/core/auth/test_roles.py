import pytest

from core.auth.roles import Permission, Role, allowed, parse_role


def test_role_permissions():
    assert allowed("agent", Permission.CHAT) and not allowed("agent", Permission.KB_ADMIN)
    assert allowed("kb_admin", "chat") and allowed("kb_admin", "kb.admin")
    assert not allowed("kb_admin", Permission.KB_ANY_PATH)
    assert allowed("analyst", "alerts.manage") and not allowed("analyst", "chat")
    assert all(allowed("admin", p) for p in Permission)
    assert not allowed(None, "chat") and not allowed("boss", "chat") and not allowed("admin", "nonsense")


def test_parse_role():
    assert parse_role(" KB_Admin ") is Role.KB_ADMIN
    with pytest.raises(ValueError, match="choose one of agent, kb_admin, analyst, admin"):
        parse_role("root")

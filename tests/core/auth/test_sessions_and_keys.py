from datetime import timedelta

import pytest

from core.auth import (
    add_user,
    create_api_key,
    end_session,
    list_api_keys,
    resume_session,
    revoke_api_key,
    set_disabled,
    set_role,
    start_session,
    verify_api_key,
)
from core.auth.users import UserError
from core.storage import utcnow


def test_session_lives_until_expiry_idle_sign_out_or_role_change(engine):
    user = add_user("alice", "agent", "correct horse", engine=engine)
    t0 = utcnow()
    token = start_session(user, max_age=timedelta(hours=1), now=t0, engine=engine)
    assert resume_session(token, now=t0 + timedelta(minutes=10), engine=engine).name == "alice"
    assert resume_session(token, now=t0 + timedelta(minutes=70), engine=engine) is None  # expired
    idle = start_session(user, now=t0, engine=engine)
    assert (
        resume_session(idle, idle_timeout=timedelta(minutes=5), now=t0 + timedelta(minutes=6), engine=engine)
        is None
    )
    signed_out = start_session(user, engine=engine)
    end_session(signed_out, engine=engine)
    assert resume_session(signed_out, engine=engine) is None
    changed = start_session(user, engine=engine)
    set_role("alice", "kb_admin", engine=engine)
    assert resume_session(changed, engine=engine) is None
    assert (
        resume_session("not a token", engine=engine) is None and resume_session(None, engine=engine) is None
    )


def test_api_key_shown_once_verifies_and_revokes(engine):
    add_user("bot", "agent", "correct horse", engine=engine)
    info, key = create_api_key("bot", label="crm", actor="admin", engine=engine)
    assert key.startswith(f"aigc_{info.prefix}_") and len(key) > 40
    owner = verify_api_key(key, engine=engine)
    assert owner.name == "bot" and owner.role == "agent"
    assert verify_api_key(key[:-1] + ("A" if key[-1] != "A" else "B"), engine=engine) is None
    assert verify_api_key("nonsense", engine=engine) is None
    listed = list_api_keys("bot", engine=engine)
    assert [k.prefix for k in listed] == [info.prefix] and listed[0].last_used_at is not None
    assert key not in str(listed[0].as_dict())
    set_disabled("bot", engine=engine)
    assert verify_api_key(key, engine=engine) is None
    set_disabled("bot", False, engine=engine)
    revoke_api_key(info.prefix, actor="admin", engine=engine)
    assert verify_api_key(key, engine=engine) is None
    with pytest.raises(UserError, match="no API key"):
        revoke_api_key("deadbeef", engine=engine)

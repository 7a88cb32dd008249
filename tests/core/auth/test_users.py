from datetime import timedelta

import pytest

from core.auth import audit_events
from core.auth.users import (
    LOCKOUT,
    MAX_FAILED_ATTEMPTS,
    UserError,
    add_user,
    authenticate,
    get_user,
    list_users,
    reset_password,
    set_disabled,
    set_role,
    users_exist,
)
from core.storage import utcnow


def test_add_list_and_sign_in(engine):
    assert not users_exist(engine=engine)
    user = add_user("alice", "admin", "correct horse", actor="cli:root", engine=engine)
    assert user.role == "admin" and users_exist(engine=engine)
    assert [u.name for u in list_users(engine=engine)] == ["alice"]
    ok = authenticate("alice", "correct horse", engine=engine)
    assert ok.ok and ok.user.name == "alice"
    assert get_user("alice", engine=engine).last_sign_in_at is not None
    # the hash is Argon2id, never the password
    from core.auth.models import User
    from core.storage import session_scope

    with session_scope(engine) as s:
        stored = s.query(User).one().password_hash
    assert stored.startswith("$argon2id$") and "correct horse" not in stored


def test_bad_input_is_refused(engine):
    add_user("alice", "agent", "correct horse", engine=engine)
    with pytest.raises(UserError, match="already exists"):
        add_user("alice", "agent", "correct horse", engine=engine)
    with pytest.raises(UserError, match="unknown role 'boss'"):
        add_user("bob", "boss", "correct horse", engine=engine)
    with pytest.raises(UserError, match="at least 8"):
        add_user("bob", "agent", "short", engine=engine)
    with pytest.raises(UserError, match="invalid user name"):
        add_user("bad name", "agent", "correct horse", engine=engine)
    with pytest.raises(UserError, match="no user 'carol'"):
        set_role("carol", "admin", engine=engine)


def test_unknown_name_and_wrong_password_get_the_same_answer(engine):
    add_user("alice", "agent", "correct horse", engine=engine)
    unknown = authenticate("mallory", "whatever1", engine=engine)
    wrong = authenticate("alice", "wrong password", engine=engine)
    assert unknown.status == wrong.status == "invalid"
    assert unknown.message() == wrong.message()
    # On PostgreSQL a NUL in the name was an error any visitor of the sign-in form could cause.
    assert authenticate("ali\x00ce", "correct horse", engine=engine).status == "invalid"
    assert authenticate("alice\x1b[2J", "correct horse", engine=engine).status == "invalid"


def test_lockout_after_five_failures_for_fifteen_minutes(engine):
    add_user("alice", "agent", "correct horse", engine=engine)
    t0 = utcnow()
    for attempt in range(1, MAX_FAILED_ATTEMPTS + 1):
        result = authenticate("alice", "wrong password", now=t0, engine=engine)
        assert result.status == ("locked" if attempt == MAX_FAILED_ATTEMPTS else "invalid")
    # the right password does not lift the lock
    assert (
        authenticate("alice", "correct horse", now=t0 + timedelta(minutes=14), engine=engine).status
        == "locked"
    )
    assert authenticate("alice", "correct horse", now=t0 + LOCKOUT + timedelta(seconds=1), engine=engine).ok
    actions = [e["action"] for e in audit_events(engine=engine)]
    assert actions.count("lockout") == 1 and actions.count("sign_in_failed") == 6 and actions[0] == "sign_in"


def test_reset_password_lifts_lock_and_disable_blocks(engine):
    add_user("alice", "agent", "correct horse", engine=engine)
    for _ in range(MAX_FAILED_ATTEMPTS):
        authenticate("alice", "wrong password", engine=engine)
    reset_password("alice", "new password", actor="admin", engine=engine)
    assert authenticate("alice", "new password", engine=engine).ok
    assert not authenticate("alice", "correct horse", engine=engine).ok
    set_disabled("alice", actor="admin", engine=engine)
    assert authenticate("alice", "new password", engine=engine).status == "disabled"
    set_disabled("alice", False, actor="admin", engine=engine)
    assert authenticate("alice", "new password", engine=engine).ok
    changes = [e["action"] for e in audit_events(actor="admin", engine=engine)]
    assert changes == ["user_enable", "user_disable", "user_reset_password"]


def test_core_migration_matches_the_models(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from core.storage import CoreBase

    with engine.connect() as conn:
        only_core = {"include_name": lambda name, kind, _parent: kind != "table" or name.startswith("core_")}
        assert compare_metadata(MigrationContext.configure(conn, opts=only_core), CoreBase.metadata) == []

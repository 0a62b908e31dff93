"""Accounts: who may sign in, sign-in audit rows, deactivation, the first admin, the cookie
key. Nothing here may ever store or record a password."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from core.access.accounts import (
    COOKIE_KEY_SETTING,
    active_account,
    active_accounts,
    cookie_key,
    locked_until,
    record_sign_in,
    signed_out_at,
)
from core.access.admin import (
    change_own_password,
    create_first_admin,
    list_users,
    reset_password,
    set_active,
    set_role,
)
from core.access.permissions import NotAllowed
from core.access.users import check_password, create_user
from core.store.models import AuditLog

PW = "a long enough password"


def audit_dump(engine: Engine) -> str:
    with engine.connect() as c:
        return json.dumps([list(r) for r in c.execute(text("SELECT * FROM auditlog"))],
                          default=str)


def test_the_first_admin_is_made_once_on_an_empty_database(engine: Engine) -> None:
    password = create_first_admin(engine)
    assert password and len(password) >= 16
    admin = active_account(engine, "ADMIN")  # names match whatever the case
    assert admin is not None and admin.role == "admin"
    assert check_password(password, admin.password_hash) and password not in admin.password_hash
    assert create_first_admin(engine) is None
    assert password not in audit_dump(engine)


def test_no_first_admin_when_any_user_exists(engine: Engine) -> None:
    create_user(engine, "kim", "nurse", PW)
    assert create_first_admin(engine) is None
    assert [a.username for a in active_accounts(engine)] == ["kim"]


def test_user_names_are_unique_whatever_the_case_and_passwords_are_not_padded(
        engine: Engine) -> None:
    create_user(engine, "kim", "nurse", PW)
    with pytest.raises(ValueError, match="already exists"):
        create_user(engine, "Kim", "viewer", PW)
    with pytest.raises(ValueError, match="start or end with a space"):
        create_user(engine, "lee", "viewer", PW + " ")


def test_deactivation_keeps_the_user_audits_and_guards_the_last_admin(engine: Engine) -> None:
    create_user(engine, "boss", "admin", PW)
    create_user(engine, "kim", "nurse", PW)
    with pytest.raises(NotAllowed, match="A clinician may not manage users"):
        set_active(engine, "kim", False, "dr", actor_role="clinician")
    set_active(engine, "kim", False, "boss", actor_role="admin")
    assert active_account(engine, "kim") is None
    assert {u["username"]: u["active"] for u in list_users(engine)} == {"boss": True,
                                                                        "kim": False}
    assert all("password" not in str(u) for u in list_users(engine))
    with pytest.raises(ValueError, match="your own account"):
        set_active(engine, "boss", False, "boss", actor_role="admin")
    with pytest.raises(ValueError, match="last active admin"):
        set_active(engine, "boss", False, "operator")
    set_active(engine, "kim", True, "boss", actor_role="admin")
    with engine.connect() as c:
        rows = c.execute(select(AuditLog.action, AuditLog.actor).where(
            AuditLog.table_name == "user", AuditLog.action.like("%activate%"))).all()
    assert [tuple(r) for r in rows] == [("deactivate_user", "boss"), ("activate_user", "boss")]


def test_sign_in_events_name_who_and_never_a_password(engine: Engine) -> None:
    create_user(engine, "kim", "nurse", PW)
    record_sign_in(engine, "kim", "login", method="password")
    record_sign_in(engine, "x" * 300, "login_failed")
    record_sign_in(engine, "", "login_failed")
    with pytest.raises(ValueError, match="unknown sign-in event"):
        record_sign_in(engine, "kim", "su")
    with engine.connect() as c:
        rows = c.execute(select(AuditLog.actor, AuditLog.action, AuditLog.after).where(
            AuditLog.table_name == "user", AuditLog.action != "create_user")).all()
    assert [(a[:5], act) for a, act, _ in rows] == [("kim", "login"), ("xxxxx", "login_failed"),
                                                     ("(blan", "login_failed")]
    assert len(rows[1][0]) == 100 and rows[1][2]["known_user"] is False
    assert "$2b$" not in audit_dump(engine) and PW not in audit_dump(engine)


def test_the_cookie_key_is_made_once_kept_and_never_audited(engine: Engine) -> None:
    assert cookie_key(engine, "from-the-environment") == "from-the-environment"
    key = cookie_key(engine)
    assert len(key) >= 40 and cookie_key(engine) == key
    assert key not in audit_dump(engine) and COOKIE_KEY_SETTING in audit_dump(engine)


def test_a_user_name_is_locked_after_repeated_failures_until_time_or_a_good_sign_in(
        store: Engine) -> None:
    engine = store
    create_user(engine, "kim", "nurse", PW)
    now = datetime.now(UTC)
    for _ in range(4):
        record_sign_in(engine, "Kim", "login_failed")
    assert locked_until(engine, "kim", attempts=5, minutes=15) is None  # 4 of 5
    record_sign_in(engine, "kim ", "login_failed")
    until = locked_until(engine, "KIM", attempts=5, minutes=15)
    assert until is not None and timedelta(minutes=14) < until - now <= timedelta(minutes=16)
    # over when the time has passed, or a window with fewer failures
    assert locked_until(engine, "kim", 5, 15, now=now + timedelta(minutes=16)) is None
    assert locked_until(engine, "kim", attempts=6, minutes=15) is None
    assert locked_until(engine, "lee", attempts=5, minutes=15) is None  # another name
    record_sign_in(engine, "kim", "login", method="password")  # e.g. before the lock existed
    assert locked_until(engine, "kim", attempts=5, minutes=15) is None


def test_unknown_names_lock_like_known_ones_and_an_admins_new_password_reopens(
        store: Engine) -> None:
    engine = store
    create_user(engine, "kim", "nurse", PW)
    for name in ["ghost"] * 3 + ["kim"] * 3:
        record_sign_in(engine, name, "login_failed")
    assert locked_until(engine, "ghost", 3, 15) and locked_until(engine, "kim", 3, 15)
    reset_password(engine, "kim", "another long password", "boss", actor_role="admin")
    assert locked_until(engine, "kim", 3, 15) is None and locked_until(engine, "ghost", 3, 15)


def test_own_password_change_needs_the_current_one_and_ends_saved_sign_ins(
        store: Engine) -> None:
    engine = store
    create_user(engine, "kim", "nurse", PW)
    before = audit_dump(engine)
    with pytest.raises(ValueError, match="current password is wrong"):
        change_own_password(engine, "kim", "not it at all", "a new long password",
                            actor_role="nurse")
    with pytest.raises(ValueError, match="at least 10"):
        change_own_password(engine, "kim", PW, "short", actor_role="nurse")
    with pytest.raises(ValueError, match="same as the current"):
        change_own_password(engine, "kim", PW, PW, actor_role="nurse")
    assert audit_dump(engine) == before  # refused: nothing written
    assert signed_out_at(engine, "kim") is None
    change_own_password(engine, "kim", PW, "a new long password", actor_role="nurse")
    account = active_account(engine, "kim")
    assert account and check_password("a new long password", account.password_hash)
    assert not check_password(PW, account.password_hash)
    assert signed_out_at(engine, "kim") is not None  # older re-login cookies are refused
    with engine.connect() as c:
        (row,) = c.execute(select(AuditLog.actor, AuditLog.action).where(
            AuditLog.action == "password_changed")).all()
    assert tuple(row) == ("kim", "password_changed")
    dump = audit_dump(engine)
    assert "a new long password" not in dump and PW not in dump


def test_only_an_admin_sets_a_users_password_or_role_audited_with_guards(
        store: Engine) -> None:
    engine = store
    create_user(engine, "boss", "admin", PW)
    create_user(engine, "kim", "nurse", PW)
    with pytest.raises(NotAllowed):
        reset_password(engine, "kim", "a new long password", "dr", actor_role="clinician")
    with pytest.raises(NotAllowed):
        set_role(engine, "kim", "admin", "kim", actor_role="nurse")  # no self-escalation
    with pytest.raises(ValueError, match="no user"):
        set_role(engine, "nobody", "nurse", "boss", actor_role="admin")
    with pytest.raises(ValueError, match="unknown role"):
        set_role(engine, "kim", "superuser", "boss", actor_role="admin")
    with pytest.raises(ValueError, match="your own role"):
        set_role(engine, "boss", "viewer", "boss", actor_role="admin")
    with pytest.raises(ValueError, match="last active admin"):
        set_role(engine, "boss", "viewer", "operator", actor_role=None)
    set_role(engine, "kim", "clinician", "boss", actor_role="admin")
    assert active_account(engine, "kim").role == "clinician"  # type: ignore[union-attr]
    reset_password(engine, "kim", "given in person 1", "boss", actor_role="admin")
    assert check_password("given in person 1",
                          active_account(engine, "kim").password_hash)  # type: ignore[union-attr]
    with engine.connect() as c:
        rows = c.execute(select(AuditLog.actor, AuditLog.action, AuditLog.before,
                                AuditLog.after).where(
            AuditLog.action.in_(["set_role", "password_reset"]))).all()
    assert [(r[0], r[1]) for r in rows] == [("boss", "set_role"), ("boss", "password_reset")]
    assert rows[0][2] == {"role": "nurse"} and rows[0][3]["role"] == "clinician"
    assert "given in person 1" not in audit_dump(engine)

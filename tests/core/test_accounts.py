"""Accounts: who may sign in, sign-in audit rows, deactivation, the first admin, the cookie
key. Nothing here may ever store or record a password."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine

from core.accounts import (
    COOKIE_KEY_SETTING,
    active_account,
    active_accounts,
    cookie_key,
    create_first_admin,
    list_users,
    record_sign_in,
    set_active,
)
from core.models import AuditLog
from core.permissions import NotAllowed
from core.users import check_password, create_user

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

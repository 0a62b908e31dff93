"""Sign-in accounts: who may sign in, the audit of sign-ins, lockout after repeated failures
and the key that signs the dashboard's sign-in cookie (administering the accounts is
core.access.admin).

Passwords are bcrypt hashes in `User.password_hash` (core.access.users), checked here
(`password_sign_in`, with the lockout and the audit); a user who signs in through the site's
identity provider (core.access.identity) has an unusable marker instead. The dashboard's re-login
cookie holds a signed token (core.access.users.issue_token) that `token_account` honours only while
the account is active and the user has not signed out since. Nothing here stores, returns for
display or logs a password.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from core.access.users import check_password, hash_password, is_external, read_token
from core.store import audit
from core.store.db import session_scope
from core.store.faults import StorageFault, reraise_storage_fault
from core.store.models import AuditLog, Role, SiteSetting, User, as_utc

log = logging.getLogger(__name__)
COOKIE_KEY_SETTING = "auth_cookie_key"
# what the audit log records for each sign-in event (AuditLog.action, table "user")
OUTCOMES = {
    "login": "signed in",
    "login_failed": "sign-in refused: wrong user name or password",
    "logout": "signed out",
    "session_expired": "signed out after the idle time",
    "account_inactive": "signed out: the account was deactivated",
    "login_locked": "sign-in refused: too many failed sign-ins, locked for a while",
    "login_refused": "sign-in through the identity provider refused",
    "token_expired": "signed out: the sign-in from the identity provider expired",
}
SIGN_OUTS = ("logout", "session_expired", "account_inactive", "token_expired")
# a new password ends every saved sign-in of the user and reopens a locked user name
PASSWORD_EVENTS = ("password_changed", "password_reset")


@dataclass(frozen=True)
class Account:
    """One user who may sign in (active), as the dashboard needs it."""

    username: str
    name: str
    role: str
    password_hash: str = field(repr=False)

    @property
    def external(self) -> bool:
        """Signs in through the identity provider (no password here)."""
        return is_external(self.password_hash)


def _account(user: User) -> Account:
    return Account(user.username, user.display_name, str(Role(user.role).value),
                   user.password_hash)


def active_accounts(engine: Engine) -> list[Account]:
    """Every active user, by user name."""
    with Session(engine) as s:
        users = s.scalars(select(User).where(col(User.is_active).is_(True))
                          .order_by(col(User.username))).all()
        return [_account(u) for u in users]


def active_account(engine: Engine, username: str) -> Account | None:
    """The active user with this name (case-insensitive), or None."""
    with Session(engine) as s:
        user = s.scalars(select(User).where(func.lower(col(User.username)) == username.lower(),
                                            col(User.is_active).is_(True))).first()
        return None if user is None else _account(user)


def record_sign_in(engine: Engine, username: str, action: str, *,
                   method: str | None = None, detail: dict[str, Any] | None = None) -> None:
    """Append a sign-in event (see OUTCOMES) to the audit log. `username` is what was typed
    (a failed sign-in may name nobody); the password is never passed here. `method`: how
    (password, cookie, oidc); `detail`: more for the record (e.g. why a sign-in was refused)."""
    try:
        with session_scope(engine) as s:
            audit_sign_in(s, username, action, method=method, detail=detail)
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise


def audit_sign_in(s: Session, username: str, action: str, *, method: str | None = None,
                  detail: dict[str, Any] | None = None) -> None:
    """record_sign_in inside the caller's transaction."""
    if action not in OUTCOMES:
        raise ValueError(f"unknown sign-in event {action!r}; known: {', '.join(OUTCOMES)}")
    name = (username or "").strip()[:100] or "(blank)"
    user_id = _user_id(s, name)
    after: dict[str, Any] = {"outcome": OUTCOMES[action]}
    if method:
        after["method"] = method
    if action == "login_failed":
        after["known_user"] = user_id is not None
    after.update(detail or {})
    audit.record(s, actor=name, action=action, table_name="user", record_id=user_id,
                 after=after, reason=str((detail or {}).get("why") or OUTCOMES[action])[:1000])


@dataclass(frozen=True)
class PasswordSignIn:
    """What the sign-in form gets back: the account, or why not (`locked_until` set when the
    name is locked; otherwise a wrong user name or password)."""

    account: Account | None
    locked_until: datetime | None = None
    audit_error: str | None = None  # the database could not record it (read-only): why


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password of anyone")


def password_sign_in(engine: Engine, typed: str, password: str, *, attempts: int,
                     minutes: float) -> PasswordSignIn:
    """Check a local sign-in: refused at once while the name is locked (the password is not
    even checked), else the bcrypt check (as slow for an unknown name as for a known one).
    Audited either way, under the name as stored when it is good, as typed when not; on a
    database that cannot be written (read-only) the outcome stands and `audit_error` says so,
    as reading still works there."""
    name = (typed or "").strip()
    if until := locked_until(engine, name, attempts, minutes):
        return PasswordSignIn(None, until, _try_record(engine, name, "login_locked", None))
    account = active_account(engine, name) if name else None
    if account is None:
        check_password(password or "", _dummy_hash())
        ok = False
    else:
        ok = check_password(password or "", account.password_hash)
    error = _try_record(engine, account.username if ok and account else name or typed,
                        "login" if ok else "login_failed", "password")
    return PasswordSignIn(account if ok else None, None, error)


def _try_record(engine: Engine, username: str, action: str, method: str | None) -> str | None:
    try:
        record_sign_in(engine, username, action, method=method)
    except StorageFault as exc:
        log.warning("sign-in event %s of %s not audited: %s", action, username, exc)
        return str(exc)
    return None


def token_account(engine: Engine, key: str, token: str | None,
                  now: float | None = None) -> Account | None:
    """The active local account a re-login cookie's token (core.access.users.issue_token) stands
    for, or None: forged, expired, issued before the user's last sign-out or new password,
    or the account is gone, deactivated or signs in through the identity provider."""
    now = time.time() if now is None else now
    read = read_token(key, token or "", now)
    if read is None:
        return None
    username, issued = read
    account = active_account(engine, username)
    if account is None or account.external:
        return None
    out = signed_out_at(engine, username)
    if out is not None and issued <= out.timestamp():
        return None
    return account


def _user_id(s: Session, username: str) -> int | None:
    return s.scalars(select(col(User.id)).where(
        func.lower(col(User.username)) == username.lower())).first()


def _password_set_at(s: Session, user_id: int | None) -> datetime | None:
    if user_id is None:
        return None
    return as_utc(s.scalar(select(func.max(col(AuditLog.at))).where(
        col(AuditLog.table_name) == "user", col(AuditLog.record_id) == str(user_id),
        col(AuditLog.action).in_(PASSWORD_EVENTS))))


def signed_out_at(engine: Engine, username: str) -> datetime | None:
    """When this user last signed out, was signed out, or got a new password; a re-login
    cookie issued before then is no longer honoured, so signing out (or a new password) ends
    every saved sign-in of theirs."""
    with Session(engine) as s:
        out = as_utc(s.scalar(select(func.max(col(AuditLog.at))).where(
            func.lower(col(AuditLog.actor)) == username.lower(),
            col(AuditLog.action).in_(SIGN_OUTS))))
        changed = _password_set_at(s, _user_id(s, username))
    return max((t for t in (out, changed) if t is not None), default=None)


def locked_until(engine: Engine, username: str, attempts: int, minutes: float,
                 now: datetime | None = None) -> datetime | None:
    """Until when sign-in under this name is refused, or None when it is open.

    A name is locked for `minutes` after its `attempts`-th failed sign-in within `minutes`
    with no good sign-in or new password since. It works on the name typed, known or not, so
    the lock tells nobody whether an account exists [DESIGN, not a clinical number]."""
    now = now or datetime.now(UTC)
    name = (username or "").strip()[:100].lower()
    if not name:
        return None
    with Session(engine) as s:
        since = now - timedelta(minutes=minutes)
        good = as_utc(s.scalar(select(func.max(col(AuditLog.at))).where(
            func.lower(col(AuditLog.actor)) == name, col(AuditLog.action) == "login")))
        for t in (good, _password_set_at(s, _user_id(s, name))):
            if t is not None and t > since:
                since = t
        failures = [as_utc(at) for at in s.scalars(
            select(col(AuditLog.at)).where(func.lower(col(AuditLog.actor)) == name,
                                           col(AuditLog.action) == "login_failed",
                                           col(AuditLog.at) > since)
            .order_by(col(AuditLog.at).desc()).limit(attempts))]
    if len(failures) < attempts:
        return None
    until = failures[0] + timedelta(minutes=minutes)
    return until if until > now else None


def cookie_key(engine: Engine, configured: str | None = None) -> str:
    """The secret that signs the sign-in cookie: `configured` (CARTWATCH_COOKIE_KEY) if given,
    else a random key made once and kept in SiteSetting, shared by every server on the
    database. The key itself never goes to the audit log."""
    if configured:
        return configured
    with Session(engine) as s:
        row = s.get(SiteSetting, COOKIE_KEY_SETTING)
        if row is not None and row.value.get("value"):
            return str(row.value["value"])
    key = secrets.token_urlsafe(32)
    try:
        with session_scope(engine) as s:
            s.add(SiteSetting(key=COOKIE_KEY_SETTING, value={"value": key},
                              updated_by="system", updated_at=datetime.now(UTC)))
            audit.record(s, actor="system", action="setting", table_name="sitesetting",
                         record_id=COOKIE_KEY_SETTING, after={"value": "(secret, not shown)"},
                         reason="sign-in cookie key generated")
    except IntegrityError:  # another server stored one first: use theirs
        pass
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise
    with Session(engine) as s:
        row = s.get(SiteSetting, COOKIE_KEY_SETTING)
        return str(row.value["value"]) if row is not None else key

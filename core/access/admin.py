"""Account administration: the list of users, passwords (a user's own change, an admin's reset),
roles, deactivation and the first admin. Every change is audited (never a password), and every
write checks the caller's role (core.access.permissions). A new password ends every saved sign-in
of the user and reopens a locked name (core.access.accounts reads the audit for that).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from core.access.permissions import require
from core.access.users import check_new_password, check_password, hash_password, is_external
from core.store import audit
from core.store.db import session_scope
from core.store.faults import reraise_storage_fault
from core.store.models import Role, User

FIRST_ADMIN = "admin"


def list_users(engine: Engine) -> list[dict[str, Any]]:
    """Every user (active or not) without the password hash, by user name."""
    with Session(engine) as s:
        return [{"username": u.username, "name": u.display_name, "role": str(Role(u.role).value),
                 "active": u.is_active, "created_at": u.created_at}
                for u in s.scalars(select(User).order_by(col(User.username))).all()]


def _find(s: Session, username: str) -> User:
    user = s.scalars(select(User).where(
        func.lower(col(User.username)) == username.lower())).first()
    if user is None:
        raise ValueError(f"There is no user {username!r}.")
    return user


def change_own_password(engine: Engine, username: str, current: str, new: str, *,
                        actor_role: str | None) -> None:
    """A signed-in user sets a new password, giving the current one. Audited (never the
    password); every saved sign-in of theirs ends."""
    require(actor_role, "own_account")
    check_new_password(new)
    if new == current:
        raise ValueError("the new password is the same as the current one")
    try:
        with session_scope(engine) as s:
            user = _find(s, username)
            if is_external(user.password_hash):
                raise ValueError("You sign in through your organisation's account; change "
                                 "your password there. Nothing was changed.")
            if not user.is_active or not check_password(current, user.password_hash):
                raise ValueError("The current password is wrong. Nothing was changed.")
            user.password_hash = hash_password(new)
            s.add(user)
            audit.record(s, actor=user.username, action="password_changed", table_name="user",
                         record_id=user.id, after={"username": user.username},
                         reason="own password changed")
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise


def reset_password(engine: Engine, username: str, new: str, actor: str, *,
                   actor_role: str | None) -> None:
    """An admin sets a new password for a user (who forgot theirs, or was locked out): it
    reopens a locked name and ends every saved sign-in of theirs. Audited."""
    require(actor_role, "manage_users")
    check_new_password(new)
    try:
        with session_scope(engine) as s:
            user = _find(s, username)
            if is_external(user.password_hash):
                raise ValueError(f"{user.username} signs in through the identity provider and "
                                 "has no password here; their password is set there.")
            user.password_hash = hash_password(new)
            s.add(user)
            audit.record(s, actor=actor, action="password_reset", table_name="user",
                         record_id=user.id, after={"username": user.username},
                         reason="password set by an admin")
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise


def _last_admin(s: Session, user: User) -> bool:
    if Role(user.role) != Role.ADMIN or not user.is_active:
        return False
    admins = s.scalar(select(func.count()).select_from(User).where(
        col(User.role) == Role.ADMIN.value, col(User.is_active).is_(True)))
    return (admins or 0) <= 1


def set_role(engine: Engine, username: str, role: str, actor: str, *,
             actor_role: str | None) -> None:
    """Give a user another role (it applies at their next click). Audited with the old and
    new role. An admin cannot change their own role, nor take the role of the last admin."""
    require(actor_role, "manage_users")
    if role not in {r.value for r in Role}:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}")
    try:
        with session_scope(engine) as s:
            user = _find(s, username)
            if Role(user.role).value == role:
                return
            if actor_role is not None and user.username.lower() == actor.lower():
                raise ValueError("You cannot change your own role; ask another admin.")
            if _last_admin(s, user):
                raise ValueError("This is the last active admin; make another admin first.")
            before = {"role": Role(user.role).value}
            user.role = Role(role)
            s.add(user)
            audit.record(s, actor=actor, action="set_role", table_name="user",
                         record_id=user.id, before=before,
                         after={"role": role, "username": user.username},
                         reason=f"role changed from {before['role']} to {role}")
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise


def set_active(engine: Engine, username: str, active: bool, actor: str, *,
               actor_role: str | None = None) -> None:
    """Deactivate (or reactivate) a user; nobody is ever deleted. Audited. `actor_role` (None =
    the operator's CLI) needs manage_users. An admin cannot deactivate themselves, and the
    last active admin cannot be deactivated (nobody could manage users any more)."""
    require(actor_role, "manage_users")
    try:
        with session_scope(engine) as s:
            user = s.scalars(select(User).where(col(User.username) == username)).first()
            if user is None:
                raise ValueError(f"There is no user {username!r}.")
            if user.is_active == active:
                return
            if not active and actor_role is not None and user.username.lower() == actor.lower():
                raise ValueError("You cannot deactivate your own account.")
            if not active and _last_admin(s, user):
                raise ValueError("This is the last active admin; make another admin first.")
            before = {"is_active": user.is_active}
            user.is_active = active
            s.add(user)
            audit.record(s, actor=actor, action="activate_user" if active else "deactivate_user",
                         table_name="user", record_id=user.id, before=before,
                         after={"is_active": active, "username": user.username},
                         reason="user reactivated" if active else "user deactivated")
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise


def create_first_admin(engine: Engine, actor: str = "init") -> str | None:
    """On a database with no user at all, create user "admin" (role admin) with a random
    password and return that password (to be shown once); otherwise return None."""
    from core.access.users import create_user

    with Session(engine) as s:
        if s.scalar(select(func.count()).select_from(User)):
            return None
    password = secrets.token_urlsafe(15)  # 20 characters, about 120 bits
    try:
        create_user(engine, FIRST_ADMIN, Role.ADMIN.value, password,
                    display_name="Administrator", actor=actor)
    except (ValueError, IntegrityError):  # a second `init` made it at the same moment
        return None
    return password

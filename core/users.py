"""Users and password hashes (bcrypt). Roles are checked in core for every write."""

from __future__ import annotations

import bcrypt
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core import audit
from core.db import session_scope
from core.faults import storage_guard
from core.models import Role, User
from core.permissions import require

MIN_PASSWORD_LENGTH = 10


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def check_new_password(password: str) -> None:
    """Refuse a password that is too short or padded (the sign-in form trims what is typed)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    if password != password.strip():
        raise ValueError("the password may not start or end with a space")


@storage_guard()
def create_user(engine: Engine, username: str, role: str, password: str,
                display_name: str | None = None, actor: str = "system", *,
                actor_role: str | None = None) -> User:
    """Add a user; a short password or an existing name is refused with a clear message.
    `actor_role` is the role of who is doing it (None = the operator's CLI): manage_users."""
    require(actor_role, "manage_users")
    if role not in {r.value for r in Role}:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}")
    username = username.strip()
    if not username or len(username) > 64:
        raise ValueError("the user name must have 1 to 64 characters")
    check_new_password(password)
    with session_scope(engine) as s:
        # sign-in matches names case-insensitively, so "Kim" and "kim" would be one account
        if s.execute(select(User).where(func.lower(User.username) == username.lower())).first():
            raise ValueError(f"user {username!r} already exists")
        user = User(username=username, display_name=display_name or username, role=Role(role),
                    password_hash=hash_password(password))
        s.add(user)
        s.flush()
        audit.record(s, actor=actor, action="create_user", table_name="user",
                     record_id=user.id, after={"username": username, "role": role},
                     reason="user created")
    return user

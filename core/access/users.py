"""Users, password hashes (bcrypt) and signed sign-in tokens. Roles are checked in core for
every write.

A user who signs in through the site's identity provider (core.access.identity) has no password
here: their `password_hash` is an unusable marker (`EXTERNAL_PREFIX` + the issuer), which no
password ever matches, so the local sign-in form can never open their account.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import bcrypt
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.access.permissions import require
from core.store import audit
from core.store.db import session_scope
from core.store.faults import storage_guard
from core.store.models import Role, User

MIN_PASSWORD_LENGTH = 10
EXTERNAL_PREFIX = "!sso:"  # password_hash of a single sign-on user: never a bcrypt hash
_TOKEN_CONTEXT = b"cartwatch-sign-in-token:"


def external_marker(issuer: str) -> str:
    """The password_hash of a user who signs in through the identity provider `issuer`."""
    return (EXTERNAL_PREFIX + (issuer or "identity provider"))[:200]


def is_external(password_hash: str) -> bool:
    return password_hash.startswith(EXTERNAL_PREFIX)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()


def check_password(password: str, hashed: str) -> bool:
    if is_external(hashed):  # a single sign-on user has no password here
        return False
    try:
        return bcrypt.checkpw(password.encode(), hashed.encode())
    except ValueError:
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_token(key: str, username: str, lifetime_seconds: float,
                now: float | None = None) -> str:
    """A sign-in token for the browser's re-login cookie: the user name, when it was issued
    and when it ends, signed with `key` (HMAC-SHA256). core.access.accounts.token_account checks it
    against the user's sign-outs, so it is also revocable."""
    now = time.time() if now is None else now
    body = _b64(json.dumps({"u": username, "iat": now, "exp": now + lifetime_seconds},
                           separators=(",", ":")).encode())
    mac = hmac.new(key.encode(), _TOKEN_CONTEXT + body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def read_token(key: str, token: str, now: float | None = None) -> tuple[str, float] | None:
    """(user name, issued at) of a well-signed, unexpired token from `issue_token`, else
    None (a forged, altered, malformed or expired token)."""
    now = time.time() if now is None else now
    body, _, mac = (token or "").partition(".")
    if not body or not mac:
        return None
    want = hmac.new(key.encode(), _TOKEN_CONTEXT + body.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        data = json.loads(_unb64(body))
        username, issued, ends = str(data["u"]), float(data["iat"]), float(data["exp"])
    except (ValueError, KeyError, TypeError):
        return None
    return (username, issued) if ends > now else None


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
        if s.execute(select(User).where(
                func.lower(col(User.username)) == username.lower())).first():
            raise ValueError(f"user {username!r} already exists")
        user = User(username=username, display_name=display_name or username, role=Role(role),
                    password_hash=hash_password(password))
        s.add(user)
        s.flush()
        audit.record(s, actor=actor, action="create_user", table_name="user",
                     record_id=user.id, after={"username": username, "role": role},
                     reason="user created")
    return user

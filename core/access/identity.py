"""Single sign-on (OpenID Connect): who an identity provider's claims are here, and with which
role, denying by default.

The site TOML (Settings.site_config) says how::

    [oidc]
    label = "Hospital account"       # the sign-in button reads "Sign in with Hospital account"
    provider = "hospital"            # optional: the [auth.hospital] secrets; default: [auth]
    groups_claim = "groups"          # claim(s) holding groups or app roles: a name or a list
    username_claim = "preferred_username"  # optional: default preferred_username, email, sub
    contact = "the CAR-T unit's coordinator"  # optional: whom a refused user should ask

    [[oidc.role]]
    group = "cart-clinicians"        # a value of the groups claim, exactly as the IdP sends it
    role = "clinician"               # display, viewer, nurse, clinician or admin

A user in none of the mapped groups is refused (deny by default); in several, the highest
role wins. At each sign-in the user's row is created (first time) or its role brought in
line with the claims, audited; the row's password hash is an unusable marker
(core.access.users.external_marker), so the local sign-in form never opens it. The client secret
and the cookie secret never come here: they are Streamlit's `[auth]` secrets.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from core.access.accounts import Account, audit_sign_in
from core.access.users import external_marker, is_external
from core.config import site_section
from core.store import audit
from core.store.db import session_scope
from core.store.faults import reraise_storage_fault
from core.store.models import Role, User

log = logging.getLogger(__name__)

ROLE_ORDER = [r.value for r in Role]  # display < viewer < nurse < clinician < admin
DEFAULT_USERNAME_CLAIMS = ("preferred_username", "email", "sub")
DEFAULT_CONTACT = "the ward's CAR-T Watch admin"
_KEYS = {"label", "provider", "groups_claim", "username_claim", "contact", "role"}
MAX_USERNAME = 64


class OidcConfigError(ValueError):
    """The [oidc] part of the site configuration cannot be used as written."""


@dataclass(frozen=True)
class OidcConfig:
    label: str = "single sign-on"
    provider: str | None = None  # None: Streamlit's default provider (the [auth] table)
    groups_claims: tuple[str, ...] = ("groups",)
    username_claims: tuple[str, ...] = DEFAULT_USERNAME_CLAIMS
    contact: str = DEFAULT_CONTACT
    roles: tuple[tuple[str, str], ...] = ()  # (group, role)
    source: str = "<string>"


def _names(value: object, where: str, source: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if (not isinstance(items, list) or not items
            or not all(isinstance(v, str) and v.strip() for v in items)):
        raise OidcConfigError(f"{source}: [oidc] {where} must be a claim name or a list of "
                              f"claim names, not {value!r}")
    return tuple(v.strip() for v in items)


def parse_oidc_config(data: Mapping[str, Any] | str,
                      source: str = "<string>") -> OidcConfig | None:
    """The [oidc] table of a site TOML (the whole document, as text or parsed), or None when
    there is none (single sign-on off). Raises OidcConfigError naming the file and key."""
    table = site_section(data, "oidc", _KEYS, source=source, error=OidcConfigError)
    if table is None:
        return None
    texts: dict[str, str] = {}
    for key in ("label", "provider", "contact"):
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise OidcConfigError(f"{source}: [oidc] {key} must be a non-empty text, "
                                  f"not {value!r}")
        if value is not None:
            texts[key] = value.strip()
    if "_" in texts.get("provider", ""):
        raise OidcConfigError(f"{source}: [oidc] provider {texts['provider']!r}: Streamlit "
                              "allows no underscore in a provider name")
    rows = table.get("role", [])
    if not isinstance(rows, list) or not rows:
        raise OidcConfigError(f"{source}: [oidc] needs at least one [[oidc.role]] with group "
                              "and role: without one, nobody could sign in")
    roles = []
    for i, row in enumerate(rows, 1):
        where = f"[[oidc.role]] #{i}"
        if not isinstance(row, dict) or set(row) != {"group", "role"}:
            raise OidcConfigError(f"{source}: {where} must have exactly the keys group and "
                                  f"role, not {row!r}")
        group, role = row["group"], row["role"]
        if not isinstance(group, str) or not group.strip():
            raise OidcConfigError(f"{source}: {where} group must be a non-empty text")
        if role not in ROLE_ORDER:
            raise OidcConfigError(f"{source}: {where} role {role!r} is not a role; use one of "
                                  f"{', '.join(ROLE_ORDER)}")
        roles.append((group.strip(), str(role)))
    return OidcConfig(
        label=texts.get("label", OidcConfig.label), provider=texts.get("provider"),
        groups_claims=_names(table.get("groups_claim", "groups"), "groups_claim", source),
        username_claims=_names(table.get("username_claim", list(DEFAULT_USERNAME_CLAIMS)),
                               "username_claim", source),
        contact=texts.get("contact", DEFAULT_CONTACT), roles=tuple(roles), source=source)


@lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int]) -> OidcConfig | None:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise OidcConfigError(f"cannot read site configuration {path}: {exc.strerror}") from None
    return parse_oidc_config(text, source=path)


def load_oidc_config(path: Path | str | None) -> OidcConfig | None:
    """[oidc] of the site file at `path` (None: no file, single sign-on off); parsed once per
    version of the file."""
    if path is None:
        return None
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise OidcConfigError(f"cannot read site configuration {path}: {exc.strerror}") from None
    return _load(str(path), (st.st_mtime_ns, st.st_size))


def groups_in(config: OidcConfig, claims: Mapping[str, Any]) -> list[str]:
    """Every group (or app role) the claims name, from each configured claim: a list, or a
    single text. Anything else (missing, a number) names none."""
    out: list[str] = []
    for name in config.groups_claims:
        value = claims.get(name)
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        out += [v for v in values if isinstance(v, str) and v not in out]
    return out


def role_for(config: OidcConfig, claims: Mapping[str, Any]) -> str | None:
    """The highest role any of the user's groups maps to; None (refused) when none does."""
    groups = set(groups_in(config, claims))
    matched = [role for group, role in config.roles if group in groups]
    return max(matched, key=ROLE_ORDER.index) if matched else None


def username_for(config: OidcConfig, claims: Mapping[str, Any]) -> str | None:
    """The first configured claim that holds a non-empty text, stripped."""
    for name in config.username_claims:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def expired(claims: Mapping[str, Any], now: float | None = None) -> bool:
    """Whether the ID token's `exp` has passed (a token without a usable exp counts as
    expired: the session would otherwise never end on the provider's say)."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return True
    return float(exp) <= (time.time() if now is None else now)


@dataclass(frozen=True)
class ExternalSignIn:
    """The outcome of a sign-in through the identity provider: the account, or the sentence
    that says why not (`refusal`)."""

    username: str
    account: Account | None = None
    refusal: str | None = None


def sign_in_external(engine: Engine, config: OidcConfig, claims: Mapping[str, Any]
                     ) -> ExternalSignIn:
    """Let the user the claims describe in, with the role their groups map to, or refuse.

    First sign-in creates the user row; later ones bring its role (and name) in line with
    the claims. Every outcome is audited: the sign-in (method oidc), a refusal with why, a
    new user, a role that changed. A user name that belongs to a local account, or a user
    deactivated here, is refused."""
    username = username_for(config, claims)
    issuer = str(claims.get("iss") or config.label)
    ask = f"ask {config.contact}"
    if username is None or len(username) > MAX_USERNAME:
        why = (f"{config.label} sent no usable user name (claims tried: "
               f"{', '.join(config.username_claims)}); {ask}.")
        return _refuse(engine, username or str(claims.get("sub") or "(unknown)"), why,
                       issuer, [])
    groups = groups_in(config, claims)
    role = role_for(config, claims)
    if role is None:
        why = (f"Your account {username} is not in a group that may use CAR-T Watch; {ask} "
               "to add you to one.")
        return _refuse(engine, username, why, issuer, groups)
    name = claims.get("name") if isinstance(claims.get("name"), str) else None
    for attempt in (1, 2):  # a second tab's first sign-in may create the row at the same time
        try:
            return _admit(engine, config, username, role, (name or username).strip()[:120],
                          issuer, groups)
        except IntegrityError:
            if attempt == 2:
                raise
        except DBAPIError as exc:
            reraise_storage_fault(exc)
            raise
    raise AssertionError("unreachable")


def _refuse(engine: Engine, username: str, why: str, issuer: str,
            groups: list[str]) -> ExternalSignIn:
    log.info("single sign-on refused for %s: %s", username, why)
    try:
        with session_scope(engine) as s:
            audit_sign_in(s, username, "login_refused", method="oidc",
                          detail={"why": why, "issuer": issuer, "groups": groups[:20]})
    except DBAPIError as exc:
        reraise_storage_fault(exc)
        raise
    return ExternalSignIn(username, refusal=why)


def _admit(engine: Engine, config: OidcConfig, username: str, role: str, name: str,
           issuer: str, groups: list[str]) -> ExternalSignIn:
    ask = f"ask {config.contact}"
    with session_scope(engine) as s:
        user = s.scalars(select(User).where(
            func.lower(col(User.username)) == username.lower())).first()
        why = None
        if user is not None and not is_external(user.password_hash):
            why = (f"The user name {user.username} belongs to a local account here, so it "
                   f"cannot sign in through {config.label}; {ask}.")
        elif user is not None and not user.is_active:
            why = f"Your account {user.username} has been deactivated in CAR-T Watch; {ask}."
        if why:
            audit_sign_in(s, username, "login_refused", method="oidc",
                          detail={"why": why, "issuer": issuer})
            log.info("single sign-on refused for %s: %s", username, why)
            return ExternalSignIn(username, refusal=why)
        user = _upsert(s, user, username, role, name, issuer, groups)
        audit_sign_in(s, user.username, "login", method="oidc",
                      detail={"issuer": issuer, "role": role})
        account = Account(user.username, user.display_name, role, user.password_hash)
    return ExternalSignIn(account.username, account=account)


def _upsert(s: Session, user: User | None, username: str, role: str, name: str, issuer: str,
            groups: list[str]) -> User:
    via = f"from the identity provider's groups at sign-in ({', '.join(groups[:10])})"
    if user is None:
        user = User(username=username, display_name=name, role=Role(role),
                    password_hash=external_marker(issuer))
        s.add(user)
        s.flush()
        audit.record(s, actor=username, action="create_user", table_name="user",
                     record_id=user.id,
                     after={"username": username, "role": role, "sign_in": "oidc"},
                     reason=f"user created at first single sign-on, role {role} {via}"[:1000])
        return user
    before = {"role": Role(user.role).value, "display_name": user.display_name}
    if before == {"role": role, "display_name": name}:
        return user
    user.role, user.display_name = Role(role), name
    s.add(user)
    action = "set_role" if before["role"] != role else "update_user"
    audit.record(s, actor=user.username, action=action, table_name="user",
                 record_id=user.id, before=before,
                 after={"role": role, "display_name": name, "username": user.username},
                 reason=(f"role changed from {before['role']} to {role} {via}"
                         if action == "set_role" else f"name updated {via}")[:1000])
    return user

"""Sign-in for the dashboard: single sign-on through the site's identity provider (Streamlit's
st.login, see dashboard.auth.oidc), a plain local form over core.access.accounts
(dashboard.auth.local),
idle and token expiry, the huddle TV's display token, and who is signed in.

A signed-in session holds, in st.session_state (server side; a browser cannot set it):
`auth_username`, `auth_name`, `auth_role`, `auth_kind` ("local" or "oidc"), `auth_seen` (the
time of the last activity) and, for single sign-on, `auth_exp` (when the provider's ID token
ends). Every run re-reads the account, so a deactivated user is signed out at their next
click and a changed role applies at once.
"""

from __future__ import annotations

import hmac
import logging
import time
from dataclasses import dataclass

import streamlit as st

from core.access.accounts import Account, active_account, record_sign_in
from core.access.permissions import PERMISSIONS
from core.config import Settings
from core.store.faults import StorageFault
from core.store.models import Role
from dashboard.auth import local, oidc
from dashboard.resources import prefetch_modules

log = logging.getLogger(__name__)
MIN_DISPLAY_TOKEN = 16  # a shorter CARTWATCH_DISPLAY_TOKEN leaves the display path off
KEYS = ("auth_username", "auth_name", "auth_role", "auth_seen", "auth_kind", "auth_exp",
        "auth_token", "auth_token_at")
MESSAGES = {
    "logout": "You are signed out.",
    "session_expired": "You were signed out after {minutes} minutes without activity. "
                       "Sign in again.",
    "account_inactive": "Your account is no longer active. Ask an admin.",
    "token_expired": "Your sign-in has expired. Sign in again.",
}


@dataclass(frozen=True)
class SignedIn:
    username: str
    name: str
    role: str
    kind: str = "local"  # "local" (password) or "oidc" (the identity provider)


def current() -> SignedIn | None:
    """Who is signed in to this session, or None."""
    ss = st.session_state
    if ss.get("auth_username") and ss.get("auth_role"):
        return SignedIn(ss["auth_username"], ss.get("auth_name") or ss["auth_username"],
                        ss["auth_role"], ss.get("auth_kind") or "local")
    return None


def session_values(account: Account, now: float | None = None, kind: str = "local",
                   exp: float | None = None) -> dict[str, object]:
    """What a good sign-in leaves in st.session_state (tests set the same to skip the form)."""
    now = time.time() if now is None else now
    return {"auth_username": account.username, "auth_name": account.name,
            "auth_role": account.role, "auth_seen": now, "auth_kind": kind, "auth_exp": exp}


def start_session(account: Account, kind: str = "local", exp: float | None = None) -> None:
    st.session_state.update(session_values(account, kind=kind, exp=exp))
    st.session_state.pop("auth_refusal", None)


def display_allowed(settings: Settings, given: str | None) -> bool:
    """Whether `given` (the URL's `display`) is the configured display token."""
    token = settings.display_token
    if not token or len(token) < MIN_DISPLAY_TOKEN or not given:
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def may(user: SignedIn | None, action: str) -> bool:
    """Whether the signed-in user may do `action` (a signed-out session may do nothing)."""
    return user is not None and user.role in PERMISSIONS[action]


def refuse_page(user: SignedIn, title: str, action: str) -> None:
    who = ", ".join(r.value for r in Role if r.value in PERMISSIONS[action])
    st.error(f"**{title}** is not open to a {user.role}: it needs one of {who}. "
             "Ask an admin if you need it.", icon=":material/block:")
    st.stop()


def gate(engine, settings: Settings) -> SignedIn | None:  # noqa: ANN001
    """The signed-in user for this run, or None (then `sign_in_page` must run).

    A session starts from the identity provider's sign-in (st.user) or the local re-login
    cookie; it ends when asked to, after the idle time, when the provider's ID token expires,
    or when the account was deactivated. Ending a single sign-on session also ends the
    provider's sign-in in this browser (st.logout), so the next visit starts afresh."""
    ss = st.session_state
    user = current()
    if user is None:
        return _resume(engine, settings)
    now = time.time()
    reason, account = None, None
    if ss.pop("auth_sign_out", False):
        reason = "logout"
    elif now - float(ss.get("auth_seen") or 0) > settings.idle_minutes * 60:
        reason = "session_expired"
    elif user.kind == "oidc" and float(ss.get("auth_exp") or 0) <= now:
        reason = "token_expired"
    else:
        account = active_account(engine, user.username)
        if account is None:
            reason = "account_inactive"
    if reason or account is None:
        _end(engine, settings, user, reason or "account_inactive")
        return None
    ss["auth_seen"] = now
    ss["auth_name"], ss["auth_role"] = account.name, account.role
    return current()


def _resume(engine, settings: Settings) -> SignedIn | None:  # noqa: ANN001
    """Start a session from the provider's sign-in or the local re-login cookie, if any."""
    ss = st.session_state
    config, _problem = oidc.site(settings)
    if config is not None and (claims := oidc.claims()) is not None:
        from core.access import identity

        if identity.expired(claims):  # a saved provider sign-in that has run out
            username = identity.username_for(config, claims) or str(claims.get("sub"))
            audit(engine, username, "token_expired", "oidc")
            oidc.sign_out()
        key = (claims.get("iss"), claims.get("sub"), claims.get("iat"))
        if ss.get("auth_refused") != key:  # refused once in this session: say so, no more
            try:
                result = identity.sign_in_external(engine, config, claims)
            except StorageFault as exc:
                result = identity.ExternalSignIn("", refusal="Signing in could not be recorded "
                                                 f"in the audit log, so it is refused: {exc}")
            if result.account is not None:
                start_session(result.account, "oidc", float(claims["exp"]))
                return current()
            ss["auth_refused"], ss["auth_refusal"] = key, result.refusal
    account = local.from_cookie(engine, settings)
    if account is not None:
        start_session(account)
        return current()
    return None


def _end(engine, settings: Settings, user: SignedIn, reason: str) -> None:  # noqa: ANN001
    ss = st.session_state
    for key in KEYS:
        ss.pop(key, None)
    audit(engine, user.username, reason, user.kind)
    ss["auth_message"] = MESSAGES[reason].format(minutes=f"{settings.idle_minutes:g}")
    if user.kind == "oidc":
        oidc.sign_out()  # the browser goes to the provider's sign-out and back
    ss["auth_forget_cookie"] = True


def sidebar(engine, settings: Settings, user: SignedIn) -> None:  # noqa: ANN001
    """Who is signed in, with their role, and the sign-out button (call inside st.sidebar)."""
    st.markdown(f"Signed in as **{user.name}**  \n`{user.username}` · {user.role}")
    if user.kind == "oidc":
        config, _problem = oidc.site(settings)
        st.caption(f"Through {config.label if config else 'single sign-on'}.")
    if user.kind == "local":  # before the button: a page opened once it shows stays signed in
        local.keep_cookie(engine, settings, user.username)
    st.button("Sign out", key="auth_logout", icon=":material/logout:",
              on_click=lambda: st.session_state.update(auth_sign_out=True))


def sign_in_page(engine, settings: Settings) -> None:  # noqa: ANN001
    """The sign-in page: "Sign in with <provider>" when single sign-on is set up, and the
    local form. A good sign-in starts the session and reruns; otherwise it stops."""
    ss = st.session_state
    st.title("CAR-T Watch")
    if message := ss.get("auth_message"):
        st.info(message, icon=":material/info:")
    if ss.pop("auth_forget_cookie", False):
        local.forget_cookie()
    config, problem = oidc.site(settings)
    if problem:
        st.warning(problem, icon=":material/warning:")
    if config is not None:
        oidc.sign_in_choice(engine, config)
    account = local.form(engine, settings, heading=(
        "Or sign in with a local account" if config is not None else "Sign in"))
    if account is not None:
        start_session(account)
        ss.pop("auth_message", None)
        st.rerun()
    st.caption("No account yet? Ask the ward's admin to make one.")
    # the pages' element modules load while the user signs in, not when a page draws them
    prefetch_modules()
    st.stop()


def audit(engine, username: str, action: str, method: str | None = None) -> None:  # noqa: ANN001
    try:
        record_sign_in(engine, username, action, method=method)
    except StorageFault as exc:  # reading still works on a read-only database
        log.warning("sign-in event %s of %s not audited: %s", action, username, exc)
        st.warning(f"This sign-in could not be written to the audit log: {exc}")

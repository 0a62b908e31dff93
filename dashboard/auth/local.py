"""Local sign-in: a plain form over core.access.accounts (bcrypt, lockout, audit), and the re-login
cookie that keeps a browser signed in across reloads and tabs for the idle time.

The cookie holds a token signed with the cookie key (CARTWATCH_COOKIE_KEY, or a random key
kept in the database): user name, issued at, ends at (core.access.users.issue_token). It is honoured
only while the account is active and the user has not signed out, been signed out or had a
new password since it was issued (core.access.accounts.token_account), so signing out anywhere ends
it. It is renewed while the user is active and lasts the idle time. It is written by the page
(Streamlit sets no cookie of an app's own), so it cannot be HttpOnly: serve over HTTPS.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
import time

import streamlit as st

from core.access.accounts import Account, password_sign_in, record_sign_in, token_account
from core.access.users import issue_token
from core.config import Settings
from core.store.faults import StorageFault
from dashboard import resources

log = logging.getLogger(__name__)
COOKIE_NAME = "cartwatch_signin"


def form(engine, settings: Settings, heading: str = "Sign in") -> Account | None:  # noqa: ANN001
    """User name, password and "Sign in" (Enter submits). The account on a good sign-in,
    else None with the reason shown under the form."""
    with st.form("auth_login_form", border=True):
        st.subheader(heading)
        typed = st.text_input("User name", key="auth_form_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="auth_form_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return None
    result = password_sign_in(engine, typed, password, attempts=settings.lockout_attempts,
                              minutes=settings.lockout_minutes)
    if result.audit_error:
        st.warning(f"This sign-in could not be written to the audit log: {result.audit_error}")
    if result.account is not None:
        return result.account
    if result.locked_until is not None:
        local = result.locked_until.astimezone(settings.tz).strftime("%H:%M")
        st.error(f"Too many failed sign-ins under this user name. Try again after {local} "
                 f"({settings.ward_tz}), or ask an admin to set a new password.",
                 icon=":material/lock_clock:")
    else:
        st.error("Wrong user name or password.", icon=":material/error:")
    return None


def from_cookie(engine, settings: Settings) -> Account | None:  # noqa: ANN001
    """The account this browser's re-login cookie stands for (audited as a sign-in), or None.
    A cookie is looked at once per session: the browser's cookies are those it sent when the
    session opened."""
    ss = st.session_state
    token = st.context.cookies.get(COOKIE_NAME)
    if not isinstance(token, str) or not token or ss.get("auth_cookie_seen") == token:
        return None
    ss["auth_cookie_seen"] = token
    account = token_account(engine, cookie_key(engine, settings), token)
    if account is None:
        ss["auth_forget_cookie"] = True
        return None
    try:
        record_sign_in(engine, account.username, "login", method="cookie")
    except StorageFault as exc:  # reading still works on a read-only database
        log.warning("sign-in of %s by cookie not audited: %s", account.username, exc)
    ss["auth_token"], ss["auth_token_at"] = token, time.time()
    return account


def keep_cookie(engine, settings: Settings, username: str) -> None:  # noqa: ANN001
    """Write (and, at most every half idle time, renew) the re-login cookie."""
    ss = st.session_state
    life = settings.idle_minutes * 60
    if not ss.get("auth_token") or time.time() - float(ss.get("auth_token_at") or 0) > life / 2:
        ss["auth_token"] = issue_token(cookie_key(engine, settings), username, life)
        ss["auth_token_at"] = time.time()
    _cookie_script(str(ss["auth_token"]), int(life))


def forget_cookie() -> None:
    _cookie_script("", 0)


def _cookie_script(value: str, max_age: int) -> None:
    cookie = json.dumps(f"{COOKIE_NAME}={value}; Max-Age={max_age}; Path=/; SameSite=Lax")
    st.html(f"<script>document.cookie = {cookie} + (location.protocol === 'https:' ? "
            f"'; Secure' : '');</script>", unsafe_allow_javascript=True)


def cookie_key(engine, settings: Settings) -> str:  # noqa: ANN001
    try:
        return resources.cookie_key(engine, settings.database_url, settings.cookie_key)
    except StorageFault:  # a read-only database cannot keep a new key: this process only
        return _process_key()


@functools.cache
def _process_key() -> str:
    return secrets.token_urlsafe(32)

"""Sign-in for the dashboard: streamlit-authenticator 0.4 over the User table, idle expiry, the
huddle TV's display token, and who is signed in.

A signed-in session holds, in st.session_state (server side; a browser cannot set it):
`auth_username`, `auth_name`, `auth_role` (what `start_session` sets after a good sign-in)
and `auth_seen`, the time of the last activity. Every run re-reads the account, so a
deactivated user is signed out at their next click and a changed role applies at once.

The authenticator's re-login cookie (a JWT signed with the cookie key: CARTWATCH_COOKIE_KEY, or
a random key kept in the database) is renewed while the user is active and lasts the idle
time, so it never outlives a session the server would have signed out.
"""

from __future__ import annotations

import functools
import hmac
import time
from dataclasses import dataclass

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities import LoginError

from core.accounts import (
    Account,
    active_account,
    active_accounts,
    locked_until,
    record_sign_in,
    signed_out_at,
)
from core.config import Settings
from core.faults import StorageFault
from core.models import Role
from core.permissions import PERMISSIONS
from core.users import check_password, hash_password
from dashboard import resources

COOKIE_NAME = "cartwatch_signin"
MIN_DISPLAY_TOKEN = 16  # a shorter CARTWATCH_DISPLAY_TOKEN leaves the display path off
KEYS = ("auth_username", "auth_name", "auth_role", "auth_seen", "auth_cookie_at")
FIELDS = {"Form name": "Sign in", "Username": "User name", "Password": "Password",
          "Login": "Sign in"}
MESSAGES = {
    "logout": "You are signed out.",
    "session_expired": "You were signed out after {minutes} minutes without activity. "
                       "Sign in again.",
    "account_inactive": "Your account is no longer active. Ask an admin.",
}


@dataclass(frozen=True)
class SignedIn:
    username: str
    name: str
    role: str


def current() -> SignedIn | None:
    """Who is signed in to this session, or None."""
    ss = st.session_state
    if ss.get("auth_username") and ss.get("auth_role"):
        return SignedIn(ss["auth_username"], ss.get("auth_name") or ss["auth_username"],
                        ss["auth_role"])
    return None


def session_values(account: Account, now: float | None = None) -> dict[str, object]:
    """What a good sign-in leaves in st.session_state (tests set the same to skip the form)."""
    now = time.time() if now is None else now
    return {"auth_username": account.username, "auth_name": account.name,
            "auth_role": account.role, "auth_seen": now, "auth_cookie_at": now,
            # the authenticator's own keys, as its login leaves them (its cookie uses them)
            "authentication_status": True, "username": account.username.lower(),
            "name": account.name}


def start_session(account: Account) -> None:
    st.session_state.update(session_values(account))


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
    """The signed-in user for this run, or None (then `sign_in_page` must run). Signs the
    session out when asked to, after the idle time, or when the account was deactivated."""
    ss = st.session_state
    user = current()
    if user is None:
        return None
    now = time.time()
    reason, account = None, None
    if ss.pop("auth_sign_out", False):
        reason = "logout"
    elif now - float(ss.get("auth_seen") or 0) > settings.idle_minutes * 60:
        reason = "session_expired"
    else:
        account = active_account(engine, user.username)
        if account is None:
            reason = "account_inactive"
    if reason or account is None:
        ss["auth_pending"] = (user.username, reason)
        for key in KEYS:
            ss.pop(key, None)
        return None
    ss["auth_seen"] = now
    ss["auth_name"], ss["auth_role"] = account.name, account.role
    ss.pop("auth_opening", None)
    return current()


def sidebar(engine, settings: Settings, user: SignedIn) -> None:  # noqa: ANN001
    """Who is signed in, with their role, and the sign-out button (call inside st.sidebar)."""
    st.markdown(f"Signed in as **{user.name}**  \n`{user.username}` · {user.role}")
    st.button("Sign out", key="auth_logout", icon=":material/logout:",
              on_click=lambda: st.session_state.update(auth_sign_out=True))
    ss = st.session_state
    if time.time() - float(ss.get("auth_cookie_at") or 0) > settings.idle_minutes * 30:
        # renew the re-login cookie at most every half idle time, while the user is active
        _authenticator(engine, settings, []).cookie_controller.set_cookie()
        ss["auth_cookie_at"] = time.time()


def sign_in_page(engine, settings: Settings) -> None:  # noqa: ANN001
    """The sign-in form. A good sign-in starts the session and reruns; otherwise it stops."""
    ss = st.session_state
    st.title("CAR-T Watch")
    # the notice has a fixed place, before the cookie components: a sign-out run renders one
    # more component than the run after it, which would otherwise show the notice twice
    notice = st.container()
    accounts = active_accounts(engine)
    authenticator = _authenticator(engine, settings, accounts)
    if pending := ss.pop("auth_pending", None):  # finish a sign-out that `gate` started
        username, reason = pending
        authenticator.authentication_controller.logout()
        authenticator.cookie_controller.delete_cookie()
        _audit(engine, username, reason)
        ss["auth_message"] = MESSAGES[reason].format(minutes=f"{settings.idle_minutes:g}")
    if message := ss.get("auth_message"):
        notice.info(message, icon=":material/info:")
    attempts = _watch(engine, settings, authenticator)
    if ss.get("authentication_status") is False:
        ss["authentication_status"] = None  # each attempt is judged on its own
    try:
        authenticator.login(location="main", key="auth_login", fields=FIELDS)
    except LoginError:  # a re-login cookie of an account that is no longer active
        authenticator.cookie_controller.delete_cookie()
        ss["logout"] = True  # the authenticator then ignores the cookie
        authenticator.login(location="main", key="auth_login", fields=FIELDS)
    names = {a.username.lower(): a.username for a in accounts}
    for typed, method, ok in attempts:  # a good sign-in under the name as stored
        _audit(engine, names.get(typed.lower().strip(), typed) if ok else typed,
               "login" if ok else "login_locked" if method == "locked" else "login_failed",
               None if method == "locked" else method)
    if ss.get("authentication_status"):
        account = next(a for a in accounts if a.username.lower() == ss["username"])
        start_session(account)
        ss.pop("auth_message", None)
        if attempts and attempts[-1][1] == "cookie":
            st.rerun()
        # no rerun yet: the cookie component must reach the browser first; it reruns the
        # app itself once the cookie is set (the fragment is a fallback if it does not)
        st.success(f"Signed in as {account.name}. Opening…", icon=":material/check:")
        _open_after_sign_in()
        st.stop()
    if until := ss.pop("auth_locked_until", None):
        local = until.astimezone(settings.tz).strftime("%H:%M")
        st.error(f"Too many failed sign-ins under this user name. Try again after {local} "
                 f"({settings.ward_tz}), or ask an admin to set a new password.",
                 icon=":material/lock_clock:")
    elif any(not ok for _n, _m, ok in attempts):
        st.error("Wrong user name or password.", icon=":material/error:")
    st.caption("No account yet? Ask the ward's admin to make one.")
    st.stop()


@st.fragment(run_every=3)
def _open_after_sign_in() -> None:
    if st.session_state.get("auth_opening"):
        st.rerun()
    st.session_state["auth_opening"] = True  # the first timed run reruns the app


def _authenticator(engine, settings: Settings,  # noqa: ANN001
                   accounts: list[Account]) -> stauth.Authenticate:
    creds = {"usernames": {a.username.lower(): {"name": a.name, "password": a.password_hash,
                                                "roles": [a.role], "email": None}
                           for a in accounts}}
    return stauth.Authenticate(creds, COOKIE_NAME, _cookie_key(engine, settings),
                               cookie_expiry_days=settings.idle_minutes / (24 * 60),
                               auto_hash=False, login_sleep_time=0)


def _cookie_key(engine, settings: Settings) -> str:  # noqa: ANN001
    try:
        return resources.cookie_key(engine, settings.database_url, settings.cookie_key)
    except StorageFault:  # a read-only database cannot keep a new key: this process only
        return _process_key()


@functools.cache
def _process_key() -> str:
    import secrets

    return secrets.token_urlsafe(32)


@functools.cache
def _dummy_hash() -> str:
    return hash_password("not a password of anyone")


def _revoked(engine, settings: Settings, token: dict) -> bool:  # noqa: ANN001
    """A re-login cookie issued before the user's last sign-out is not honoured."""
    out = signed_out_at(engine, str(token.get("username", "")))
    issued = float(token.get("exp_date", 0)) - settings.idle_minutes * 60
    return out is not None and issued <= out.timestamp()


def _watch(engine, settings: Settings,  # noqa: ANN001
           authenticator: stauth.Authenticate) -> list[tuple[str, str, bool]]:
    """Note each sign-in attempt the widget makes (name typed, method, outcome) for the
    audit log: the widget itself reports only successes, and without the name typed."""
    attempts: list[tuple[str, str, bool]] = []
    controller = authenticator.authentication_controller
    inner = controller.login
    known = controller.authentication_model.credentials["usernames"]

    def login(username=None, password=None, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        token = kwargs.get("token")
        if token and _revoked(engine, settings, token):
            authenticator.cookie_controller.delete_cookie()
            return None
        if username and (until := locked_until(engine, username, settings.lockout_attempts,
                                               settings.lockout_minutes)):
            attempts.append((username, "locked", False))  # the password is not even checked
            st.session_state["auth_locked_until"] = until
            return None
        if username and (username.lower().strip() not in known):
            check_password(password or "", _dummy_hash())  # as slow as a known name
        result = inner(username, password, *args, **kwargs)
        if token:
            attempts.append((str(token.get("username", "")), "cookie",
                             bool(st.session_state.get("authentication_status"))))
        elif username or password:
            attempts.append((username or "", "password", bool(result)))
        return result

    controller.login = login
    return attempts


def _audit(engine, username: str, action: str, method: str | None = None) -> None:  # noqa: ANN001
    try:
        record_sign_in(engine, username, action, method=method)
    except StorageFault as exc:  # reading still works on a read-only database
        st.warning(f"This sign-in could not be written to the audit log: {exc}")

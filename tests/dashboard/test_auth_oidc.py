"""Single sign-on through the real app script (AppTest): the sign-in page's two choices, a
provider identity (st.user, as AppTest.user) let in with its mapped role or refused, and the
session ended by token expiry, the idle time or "Sign out", each audited. The provider itself,
st.login and st.logout's redirects run in the browser test tests/e2e/test_oidc.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.access.users import is_external
from core.store.db import make_engine
from tests.dashboard.conftest import APP
from tests.dashboard.test_auth import audit_rows, is_sign_in_form

SITE = """
[oidc]
label = "Hospital account"
contact = "the CAR-T coordinator"

[[oidc.role]]
group = "cart-clinicians"
role = "clinician"

[[oidc.role]]
group = "cart-nurses"
role = "nurse"
"""
SECRETS = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback",
                    "cookie_secret": "a cookie secret for tests only",
                    "client_id": "cartwatch", "client_secret": "test only",
                    "server_metadata_url": "http://127.0.0.1:1/.well-known/openid-configuration"}}


@pytest.fixture
def oidc_url(sample_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    monkeypatch.setenv("CARTWATCH_SITE_CONFIG", str(site))
    st.cache_resource.clear()
    return sample_url


def app_as(user: dict | None, secrets: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets.update(SECRETS if secrets is None else secrets)
    at.user = {"is_logged_in": False} if user is None else {"is_logged_in": True, **user}
    at.run()
    assert not at.exception, at.exception
    return at


def identity(sub: str, *groups: str, exp: float | None = None) -> dict:
    return {"iss": "https://idp.test", "sub": sub, "preferred_username": sub,
            "name": sub.title(), "groups": list(groups), "iat": int(time.time()),
            "exp": time.time() + 3600 if exp is None else exp}


def labels(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_the_sign_in_page_offers_the_provider_and_the_local_form(oidc_url):
    at = app_as(None)
    assert "Sign in with Hospital account" in labels(at) and "Sign in" in labels(at)
    assert is_sign_in_form(at)
    assert any("Or sign in with a local account" in h.value for h in at.subheader)


def test_without_the_auth_secrets_only_the_local_form_is_offered(oidc_url):
    at = app_as(None, secrets={"other": {"x": 1}})
    assert "Sign in with Hospital account" not in labels(at) and is_sign_in_form(at)
    assert any("have no [auth] table" in w.value for w in at.warning)


def test_a_clinician_identity_lands_as_clinician_with_an_external_user_row(oidc_url):
    at = app_as(identity("kim.clin", "staff", "cart-clinicians", "cart-nurses"))
    assert not is_sign_in_form(at) and "Ward overview" in [t.value for t in at.title]
    assert (at.session_state["auth_role"], at.session_state["auth_kind"]) == (
        "clinician", "oidc")
    side = " ".join(m.value for m in at.sidebar.markdown)
    assert "kim.clin" in side and "clinician" in side
    assert any("Through Hospital account" in c.value for c in at.sidebar.caption)
    at.run()  # later runs of the session: no second sign-in
    (login,) = audit_rows(oidc_url, "login")
    assert (login["actor"], login["after"]["method"]) == ("kim.clin", "oidc")
    (made,) = [r for r in audit_rows(oidc_url, "create_user") if r["actor"] == "kim.clin"]
    assert made["after"] == {"username": "kim.clin", "role": "clinician", "sign_in": "oidc"}
    from core.access.accounts import active_account
    assert is_external(active_account(make_engine(oidc_url), "kim.clin").password_hash)


def test_an_identity_in_no_mapped_group_is_refused_once_and_may_sign_out(oidc_url):
    at = app_as(identity("sam.none", "visitors"))
    assert is_sign_in_form(at) and "auth_username" not in at.session_state
    assert [e.value for e in at.error] == [
        "Your account sam.none is not in a group that may use CAR-T Watch; ask the CAR-T "
        "coordinator to add you to one."]
    at.run()
    assert len(audit_rows(oidc_url, "login_refused")) == 1  # once per session
    next(b for b in at.button if b.label == "Sign out of Hospital account").click().run()
    assert [r["actor"] for r in audit_rows(oidc_url, "logout")] == ["sam.none"]


def test_a_local_account_signs_in_beside_single_sign_on(oidc_url):
    from tests.dashboard.conftest import PASSWORD
    from tests.dashboard.test_auth import submit_sign_in

    at = submit_sign_in(app_as(None), "admin.amy", PASSWORD)  # break-glass admin
    assert (at.session_state["auth_role"], at.session_state["auth_kind"]) == ("admin", "local")


@pytest.mark.parametrize("how,action", [
    ("token", "token_expired"), ("idle", "session_expired"), ("button", "logout")])
def test_expiry_idle_and_sign_out_end_a_single_sign_on_session_audited(oidc_url, how, action):
    at = app_as(identity("kim.clin", "cart-clinicians", exp=time.time() + 3600))
    assert at.session_state["auth_kind"] == "oidc"
    if how == "token":
        at.session_state["auth_exp"] = time.time() - 1  # the ID token's exp has passed
        at.run()
    elif how == "idle":
        at.session_state["auth_seen"] = time.time() - 31 * 60
        at.run()
    else:
        next(b for b in at.sidebar.button if b.label == "Sign out").click().run()
    assert not at.exception, at.exception
    assert "auth_username" not in at.session_state
    (row,) = audit_rows(oidc_url, action)
    assert (row["actor"], row["after"]["method"]) == ("kim.clin", "oidc")


def test_a_saved_identity_whose_token_expired_is_signed_out_not_let_in(oidc_url):
    at = app_as(identity("kim.clin", "cart-clinicians", exp=time.time() - 5))
    assert "auth_username" not in at.session_state and not audit_rows(oidc_url, "login")
    assert [r["actor"] for r in audit_rows(oidc_url, "token_expired")] == ["kim.clin"]

"""Single sign-on through Streamlit's st.login (OpenID Connect, Authlib).

Two places configure it: the site TOML's [oidc] table (label, claims, group -> role mapping;
core.access.identity) and Streamlit's `[auth]` secrets in .streamlit/secrets.toml (redirect_uri,
cookie_secret, client_id, client_secret, server_metadata_url; or a named `[auth.<provider>]`).
Both are needed; with either missing, only the local form is offered. The ID token's claims
(st.user) decide the user and role at each sign-in (core.access.identity.sign_in_external).
"""

from __future__ import annotations

import logging
from typing import Any

import streamlit as st

from core.access.accounts import record_sign_in
from core.access.identity import OidcConfig, OidcConfigError, load_oidc_config, username_for
from core.config import Settings
from core.store.faults import StorageFault

log = logging.getLogger(__name__)
SHARED_SECRETS = ("redirect_uri", "cookie_secret")
PROVIDER_SECRETS = ("client_id", "client_secret", "server_metadata_url")


def site(settings: Settings) -> tuple[OidcConfig | None, str | None]:
    """(the single sign-on set-up, or None when it is off; a sentence for the sign-in page
    when it is set up but cannot be used)."""
    try:
        config = load_oidc_config(settings.site_config)
    except OidcConfigError as exc:
        log.error("single sign-on is off: %s", exc)
        return None, f"Single sign-on is off: {exc}"
    if config is None:
        return None, None
    if missing := _missing_secrets(config.provider):
        log.error("single sign-on is off: %s", missing)
        return None, (f"Single sign-on is set up in {config.source} but {missing}. "
                      "Sign in with a local account, or ask the site's IT.")
    return config, None


def _missing_secrets(provider: str | None) -> str | None:
    where = "[auth]" if provider is None else f"[auth.{provider}]"
    try:
        auth = st.secrets.get("auth") if st.secrets.load_if_toml_exists() else None
    except Exception as exc:  # noqa: BLE001 - an unreadable secrets file: say which
        return f"the Streamlit secrets cannot be read ({exc})"
    if not auth:
        return "the Streamlit secrets (.streamlit/secrets.toml) have no [auth] table"
    section = auth if provider is None else auth.get(provider) or {}
    missing = [k for k in SHARED_SECRETS if not auth.get(k)]
    missing += [k for k in PROVIDER_SECRETS if not section.get(k)]
    if missing:
        return f"the Streamlit secrets' {where} lack {', '.join(missing)}"
    return None


def claims() -> dict[str, Any] | None:
    """The identity provider's claims for this browser (st.user), or None if not signed in."""
    user = st.user
    if not user.get("is_logged_in"):
        return None
    return {k: v for k, v in user.to_dict().items() if k not in ("tokens",)}


def sign_out() -> None:
    """End the provider's sign-in in this browser (its cookie; the provider's own sign-out
    page where it has one) and stop this run: the browser is leaving."""
    st.logout()
    st.stop()


def sign_in_choice(engine, config: OidcConfig) -> None:  # noqa: ANN001
    """"Sign in with <provider>", or, for a signed-in identity that was refused, why and a way
    to sign out of it (to try another account)."""
    ss = st.session_state
    if refusal := ss.get("auth_refusal"):
        st.error(refusal, icon=":material/block:")
        if st.button(f"Sign out of {config.label}", key="auth_oidc_logout",
                     icon=":material/logout:"):
            found = claims() or {}
            try:
                record_sign_in(engine, username_for(config, found) or str(found.get("sub")),
                               "logout", method="oidc")
            except StorageFault as exc:
                log.warning("sign-out not audited: %s", exc)
            for key in ("auth_refusal", "auth_refused"):
                ss.pop(key, None)
            sign_out()
        return
    if st.button(f"Sign in with {config.label}", key="auth_oidc_login", type="primary",
                 icon=":material/login:"):
        st.login(config.provider)

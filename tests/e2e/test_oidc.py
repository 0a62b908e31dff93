"""Single sign-on end to end: a real OpenID Connect provider on the loopback (oidc-provider-mock,
in a thread of this process), a real Streamlit server configured for it (its own `[auth]`
secrets file, passed with --secrets.files, and a site TOML with the [oidc] role mapping), and
the real browser going through st.login, the provider's authorize page and the callback.

The provider issues an ID token with the claims registered for the user (PUT /users/<sub>),
so a user's groups, and for the expiry test a short `exp`, are set per test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import create_engine, select

from core.access.users import is_external
from core.store.models import AuditLog, User
from tests.conftest import free_port
from tests.e2e.conftest import ROOT, settle, shot
from tests.e2e.test_accessibility import blocking_violations

LABEL = "Test Hospital"
SITE = f"""
[oidc]
label = "{LABEL}"
groups_claim = ["groups", "roles"]
contact = "the CAR-T unit's coordinator"

[[oidc.role]]
group = "cart-nurses"
role = "nurse"

[[oidc.role]]
group = "cart-clinicians"
role = "clinician"
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """oidc-provider-mock's Flask app on 127.0.0.1, served by werkzeug in a thread."""
    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(),
                                          threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


def add_user(provider: str, sub: str, **claims: object) -> None:
    """Register (or replace) a user at the provider with the claims its ID token carries."""
    body = json.dumps({"preferred_username": sub, "name": sub.title(),
                       "email": f"{sub}@hospital.test", **claims}).encode()
    request = urllib.request.Request(f"{provider}/users/{sub}", data=body, method="PUT",
                                     headers={"Content-Type": "application/json"})
    assert urllib.request.urlopen(request, timeout=10).status == 204


@pytest.fixture(scope="module")
def oidc_app(e2e_db: str, provider: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(app URL, database URL): a Streamlit server of its own on a copy of the e2e database,
    with the [auth] secrets in a file of the test's temporary directory."""
    folder = tmp_path_factory.mktemp("oidc")
    db = folder / "oidc.db"
    shutil.copyfile(e2e_db.removeprefix("sqlite:///"), db)
    db_url = f"sqlite:///{db}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (folder / "secrets.toml").write_text(
        "[auth]\n"
        f'redirect_uri = "{url}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_urlsafe(32)}"\n'
        'client_id = "cartwatch-e2e"\n'
        f'client_secret = "{secrets.token_urlsafe(16)}"\n'
        f'server_metadata_url = "{provider}/.well-known/openid-configuration"\n')
    (folder / "site.toml").write_text(SITE)
    env = {**os.environ, "CARTWATCH_DATABASE_URL": db_url, "CARTWATCH_WARD_TZ": "UTC",
           "CARTWATCH_SITE_CONFIG": str(folder / "site.toml")}
    env.pop("CARTWATCH_DISPLAY_TOKEN", None)
    log = folder / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--server.headless=true",
             "--server.address=127.0.0.1", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none",
             f"--secrets.files={folder / 'secrets.toml'}"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()}")
            time.sleep(0.3)
        yield url, db_url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def sso_sign_in(page: Page, app: str, sub: str, axe: bool = False) -> None:
    """From the sign-in page through the provider's authorize form, back to the app."""
    page.goto(f"{app}/")
    button = page.get_by_role("button", name=f"Sign in with {LABEL}", exact=True)
    expect(button).to_be_visible(timeout=60_000)
    expect(page.get_by_label("User name")).to_be_visible()  # the local form too
    settle(page)
    if axe:
        assert blocking_violations(page, "sign-in page with single sign-on") == []
    button.click()
    page.wait_for_url("**/oauth2/authorize**", timeout=30_000)
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(f"{app}/**", timeout=30_000)


def audit(db_url: str, actor: str) -> list[tuple[str, dict]]:
    eng = create_engine(db_url)
    with eng.connect() as c:
        rows = [(r.action, r.after) for r in c.execute(
            select(AuditLog).where(AuditLog.actor == actor).order_by(AuditLog.id))]
    eng.dispose()
    return rows


def user_row(db_url: str, username: str) -> tuple[str, str] | None:
    eng = create_engine(db_url)
    with eng.connect() as c:
        row = c.execute(select(User.role, User.password_hash)
                        .where(User.username == username)).first()
    eng.dispose()
    return None if row is None else (str(row[0]), row[1])


def test_a_user_in_the_clinician_group_lands_as_clinician(
        page: Page, oidc_app: tuple[str, str], provider: str) -> None:
    app, db_url = oidc_app
    page.set_viewport_size({"width": 1400, "height": 1000})
    add_user(provider, "kim.clin", groups=["cart-clinicians", "staff"])
    sso_sign_in(page, app, "kim.clin", axe=True)
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Signed in as")).to_be_visible(timeout=60_000)
    expect(sidebar.get_by_text("kim.clin · clinician")).to_be_visible()
    expect(sidebar.get_by_text(f"Through {LABEL}.")).to_be_visible()
    expect(sidebar.get_by_text("Enter data")).to_be_visible()
    expect(sidebar.get_by_text("Users & settings")).to_have_count(0)
    expect(page.get_by_role("heading", name="Ward overview")).to_be_visible()
    settle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    shot(page, "sso-clinician")
    role, marker = user_row(db_url, "kim.clin")
    assert role == "clinician" and is_external(marker)  # the row, with no usable password
    actions = audit(db_url, "kim.clin")
    assert ("create_user", "login") == tuple(a for a, _ in actions[:2]), actions
    assert actions[1][1]["method"] == "oidc" and actions[1][1]["role"] == "clinician"

    page.get_by_role("button", name="Sign out").click()  # through the provider's sign-out
    page.wait_for_url("**/oauth2/end_session**", timeout=30_000)
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible(
        timeout=60_000)
    assert [a for a, _ in audit(db_url, "kim.clin")][-1] == "logout"


def test_a_user_in_no_mapped_group_is_refused_with_a_clear_sentence(
        page: Page, oidc_app: tuple[str, str], provider: str) -> None:
    app, db_url = oidc_app
    add_user(provider, "sam.none", groups=["visitors"], roles="reader")
    sso_sign_in(page, app, "sam.none")
    refusal = page.get_by_text("Your account sam.none is not in a group that may use CAR-T "
                               "Watch; ask the CAR-T unit's coordinator to add you to one.")
    expect(refusal).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name=f"Sign out of {LABEL}")).to_be_visible()
    expect(page.get_by_label("User name")).to_be_visible()  # break-glass: the local form
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    settle(page)
    shot(page, "sso-refused")
    assert blocking_violations(page, "single sign-on refused") == []
    assert user_row(db_url, "sam.none") is None  # refused: no account made
    ((action, after),) = audit(db_url, "sam.none")
    assert action == "login_refused" and after["method"] == "oidc"
    assert after["groups"] == ["visitors", "reader"]


def test_an_expired_id_token_signs_the_user_out(
        page: Page, oidc_app: tuple[str, str], provider: str) -> None:
    app, db_url = oidc_app
    life = 20  # seconds: long enough to land on a loaded machine, short enough to wait for
    add_user(provider, "eve.exp", groups=["cart-nurses"], exp=int(time.time()) + life)
    ends = time.time() + life
    sso_sign_in(page, app, "eve.exp")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("eve.exp · nurse")).to_be_visible(timeout=60_000)
    settle(page)
    page.wait_for_timeout(max(0.0, ends - time.time() + 1) * 1000)
    sidebar.get_by_text("Alert inbox").click()  # the next run finds the token expired
    page.wait_for_url("**/oauth2/end_session**", timeout=30_000)
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name=f"Sign in with {LABEL}")).to_be_visible(
        timeout=60_000)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    actions = [a for a, _ in audit(db_url, "eve.exp")]
    assert actions[-2:] == ["login", "token_expired"], actions

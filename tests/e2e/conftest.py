"""A real Streamlit server on the seeded sample database, driven by Debian's chromium."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from core.access.users import create_user
from core.store.db import make_engine
from dashboard.auth.local import COOKIE_NAME
from tests.conftest import free_port, missing_dependency
from tests.sample_db import build_sample_db

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "screenshots"
PASSWORD = "e2e-only password"  # exists only in the temporary test database
USERS = {"nurse.e2e": "nurse", "dr.e2e": "clinician", "admin.e2e": "admin"}
DISPLAY_TOKEN = secrets.token_urlsafe(24)  # a fresh one per run, like a site's secret

pytestmark = pytest.mark.e2e
# a shared 2-core machine runs two servers and two browsers at once: give each check time
expect.set_options(timeout=20_000)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):  # overrides pytest-playwright's
    if not Path(CHROMIUM).exists():
        missing_dependency("Debian's chromium (/usr/bin/chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def e2e_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    # the server runs on the real clock: the sample is shifted so that today is its day
    url = build_sample_db(tmp_path_factory.mktemp("e2e") / "e2e.db", on_sample_day=False)
    engine = make_engine(url)
    for username, role in USERS.items():
        create_user(engine, username, role, PASSWORD, display_name=username.split(".")[0].title())
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def app_url(e2e_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("e2e-log") / "streamlit.log"
    env = {**os.environ, "CARTWATCH_DATABASE_URL": e2e_db, "CARTWATCH_WARD_TZ": "UTC",
           "CARTWATCH_DISPLAY_TOKEN": DISPLAY_TOKEN}  # the zone e2e_db was seeded in
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dashboard", "--server.headless=true",
             "--server.address=127.0.0.1", f"--server.port={port}",
             "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
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
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def shot(page, name: str) -> Path:
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def log_in(page: Page, app_url: str, username: str = "dr.e2e", path: str = "/") -> None:
    """Open `path` and sign in through the real form (the page asked for opens after it)."""
    page.goto(f"{app_url}{path}")
    name = page.get_by_label("User name")
    expect(name).to_be_visible(timeout=60_000)
    settle(page)  # the form's first run has finished
    name.fill(username)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    submit_sign_in(page, page.get_by_role("button", name="Sign out"))
    settle(page)
    # the re-login cookie is written by a script in the page: a test that opens another
    # address next (page.goto, a new session) needs it in the browser first
    page.wait_for_function(f"document.cookie.includes({COOKIE_NAME!r} + '=')", timeout=30_000)


def submit_sign_in(page: Page, until: Locator, tries: int = 3) -> None:
    """Click "Sign in" until `until` shows, as a person would click again when nothing
    happened: Streamlit drops a form submit whose run is cut short by another rerun request,
    which on a loaded machine can land just then."""
    button = page.get_by_role("button", name="Sign in")
    for attempt in range(1, tries + 1):
        button.click()
        try:
            expect(until).to_be_visible(timeout=20_000)
            return
        except AssertionError:
            settle(page)
            if attempt == tries or not button.is_visible():
                break  # not a lost click: the sign-in is under way or the form changed
            print(f"sign-in click {attempt} had no effect; clicking again")
    expect(until).to_be_visible(timeout=60_000)


def settle(page: Page) -> None:
    """Wait until the script run has finished (the status widget disappears)."""
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)

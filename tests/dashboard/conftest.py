"""AppTest fixtures: the real app script over a copy of the seeded sample database, with one
real user per role, signed in as a clinician unless a test signs in as someone else."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from core.access.accounts import active_account
from core.access.users import create_user
from core.store.db import make_engine
from tests.sample_db import build_sample_db, copy_db, sample_clock

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PASSWORD = "test-only password 1"  # exists only in the temporary test databases
USERS = {"tv.wall": "display", "viewer.vic": "viewer", "nurse.kim": "nurse",
         "dr.lee": "clinician", "admin.amy": "admin"}


@pytest.fixture(autouse=True)
def _navigation_owns_routing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every page through app.py, as the server does (dashboard/__main__.py switches off
    Streamlit's legacy pages/ mode; AppTest would otherwise run a page file on its own,
    without app.py's sign-in, page gate and sidebar)."""
    real = PagesManager.__init__

    def init(self, *args, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        PagesManager.uses_pages_directory = False
        real(self, *args, **kwargs)

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def _on_the_sample_day() -> Iterator[None]:
    """Pages show the sample as of the day it was written for (tests/sample_db.py)."""
    with sample_clock():
        yield


@pytest.fixture(scope="session")
def sample_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.db"
    url = build_sample_db(path)
    engine = make_engine(url)
    for username, role in USERS.items():
        create_user(engine, username, role, PASSWORD, display_name=username.title())
    engine.dispose()
    return path


@pytest.fixture
def sample_url(sample_db_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the sample DB, set as the app's database for this test."""
    url = copy_db(sample_db_file, tmp_path / "app.db")
    monkeypatch.setenv("CARTWATCH_DATABASE_URL", url)
    monkeypatch.delenv("CARTWATCH_DISPLAY_TOKEN", raising=False)
    monkeypatch.delenv("CARTWATCH_IDLE_MINUTES", raising=False)
    st.cache_data.clear()
    return url


def sign_in(at: AppTest, username: str, url: str | None = None) -> AppTest:
    """Leave in the session what dashboard.auth leaves after a good sign-in (session state is
    server side: a browser cannot do this; test_auth.py signs in through the form)."""
    import os

    from dashboard.auth import session_values

    engine = make_engine(url or os.environ["CARTWATCH_DATABASE_URL"])
    account = active_account(engine, username)
    engine.dispose()
    assert account is not None, username
    for key, value in session_values(account).items():
        at.session_state[key] = value
    return at


@pytest.fixture
def signed_out(sample_url: str) -> AppTest:
    """The app, run once, signed out (the sign-in form)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def app(sample_url: str) -> AppTest:
    """The app, run once, on the sample data, signed in as a clinician (dr.lee)."""
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "dr.lee", sample_url)
    at.run()
    assert not at.exception, at.exception
    return at

"""AppTest fixtures: the real app script over a copy of the seeded sample database."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.sample_db import build_sample_db, copy_db

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture(scope="session")
def sample_db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "sample.db"
    build_sample_db(path)
    return path


@pytest.fixture
def sample_url(sample_db_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the sample DB, set as the app's database for this test."""
    url = copy_db(sample_db_file, tmp_path / "app.db")
    monkeypatch.setenv("CARTWATCH_DATABASE_URL", url)
    st.cache_data.clear()
    return url


@pytest.fixture
def app(sample_url: str) -> AppTest:
    """The app, run once, on the sample data."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at

"""Hostile text stored in the database renders inert on every page: the only HTML the app
writes itself (unsafe_allow_html) escapes user text, and nowhere else is HTML allowed."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from core.access.users import create_user
from core.capture.entry import enter_day
from core.capture.importing import import_file
from core.config import Settings
from core.monitoring.evaluation import run_evaluate
from core.store.db import init_db, make_engine
from tests.dashboard.conftest import APP, PASSWORD, sign_in

DASHBOARD = Path(APP).parent
# every place the app writes its own HTML; each must escape user text (html.escape)
ALLOWED_HTML = {("pages/huddle.py", "page_css"), ("pages/huddle.py", "wall_html"),
                ("chart_text.py", "TABLE_CSS"),  # a constant style block, no user text
                ("auth/local.py", None),  # the re-login cookie: a base64url token, JSON-quoted
                ("resources.py", None)}  # the element modules' prefetch: file names of
#                                          Streamlit's build, JSON-quoted; no user text

BED = "<script>1</script>"
INITIALS = "<i>x</i>"
DISEASE = "<img src=x onerror=alert(1)>"
PID = "<b>P-1</b>"
NOTE = "<script>alert('note')</script> =1+1"
RAW = ("<script", "<img", "<i>x</i>", "<b>P-1</b>", "onerror=alert")


def test_only_the_reviewed_places_write_raw_html() -> None:
    found = set()
    for path in DASHBOARD.rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"(unsafe_allow_html\s*=\s*True|st\.html\(|components\.v1|"
                             r"components\.html)", text):
            line = text[:m.start()].rsplit("\n", 1)[0]
            start = text.rfind("st.markdown(", 0, m.start())
            call = text[start:m.start()] if start > len(line) - 400 else ""
            helper = next((h for _f, h in ALLOWED_HTML if h and h in call), None)
            found.add((str(path.relative_to(DASHBOARD)), helper))
    assert found, "the scan found no HTML at all: is it still looking in the right place?"
    assert found <= ALLOWED_HTML, found - ALLOWED_HTML


@pytest.fixture
def hostile_app(tmp_path, monkeypatch) -> AppTest:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    engine = make_engine(url)
    init_db(engine)
    now = datetime.now(UTC)
    infusion = (now - timedelta(days=5)).date().isoformat()
    patients = ("patient_id,infusion_date,product,initials,bed,disease\n"
                f'"{PID}",{infusion},axi-cel,"{INITIALS}","{BED}","{DISEASE}"\n')
    assert import_file(engine, patients.encode(), "p.csv").ok
    when = (now - timedelta(hours=2)).replace(tzinfo=None, microsecond=0)
    res = enter_day(engine, PID, when, labs=[("ferritin", "9000", "ng/mL"),
                                             ("crp", "150", "mg/L")],
                    observations=[("temperature", "39.4")],
                    episodes=[{"kind": "CRS", "grade": "2", "onset": when, "note": NOTE}],
                    events=[{"kind": "progression", "note": NOTE}],
                    user="<b>nurse</b>", confirm_unusual=True)
    assert res.ok, res.errors
    run_evaluate(engine, Settings(database_url=url))
    # a user whose display name is hostile too (the sidebar shows who is signed in)
    create_user(engine, "admin.x", "admin", PASSWORD, display_name=NOTE)
    engine.dispose()
    monkeypatch.setenv("CARTWATCH_DATABASE_URL", url)
    st.cache_data.clear()
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.x", url)
    at.run()
    assert not at.exception, at.exception
    return at


def _html_bodies(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.proto.allow_html]


@pytest.mark.parametrize("page", ["overview", "patient", "alerts", "huddle", "entry",
                                  "import_data", "verify", "audit", "admin"])
def test_hostile_text_renders_inert(hostile_app: AppTest, page: str) -> None:
    at = hostile_app
    if not (DASHBOARD / "pages" / f"{page}.py").exists():
        pytest.skip(f"no {page} page yet")
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    for body in _html_bodies(at):
        for raw in RAW:
            assert raw not in body, (page, raw)
    if page == "huddle":
        shown = "".join(_html_bodies(at))
        assert "&lt;script&gt;1&lt;/script&gt;" in shown  # the bed, escaped
        assert 'class="who">IXI<' in shown  # initials: letters only (core.views.ward)

"""The admin page's Code map section: map a local code with a reason, see it, remove it."""

from __future__ import annotations

from sqlalchemy import create_engine, select
from sqlmodel import Session
from streamlit.testing.v1 import AppTest

from core.capture import codemap
from core.store.models import AuditLog
from tests.dashboard.conftest import APP, sign_in


def _admin(sample_url: str) -> AppTest:
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    assert not at.exception, at.exception
    return at


def test_admin_maps_a_local_code_and_removes_it(sample_url: str) -> None:
    at = _admin(sample_url)
    at.text_input(key="codemap_system").input("LAB1")
    at.text_input(key="codemap_code").input("FERR")
    at.selectbox(key="codemap_kind").select("analyte")
    at.run()
    at.selectbox(key="codemap_target_analyte").select("ferritin")
    at.text_input(key="codemap_reason").input("lab code list 2026-11")
    at.button(key="codemap_save").click().run()
    assert not at.exception, at.exception
    assert any("LAB1 FERR now maps to Lab analyte: Ferritin" in str(s.value)
               for s in at.success), [s.value for s in at.success]
    table = next(d.value for d in at.dataframe if "Maps to" in d.value and "Code" in d.value)
    assert list(table["Code"]) == ["FERR"] and list(table["Maps to"]) == ["Lab analyte: Ferritin"]
    engine = create_engine(sample_url)
    target = codemap.load(engine).resolve("LAB1", "FERR")
    assert target is not None and target.code == "ferritin"
    with Session(engine) as s:
        audit = s.execute(select(AuditLog).where(AuditLog.action == "map_code")).scalars().one()
        assert audit.actor == "admin.amy" and audit.reason == "lab code list 2026-11"

    at.text_input(key="codemap_remove_reason").input("lab retired the code")
    at.button(key="codemap_remove").click().run()
    assert codemap.load(engine).resolve("LAB1", "FERR") is None
    assert at.info and "No local codes mapped yet" in at.info[0].value


def test_a_mapping_without_a_reason_is_refused_with_a_sentence(sample_url: str) -> None:
    at = _admin(sample_url)
    at.text_input(key="codemap_code").input("FERR")
    at.button(key="codemap_save").click().run()
    assert any("Give a reason" in str(e.value) for e in at.error), [e.value for e in at.error]
    assert codemap.entries(create_engine(sample_url)) == []

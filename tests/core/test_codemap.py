"""The site code map: local codes to analytes, observation kinds and drugs, audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlmodel import Session

from core.capture import codemap
from core.store.models import AuditLog, CodeMapEntry, CodeTarget

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


@pytest.mark.parametrize(("system", "code", "expected"), [
    ("http://loinc.org", "2276-4", (CodeTarget.ANALYTE, "ferritin")),
    ("LN", "3255-7", (CodeTarget.ANALYTE, "fibrinogen")),
    ("http://loinc.org", "8310-5", (CodeTarget.OBSERVATION, "temperature")),
    ("http://loinc.org", "59408-5", (CodeTarget.OBSERVATION, "spo2")),
    ("", "8867-4", (CodeTarget.OBSERVATION, "heart_rate")),
    ("LOCAL-LAB", "2276-4", None),  # a LOINC-looking code in another system is not LOINC
    ("http://loinc.org", "0000-0", None),
])
def test_built_in_loinc(engine, system, code, expected) -> None:  # type: ignore[no-untyped-def]
    target = codemap.load(engine).resolve(system, code)
    assert (None if target is None else (target.kind, target.code)) == expected


def test_site_entry_wins_and_replaces_audited(engine) -> None:  # type: ignore[no-untyped-def]
    first = codemap.map_code(engine, system="LAB1", code="FERR", target_kind="analyte",
                             target="Ferritin", unit="ug/L", user="admin",
                             reason="local lab code list 2026")
    m = codemap.load(engine)
    assert m.resolve("LAB1", "FERR") == codemap.Target(CodeTarget.ANALYTE, "ferritin", "ug/L",
                                                      "site map")
    assert m.resolve("LAB2", "FERR") is None
    second = codemap.map_code(engine, system="LAB1", code="FERR", target_kind="analyte",
                              target="crp", user="admin", reason="was wrong")
    assert codemap.load(engine).resolve("LAB1", "FERR").code == "crp"  # type: ignore[union-attr]
    with Session(engine) as s:
        rows = {e.id: e.active for e in s.execute(select(CodeMapEntry)).scalars()}
        assert rows == {first: False, second: True}  # never deleted
        acts = [a.action for a in s.execute(select(AuditLog).where(
            AuditLog.table_name == "codemapentry")).scalars()]
        assert acts == ["map_code", "map_code"]
    codemap.unmap(engine, second, user="admin", reason="lab retired the code")
    assert codemap.load(engine).resolve("LAB1", "FERR") is None


@pytest.mark.parametrize(("kind", "target", "unit", "words"), [
    ("analyte", "sodium", None, "not an analyte we monitor"),
    ("analyte", "ferritin", "furlongs", "not a unit"),
    ("vital", "temperature", None, "target_kind 'vital'"),
    ("observation", "mood", None, "not an observation kind"),
    ("drug", "aspirin", None, "not a drug we record"),
])
def test_bad_entries_refused(engine, kind, target, unit, words) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(codemap.CodeMapRefused, match=words):
        codemap.map_code(engine, system="*", code="X", target_kind=kind, target=target,
                         unit=unit, user="admin", reason="test")


def test_csv_all_or_nothing(engine) -> None:  # type: ignore[no-untyped-def]
    bad = b"system,code,target_kind,target,unit\nLAB1,FER,analyte,ferritin,ng/mL\n" \
          b"LAB1,TOCI,drug,aspirin,\n"
    with pytest.raises(codemap.CodeMapRefused, match=r"row 3: target 'aspirin'"):
        codemap.import_csv(engine, bad, user="admin", reason="initial map")
    assert codemap.entries(engine) == []
    good = b"\xef\xbb\xbfsystem,code,target_kind,target,unit\nLAB1,FER,analyte,ferritin,ng/mL\n" \
           b"EHR,TOCI,drug,Tocilizumab,\n,HR,observation,heart_rate,\n"
    assert codemap.import_csv(engine, good, user="admin", reason="initial map") == 3
    m = codemap.load(engine)
    assert m.resolve("EHR", "TOCI").code == "tocilizumab"  # type: ignore[union-attr]
    assert m.resolve("anything", "HR").kind is CodeTarget.OBSERVATION  # type: ignore[union-attr]


def test_a_csv_with_local_codes_imports_once_they_are_mapped(store) -> None:  # type: ignore[no-untyped-def]
    from core.capture.importing import import_file
    from core.store.models import LabResult, Observation, Treatment

    import_file(store, b"patient_id,infusion_date,product\nP900,2026-11-20,axi-cel\n",
                now=NOW)
    labs = b"patient_id,day,analyte,value,unit\nP900,1,FERR,900,ug/L\n"
    obs = b"patient_id,day,kind,value\nP900,1,TEMPC,38.9\n"
    drugs = b"patient_id,day,drug\nP900,1,TCZ-8\n"
    refused = import_file(store, labs, now=NOW)
    assert not refused.written and "a local code an admin mapped" in refused.errors[0].message
    codemap.import_csv(store, b"system,code,target_kind,target\n*,FERR,analyte,ferritin\n"
                       b"*,TEMPC,observation,temperature\n*,TCZ-8,drug,tocilizumab\n",
                       user="admin", reason="ward codes")
    for data in (labs, obs, drugs):
        report = import_file(store, data, now=NOW)
        assert report.written, [str(e) for e in report.errors]
    with Session(store) as s:
        assert [(r.analyte, r.value) for r in s.execute(select(LabResult)).scalars()] == [
            ("ferritin", 900.0)]
        assert [r.kind for r in s.execute(select(Observation)).scalars()] == ["temperature"]
        assert [r.drug for r in s.execute(select(Treatment)).scalars()] == ["tocilizumab"]

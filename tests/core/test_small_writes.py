"""The small-batch shapes of the write path (an HL7 message's few results, issue 14): one
query for the current rows of a whole message, values converted one by one for a few rows,
the code map and patient index read narrowly. Each is checked against the form it replaces,
on SQLite and PostgreSQL (`store`) where it touches the database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

import core.capture.importing.writing as writing
from core.capture import codemap
from core.capture.codemap import CodeMap
from core.capture.hl7.receive import receive
from core.capture.importing import _patient_index, import_file
from core.capture.importing.writing import _hash, _records, _sqlite_column
from core.config import Settings
from core.store.db import table_of
from core.store.models import InboundMessage, LabResult, Patient

INFUSED = (datetime.now(UTC) - timedelta(days=5)).date()
PATIENTS = ("patient_id,infusion_date,product\n"
            f"SYN-001,{INFUSED},axi-cel\nSYN-002,{INFUSED},liso-cel\n"
            f"SYN-003,{INFUSED},tisa-cel\n").encode()


def columns() -> pd.DataFrame:
    """One column of each kind a prepared frame holds, each with a missing value."""
    return pd.DataFrame({
        "when": pd.Series([datetime(2026, 11, 3, 8, 30, 0, 123456, tzinfo=UTC), pd.NaT,
                           datetime(2026, 11, 4, tzinfo=UTC)], dtype="datetime64[us, UTC]"),
        "number": [1.5, np.nan, 3.0],
        "count": [1, 2, 3],
        "flag": [True, False, True],
        "nullable": pd.Series([1, None, 3], dtype="Int64"),
        "text": pd.Series(["a", None, "c"], dtype=str),
        "object": pd.Series(["x", None, np.float64(2.5)], dtype=object),
        "numpy_bool": pd.Series([np.bool_(True), np.nan, True], dtype=object),
        "python_time": pd.Series([datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), None, None],
                                 dtype=object),
    })


@pytest.mark.parametrize("name", list(columns().columns))
def test_a_few_rows_convert_like_the_vectorised_path(name: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    frame = columns()
    small = (_sqlite_column(frame[name]), _records(frame[[name]]))
    monkeypatch.setattr(writing, "_SMALL", -1)  # every frame takes the vectorised path
    large = (_sqlite_column(frame[name]), _records(frame[[name]]))
    assert small == large
    assert [type(v) for v in small[0]] == [type(v) for v in large[0]]
    assert [type(r[name]) for r in small[1]] == [type(r[name]) for r in large[1]]
    if frame[name].isna().any():
        assert small[0][1] is None and small[1][1][name] is None


@pytest.mark.parametrize("series", [
    pd.Series(["P1|ferritin|1", "P2|crp|2"], dtype=str),
    pd.Series(["a", None, "c"], dtype=object),
    pd.Series([1.5, np.nan, 1e-9]),
    pd.Series(["800.0", "3.1>"], dtype=object),
], ids=["str", "object-with-none", "float", "value-keys"])
def test_row_keys_hash_like_the_earlier_formula(series: pd.Series) -> None:
    text = ("labs|" + series.astype(object).where(series.notna(), "").astype(str)).tolist()
    expected = [hashlib.sha256(x.encode()).hexdigest()[:40] for x in text]
    got = _hash("labs", series)
    assert got.tolist() == expected and list(got.index) == list(series.index)


def test_too_long_text_is_refused_with_its_length(store: Engine) -> None:
    assert import_file(store, PATIENTS, "patients.csv").ok
    note = "n" * 1001
    data = (f"patient_id,day,kind,value,note\nSYN-001,1,temperature,38.2,ok\n"
            f"SYN-001,2,temperature,38.4,{note}\n").encode()
    report = import_file(store, data, "obs.csv")
    assert [(e.row, e.column, e.value) for e in report.errors] == [(3, "note", "n" * 30 + "…")]
    assert "1,001 characters, at most 1,000" in report.errors[0].message
    assert not report.written


def test_the_narrow_code_map_resolves_like_the_whole_map(store: Engine) -> None:
    for system, code, kind, target in [("LAB1", "FERR", "analyte", "ferritin"),
                                       ("*", "FERR", "analyte", "crp"),
                                       ("*", "TMP", "observation", "temperature"),
                                       ("LAB1", "OLD", "analyte", "alt")]:
        codemap.map_code(store, system=system, code=code, target_kind=kind, target=target,
                         user="admin", reason="test map")
    codemap.map_code(store, system="LAB1", code="OLD", target_kind="analyte", target="ast",
                     user="admin", reason="replaced")  # the first entry is now inactive
    queries = [("LAB1", "FERR"), ("LAB2", "FERR"), ("LAB1", " TMP "), ("LAB1", "OLD"),
               ("LN", "2276-4"), ("LAB1", "NONE")]
    with Session(store) as s:
        whole = CodeMap.load(s)
        narrow = CodeMap.load(s, codes={"FERR", "TMP", "OLD", "2276-4", "NONE"})
        assert len(CodeMap.load(s, codes=set())) == 0
    assert [narrow.resolve(*q) for q in queries] == [whole.resolve(*q) for q in queries]
    assert narrow.resolve("LAB1", "OLD").code == "ast"  # type: ignore[union-attr]
    assert narrow.local_codes() == whole.local_codes()


def test_the_narrow_patient_index_is_the_whole_index_cut(store: Engine) -> None:
    assert import_file(store, PATIENTS, "patients.csv").ok
    with Session(store) as s:
        whole = _patient_index(s)
        assert _patient_index(s, ["SYN-002", "SYN-404"]) == {"SYN-002": whole["SYN-002"]}
        assert _patient_index(s, []) == {}
        assert len(whole) == 3


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%d%H%M%S+0000")


def _oru(control: str, groups: list[tuple[str, list[tuple]]]) -> str:
    """An ORU^R01 with one PID group per (patient, [(code, name, value, unit, status,
    time)])."""
    segments = [f"MSH|^~\\&|LABSYS|SYNHOSP|CARTWATCH|WARD4A|{_stamp(datetime.now(UTC))}||"
                f"ORU^R01^ORU_R01|{control}|P|2.5.1"]
    for n, (patient, rows) in enumerate(groups, start=1):
        segments += [f"PID|{n}||{patient}^^^SYNHOSP^MR||SYNTHETIC^TEST||19610101|F",
                     f"OBR|1|P{control}{n}|F{control}{n}|CBC^Blood count^L|||"
                     f"{_stamp(rows[0][5])}"]
        for i, (code, name, value, unit, status, when) in enumerate(rows, start=1):
            segments.append(f"OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}|||||{status}|||"
                            f"{_stamp(when)}")
    return "\r".join(segments) + "\r"


def _rows(engine: Engine, patient: str, analyte: str) -> list[tuple]:
    with Session(engine) as s:
        pk = s.execute(select(Patient.id).where(Patient.patient_id == patient)).scalar_one()
        return [(r.value, r.status, r.preliminary, r.collected_at.replace(tzinfo=None))
                for r in s.execute(select(LabResult).where(
                    LabResult.patient_pk == pk, LabResult.analyte == analyte)
                    .order_by(LabResult.id)).scalars()]


def test_one_message_finds_the_current_row_of_each_of_its_results(store: Engine) -> None:
    """Corrections, deletions, finalisations and repeats of several patients and times in
    one message: each OBX acts on its own patient's row of its own item and time."""
    assert import_file(store, PATIENTS, "patients.csv").ok
    settings = Settings(database_url=store.url.render_as_string(hide_password=False))
    t1 = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    t2 = t1 + timedelta(hours=1)
    plt, fer = ("777-3", "Platelets"), ("2276-4", "Ferritin")
    first = _oru("B1", [
        ("SYN-001", [(*plt, "150", "10*9/L", "F", t1), (*fer, "900", "ug/L", "F", t1),
                     (*fer, "1200", "ug/L", "F", t2)]),
        ("SYN-002", [(*plt, "140", "10*9/L", "F", t1), (*fer, "700", "ug/L", "P", t1)]),
    ])
    assert receive(store, first, settings).code == "AA"
    second = _oru("B2", [
        ("SYN-001", [(*fer, "950", "ug/L", "C", t1), (*fer, "1200", "ug/L", "D", t2)]),
        ("SYN-002", [(*plt, "100", "10*9/L", "C", t1), (*fer, "700", "ug/L", "F", t1),
                     (*plt, "90", "10*9/L", "F", t2)]),
        ("SYN-003", [(*fer, "400", "ug/L", "D", t1)]),
    ])
    reply = receive(store, second, settings)
    assert reply.code == "AA", reply.reason
    naive1, naive2 = t1.replace(tzinfo=None), t2.replace(tzinfo=None)
    assert _rows(store, "SYN-001", "ferritin") == [
        (900.0, "superseded", False, naive1), (1200.0, "entered_in_error", False, naive2),
        (950.0, "final", False, naive1)]
    assert _rows(store, "SYN-001", "platelets") == [(150.0, "final", False, naive1)]
    assert _rows(store, "SYN-002", "platelets") == [
        (140.0, "superseded", False, naive1), (100.0, "final", False, naive1),
        (90.0, "final", False, naive2)]
    assert _rows(store, "SYN-002", "ferritin") == [(700.0, "final", False, naive1)]
    assert _rows(store, "SYN-003", "ferritin") == []
    with Session(store) as s:
        row = s.execute(select(InboundMessage).where(
            InboundMessage.control_id == "B2")).scalars().one()
    # C, D, C, finalised, new; SYN-003's D had nothing to retract
    assert row.rows_written == 5
    assert "OBX #6" in (row.reason or "") and "no stored value to retract" in (row.reason or "")



def _stored(engine: Engine, patient: str) -> list[dict]:
    """A patient's lab rows as stored, without what differs between patients and batches
    (ids, time of entry, and the keys, which hash the patient's study ID)."""
    skip = {"id", "patient_pk", "import_batch_id", "entered_at", "row_key", "content_hash"}
    with Session(engine) as s:
        pk = s.execute(select(Patient.id).where(Patient.patient_id == patient)).scalar_one()
        rows = s.execute(select(LabResult).where(LabResult.patient_pk == pk)
                         .order_by(LabResult.collected_at, LabResult.analyte)).scalars()
        names = list(table_of(LabResult).columns.keys())
        out = [{k: getattr(r, k) for k in names} for r in rows]
    assert all(r["row_key"] and r["content_hash"] for r in out)
    return [{k: v for k, v in r.items() if k not in skip} for r in out]


def test_a_few_rows_and_many_rows_are_stored_alike(store: Engine) -> None:
    """The same lab rows written as a small batch (value by value, `insert_records`) and in
    a large one (column by column) read back identically, on both databases."""
    assert import_file(store, PATIENTS, "patients.csv").ok
    header = "patient_id,day,analyte,value,unit,qualifier,loinc"

    def lines(patient: str) -> list[str]:
        return [f"{patient},{d / 4:.2f},{row}".format(v=10 + d) for d in range(1, 9)
                for row in ("ferritin,{v},ng/mL,<,2276-4", "crp,{v},mg/L,,",
                            "platelets,{v},10*9/L,,")]  # 24 rows

    small = import_file(store, "\n".join([header, *lines("SYN-001")]).encode(), "small.csv")
    filler = [f"SYN-003,{d / 20:.2f},alt,{d},U/L,," for d in range(1, 60)]
    large = import_file(store, "\n".join([header, *lines("SYN-002"), *filler]).encode(),
                        "large.csv")
    assert small.ok and large.ok and (small.rows_new, large.rows_new) == (24, 83)
    one = _stored(store, "SYN-001")
    assert len(one) == 24 and one == _stored(store, "SYN-002")
    assert {r["qualifier"] for r in one} == {"<", None}

"""Vasopressor counts across files and sync pages (SQLite and PostgreSQL): a page that starts
a second drug counts the one already running from an earlier page, an end and an
entered-in-error recompute what they touch, and `evaluate --json` grades CRS from it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from core.capture.fhir import import_fhir
from core.store.models import AuditLog, Observation, VasopressorAdministration
from tests.core.test_fhir import bundle, med, patient, vital
from tests.core.test_fhir_ehr import crs
from tests.core.test_importing import NOW, snapshot

SYNC = {"Patient/p1": "F001"}  # a sync page names the patient only by reference
FEVER = vital("t1", "8310-5", 39.2, "Cel", "2026-11-20T08:00:00Z")
NE = med("ma1", "Norepinephrine 4 mg/250 mL", "2026-11-20T10:00:00Z", status="in-progress",
         dose=(0.1, "ug/kg/min"))
EPI = med("ma2", "Epinephrine 4 mg/250 mL", "2026-11-20T12:00:00Z", status="in-progress",
          dose=(0.05, "ug/kg/min"))
NE_ENDED = med("ma1", "Norepinephrine 4 mg/250 mL", "2026-11-20T10:00:00Z",
               status="completed", end="2026-11-20T14:00:00Z", dose=(0.1, "ug/kg/min"))
PAGE1 = bundle(patient(), FEVER, NE)
PAGE2 = bundle(EPI)
PAGE3 = bundle(NE_ENDED)


def page(engine, data, name, **kw):
    """Import one file or sync page under its own name, as `fhir-sync` does."""
    kw.setdefault("now", NOW)
    report = import_fhir(engine, data, name, subjects=SYNC, **kw)
    assert report.ok, [str(e) for e in report.errors]
    return report


def counts(engine, kind="vasopressors"):
    """(hour of 2026-11-20, value, status, note, reason) of each derived row, oldest first."""
    with engine.connect() as c:
        found = c.execute(select(Observation.observed_at, Observation.value_num,
                                 Observation.value_text, Observation.status,
                                 Observation.note, Observation.correction_reason)
                          .where(Observation.kind == kind).order_by(Observation.id)).all()
    out = []
    for at, num, text, status, note, reason in found:
        at = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
        hours = (at - datetime(2026, 11, 20, tzinfo=UTC)).total_seconds() / 3600
        value = num if kind == "vasopressors" else text or ("yes" if num else "no")
        out.append((hours, value, status, note or "", reason or ""))
    return out


def final(engine, kind="vasopressors"):
    return [(h, v) for h, v, s, _n, _r in counts(engine, kind) if s == "final"]


def administrations(engine):
    V = VasopressorAdministration
    with engine.connect() as c:
        return c.execute(select(V.source_record_id, V.drug, V.ended_at, V.admin_status,
                                V.status, V.correction_reason).order_by(V.id)).all()


def test_a_later_page_counts_the_vasopressor_already_running_and_crs_reads_grade_4(
        store, capsys):
    page(store, PAGE1, "page1.json")
    assert final(store) == [(10, 1)]
    assert crs(store, "2026-11-20T11:00:00Z", capsys)["grade"] == 3

    second = page(store, PAGE2, "page2.json")
    assert (second.rows_new, second.superseded) == (1, 0)
    assert final(store) == [(10, 1), (12, 2)]
    note = counts(store)[-1][3]
    assert "norepinephrine (MedicationAdministration/ma1)" in note
    assert "epinephrine (MedicationAdministration/ma2)" in note
    graded = crs(store, "2026-11-20T13:00:00Z", capsys)
    assert (graded["status"], graded["grade"]) == ("met", 4)
    assert any("2 vasopressors" in e["why"] for e in graded["evidence"]), graded["evidence"]

    state = snapshot(store)
    again = page(store, PAGE2, "page2.json")
    assert again.rows_new == 0 and not again.written and again.rows_already_present == 1
    assert snapshot(store) == state

    third = page(store, PAGE3, "page3.json")
    assert third.written and third.rows_new == 1 and third.superseded == 0
    assert final(store) == [(10, 1), (12, 2), (14, 1)]
    assert "stopped norepinephrine (MedicationAdministration/ma1)" in counts(store)[-1][3]
    assert crs(store, "2026-11-20T15:00:00Z", capsys)["grade"] == 3
    ne_rows = [r for r in administrations(store) if r[0] == "ma1"]
    assert [(r.admin_status, r.status) for r in ne_rows] == [
        ("in-progress", "superseded"), ("completed", "final")]
    assert ne_rows[1].ended_at is not None
    assert "MedicationAdministration/ma1, status completed" in ne_rows[1].correction_reason
    assert "page3.json" in ne_rows[1].correction_reason


ERROR_CASES = [
    pytest.param([PAGE2], [(12, 1)], {10: "entered_in_error", 12: "superseded"},
                 id="while-it-runs"),
    pytest.param([PAGE2, PAGE3], [(12, 1)],
                 {10: "entered_in_error", 12: "superseded", 14: "entered_in_error"},
                 id="after-it-ended"),
]


@pytest.mark.parametrize(("pages", "after", "first_rows"), ERROR_CASES)
def test_entered_in_error_of_an_earlier_pages_vasopressor_recomputes_what_it_counted(
        store, capsys, pages, after, first_rows):
    page(store, PAGE1, "page1.json")
    for data in pages:
        page(store, data, "later.json")
    report = page(store, bundle({**NE, "status": "entered-in-error"}), "page4.json",
                  user="interface")
    assert report.written and report.superseded == 1
    assert report.retracted == len([s for s in first_rows.values() if s != "superseded"])
    assert final(store) == after
    first = {}
    for hours, _v, status, note, reason in counts(store):
        first.setdefault(hours, (status, note, reason))
    assert {h: s for h, (s, _n, _r) in first.items()} == first_rows
    assert first[10][2] == ("entered-in-error in the source EHR "
                            "(FHIR MedicationAdministration/ma1)")
    (now,) = [r for r in counts(store) if r[2] == "final"]
    assert "ma1" not in now[3] and "epinephrine (MedicationAdministration/ma2)" in now[3]
    assert "recomputed from the EHR's administration record" in now[4]
    stored = {(r.source_record_id, r.status) for r in administrations(store)}
    assert ("ma1", "entered_in_error") in stored and ("ma2", "final") in stored
    with store.connect() as c:
        reasons = c.execute(select(AuditLog.reason).where(
            AuditLog.table_name == "vasopressor_administrations",
            AuditLog.action == "entered_in_error")).scalars().all()
    assert reasons == ["entered-in-error in the source EHR (FHIR MedicationAdministration/ma1)"]
    assert crs(store, "2026-11-20T13:00:00Z", capsys)["grade"] == 3
    again = page(store, bundle({**NE, "status": "entered-in-error"}), "page4.json")
    assert again.rows_new == 0 and not again.written and not again.skipped


# (pages, final vasopressor counts (hour, value), final vasopressin rows) on SQLite
SEQUENCES = [
    pytest.param(
        [bundle(patient(), NE_ENDED), bundle(med("ma2", "Adrenaline", "2026-11-20T11:00:00Z",
                                                 status="in-progress"))],
        [(10, 1), (11, 2), (14, 1)], [], id="a-stored-stop-is-recomputed-by-a-later-start"),
    pytest.param(
        [bundle(patient(), NE),
         bundle(med("ma1", "Norepinephrine", "2026-11-20T10:30:00Z", status="in-progress"))],
        [(10.5, 1)], [], id="a-moved-start-retracts-the-old-instant"),
    pytest.param(
        [bundle(patient(), med("mv", "Vasopressin 20 units/100 mL", "2026-11-20T09:00:00Z",
                               status="in-progress")), bundle(NE),
         bundle(med("mv", "Vasopressin 20 units/100 mL", "2026-11-20T09:00:00Z",
                    status="completed", end="2026-11-20T13:00:00Z"))],
        [(10, 1)], [(9, "yes"), (13, "no")], id="vasopressin-apart-across-pages"),
    pytest.param(
        [bundle(patient(), NE), bundle(med("ma3", "Noradrenaline", "2026-11-20T11:00:00Z",
                                           status="in-progress")),
         bundle({**NE, "status": "entered-in-error"})],
        [(11, 1)], [], id="two-bags-one-drug-one-in-error"),
]


@pytest.mark.parametrize(("pages", "pressors", "vasopressin"), SEQUENCES)
def test_page_sequences(engine, pages, pressors, vasopressin):
    for i, data in enumerate(pages):
        page(engine, data, f"page{i + 1}.json")
    assert final(engine) == pressors
    assert final(engine, "vasopressin") == vasopressin


def test_a_moved_start_says_why_the_old_count_went(engine):
    page(engine, bundle(patient(), NE), "page1.json")
    page(engine, bundle(med("ma1", "Norepinephrine", "2026-11-20T10:30:00Z",
                            status="in-progress")), "page2.json")
    (old, _new) = counts(engine)
    assert old[2] == "entered_in_error"
    assert "no vasopressor starts or stops at this time any more" in old[4]
    assert "MedicationAdministration/ma1" in old[4]


def test_an_end_still_to_come_is_stored_and_counted_once_it_has_passed(engine):
    page(engine, bundle(patient(), NE), "page1.json")
    planned = med("ma1", "Norepinephrine", "2026-11-20T10:00:00Z", status="in-progress",
                  end="2026-11-22T10:00:00Z")  # after the import's `now`
    report = page(engine, bundle(planned), "page2.json")
    assert report.written and report.rows_new == 0  # only the administration changed
    assert [r.ended_at is not None for r in administrations(engine)] == [False, True]
    assert final(engine) == [(10, 1)]
    later = page(engine, bundle(med("ma2", "Epinephrine", "2026-11-22T09:00:00Z",
                                    status="in-progress")), "page3.json",
                 now=datetime(2026, 11, 23, tzinfo=UTC))
    assert later.ok
    assert final(engine) == [(10, 1), (57, 2), (58, 1)]


def test_a_dry_run_stores_no_administration(engine):
    page(engine, bundle(patient(), NE), "page1.json")
    state = snapshot(engine)
    report = page(engine, PAGE2, "page2.json", dry_run=True)
    assert report.rows_new == 1 and not report.written
    assert snapshot(engine) == state


def test_a_start_moved_away_and_back_counts_again(engine):
    moved = med("ma1", "Norepinephrine", "2026-11-20T10:30:00Z", status="in-progress")
    for i, data in enumerate([bundle(patient(), NE), bundle(moved), bundle(NE)]):
        page(engine, data, f"page{i + 1}.json")
    assert final(engine) == [(10, 1)]
    (*_old, back) = counts(engine)
    assert back[2] == "final" and "recomputed from the EHR's administration record in " \
        "page3.json" in back[4]


def test_a_count_still_defined_by_another_bag_is_re_noted_not_retracted(engine):
    bag = med("ma3", "Noradrenaline", "2026-11-20T11:00:00Z", status="in-progress")
    for i, data in enumerate([bundle(patient(), NE), bundle(bag)]):
        page(engine, data, f"page{i + 1}.json")
    report = page(engine, bundle({**NE, "status": "entered-in-error"}), "page3.json")
    assert (report.superseded, report.retracted) == (1, 1)
    (at10, at11, renoted) = counts(engine)
    assert (at10[0], at10[2]) == (10, "entered_in_error")
    assert (at11[0], at11[2], renoted[:3]) == (11, "superseded", (11, 1, "final"))
    assert "ma1" not in renoted[3] and "(MedicationAdministration/ma3)" in renoted[3]
    assert renoted[4] == ("recomputed from the EHR's administration record in page3.json "
                          "(entered-in-error in the source EHR (FHIR "
                          "MedicationAdministration/ma1))")
    with engine.connect() as c:
        corrected = c.execute(select(AuditLog.table_name, AuditLog.reason).where(
            AuditLog.action == "correct")).all()
    assert corrected == [("observations", renoted[4])]

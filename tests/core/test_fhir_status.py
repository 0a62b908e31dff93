"""FHIR status against what is stored (SQLite): entered-in-error retracts, amended and
corrected supersede, preliminary labs are marked, cancelled / not-done are skipped, and a
malformed resource that we monitor rejects the whole file with its position and path."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from core.store.db import init_db, make_engine
from core.store.models import AuditLog, LabResult, Observation, RecordStatus, Treatment
from tests.core.test_fhir import bundle, med, obs, patient, run, vital
from tests.core.test_importing import snapshot

FINAL, SUPERSEDED = RecordStatus.FINAL.value, RecordStatus.SUPERSEDED.value
RETRACTED = RecordStatus.ENTERED_IN_ERROR.value


def rows(engine, model, *cols):
    with engine.connect() as c:
        return c.execute(select(*cols).order_by(model.id)).all()


def audits(engine, action):
    with engine.connect() as c:
        return c.execute(select(AuditLog.table_name, AuditLog.patient_id, AuditLog.reason)
                         .where(AuditLog.action == action).order_by(AuditLog.id)).all()


def later(*resources):
    """A later file about F001: the Patient (registered: nothing to add) and resources."""
    return bundle(patient(), *resources)


def gone(res):
    return {**res, "status": "entered-in-error"}


def _seed(engine):
    """F001 with a fibrinogen, a temperature, a tocilizumab dose and norepinephrine."""
    report = run(engine, bundle(
        patient(), obs("o1"), vital("t1", value=39.4),
        med("m1"), med("m2", "Norepinephrine", "2026-11-20T10:00:00Z", status="in-progress")))
    assert report.ok, [str(e) for e in report.errors]
    return engine


@pytest.fixture
def ward(engine):
    return _seed(engine)


@pytest.fixture(scope="module")
def unchanged_ward(tmp_path_factory):
    """One seeded database for the tests that must leave it exactly as it was (each checks
    its snapshot), so they need not migrate a database each."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('fhir') / 'ward.db'}")
    init_db(engine)
    yield _seed(engine)
    engine.dispose()


@pytest.mark.parametrize(("resource", "model", "col"), [
    pytest.param(gone(obs("o1")), LabResult, LabResult.source_record_id, id="lab"),
    pytest.param(gone(vital("t1", value=39.4)), Observation, Observation.source_record_id,
                 id="vital"),
    pytest.param(gone(med("m1")), Treatment, Treatment.source_record_id, id="treatment"),
])
def test_entered_in_error_retracts_the_row_we_imported_with_the_reason_audited(
        ward, resource, model, col):
    rid = resource["id"]
    report = run(ward, later(resource), user="interface")
    assert report.ok and report.written and report.retracted == 1, report
    assert "retracted 1 value(s) (entered-in-error in the source EHR" in report.summary()
    stored = rows(ward, model, col, model.status, model.correction_reason)
    (hit,) = [r for r in stored if r[0] == rid]
    label = f"{resource['resourceType']}/{rid}"
    assert hit[1:] == (RETRACTED, f"entered-in-error in the source EHR (FHIR {label})")
    (audit,) = audits(ward, "entered_in_error")
    assert audit[1:] == ("F001", f"entered-in-error in the source EHR (FHIR {label})")
    again = run(ward, later(resource))
    assert again.ok and again.rows_new == 0 and again.rows_already_present == 2


def test_entered_in_error_of_a_vasopressor_retracts_the_counts_that_named_it(ward):
    report = run(ward, later(gone(med("m2", "Norepinephrine", "2026-11-20T10:00:00Z",
                                       status="in-progress"))))
    assert report.ok and report.retracted == 1
    assert rows(ward, Observation, Observation.kind, Observation.status)[-1] == (
        "vasopressors", RETRACTED)


def test_entered_in_error_of_something_we_never_had_is_skipped_and_counted(ward):
    before = snapshot(ward)
    report = run(ward, later(gone(obs("o404")), gone(med("m404"))))
    assert report.ok and not report.written and report.rows_new == 0
    assert dict(report.skipped) == {"Observation: entered-in-error, never imported": 1,
                                    "MedicationAdministration: entered-in-error, never "
                                    "imported": 1}
    assert snapshot(ward) == before


@pytest.mark.parametrize("fhir_status", ["amended", "corrected"])
def test_amended_or_corrected_supersedes_the_row_we_have(ward, fhir_status):
    new = {**obs("o1", value=1.1), "status": fhir_status}
    report = run(ward, later(new), user="interface")
    assert report.ok and report.superseded == 1 and report.rows_new == 1
    assert "1 of the added row(s) supersede an earlier value" in report.summary()
    labs = rows(ward, LabResult, LabResult.id, LabResult.value, LabResult.status,
                LabResult.supersedes_id, LabResult.correction_reason,
                LabResult.source_record_id)
    (old_id, _v, old_status, *_), (_id, value, status, supersedes, reason, rid) = labs
    assert (old_status, status, supersedes, rid) == (SUPERSEDED, FINAL, old_id, "o1")
    assert value == pytest.approx(110)
    assert reason == f"{fhir_status} in the source EHR (FHIR Observation/o1, status " \
                     f"{fhir_status})"
    (audit,) = audits(ward, "correct")
    assert audit == ("labs", "F001", reason)
    again = run(ward, later(new))
    assert again.ok and again.rows_new == 0 and again.rows_already_present == 2


def test_an_amended_vital_and_dose_supersede_too(ward):
    report = run(ward, later({**vital("t1", value=38.1), "status": "amended"},
                              {**med("m1", dose=(400, "mg"))}))
    assert report.ok and report.superseded == 2
    temps = rows(ward, Observation, Observation.value_num, Observation.status)
    assert (39.4, SUPERSEDED) in temps and (38.1, FINAL) in temps
    doses = rows(ward, Treatment, Treatment.dose, Treatment.status, Treatment.correction_reason)
    assert doses[0][:2] == (560, SUPERSEDED) and doses[1][:2] == (400, FINAL)
    assert "MedicationAdministration/m1, status completed" in doses[1][2]


def test_amended_with_an_id_we_never_had_is_stored_as_new(ward):
    report = run(ward, later({**obs("o7", when="2026-11-13T08:00:00Z"), "status": "amended"}))
    assert report.ok and report.rows_new == 1 and report.superseded == 0


def test_a_preliminary_lab_is_marked_and_its_final_result_supersedes_it(ward):
    prelim = {**obs("o5", "2276-4", 900, "ug/L", "2026-11-14T08:00:00Z"),
              "status": "preliminary"}
    assert run(ward, later(prelim)).ok
    assert rows(ward, LabResult, LabResult.preliminary, LabResult.source_record_id)[-1] == (
        True, "o5")
    report = run(ward, later({**prelim, "status": "final"}))
    assert report.ok and report.superseded == 1
    last = rows(ward, LabResult, LabResult.preliminary, LabResult.status,
                LabResult.correction_reason)[-1]
    assert last[:2] == (False, FINAL) and "replaces the preliminary" in last[2]


@pytest.mark.parametrize(("resource", "reason"), [
    ({**obs("o8"), "status": "cancelled"}, "Observation: status cancelled"),
    ({**obs("o8"), "status": "registered"}, "Observation: status registered"),
    (med("m8", status="not-done"), "MedicationAdministration: status not-done"),
    (med("m8", status="on-hold"), "MedicationAdministration: status on-hold"),
    ({**vital("t8"), "status": "preliminary"},
     "Observation: preliminary vital sign (only labs are kept as preliminary)"),
    ({k: v for k, v in obs("o8").items() if k != "valueQuantity"}
     | {"dataAbsentReason": {"text": "haemolysed"}}, "Observation: no value (dataAbsentReason)"),
])
def test_cancelled_and_not_done_are_skipped_and_counted(unchanged_ward, resource, reason):
    before = snapshot(unchanged_ward)
    report = run(unchanged_ward, later(resource))
    assert report.ok and dict(report.skipped) == {reason: 1}
    assert snapshot(unchanged_ward) == before


def _drop(res, *keys):
    return {k: v for k, v in res.items() if k not in keys}


MALFORMED = [
    pytest.param(_drop(obs("o9", "2276-4", 900, "ug/L"), "valueQuantity"),
                 "Observation.valueQuantity.value", "no valueQuantity value",
                 id="ferritin-without-value"),
    pytest.param(_drop(vital("t9"), "effectiveDateTime"), "Observation.effectiveDateTime",
                 "no effectiveDateTime", id="temperature-without-time"),
    pytest.param(vital("t9", value=39.2, unit="K"), "Observation.valueQuantity.unit",
                 "not a unit accepted for Temperature", id="temperature-in-kelvin"),
    pytest.param(vital("t9", value=39.2, unit=""), "Observation.valueQuantity.unit",
                 "has no unit", id="temperature-without-unit"),
    pytest.param(vital("t9", value=52, unit="Cel"), "Observation.valueQuantity.value",
                 "outside the possible range", id="temperature-past-the-entry-limit"),
    pytest.param(vital("s9", "59408-5", 140, "%"), "Observation.valueQuantity.value",
                 "outside the possible range", id="spo2-above-100"),
    pytest.param(vital("t9", when="2026-12-24T08:00:00Z"), "Observation.effectiveDateTime",
                 "in the future", id="vital-in-the-future"),
    pytest.param(_drop(med("m9"), "effectiveDateTime"),
                 "MedicationAdministration.effectiveDateTime", "no effectiveDateTime",
                 id="tocilizumab-without-time"),
    pytest.param(med("m9", dose=("a lot", "mg")), "MedicationAdministration.dosage.dose.value",
                 "must be a number", id="dose-not-a-number"),
    pytest.param(med("m9", subject="Patient/nobody"), "MedicationAdministration.subject",
                 "No patient with study ID 'nobody'", id="drug-for-an-unknown-patient"),
    pytest.param(med("m9", "Norepinephrine", "2026-11-20T10:00:00Z", end="2026-11-20T09:00"),
                 "MedicationAdministration.effectivePeriod.end", "ends before it starts",
                 id="vasopressor-ending-before-it-starts"),
    pytest.param(_drop(med("m9", "Norepinephrine"), "subject"),
                 "MedicationAdministration.subject", "no subject", id="vasopressor-no-subject"),
]


@pytest.mark.parametrize(("bad", "path", "message"), MALFORMED)
def test_a_malformed_resource_we_monitor_rejects_the_whole_file_with_position_and_path(
        unchanged_ward, bad, path, message):
    ward = unchanged_ward
    before = snapshot(ward)
    good = obs("o10", "2276-4", 900, "ug/L", "2026-11-15T08:00:00Z")
    report = run(ward, later(good, {"resourceType": "Encounter", "id": "e1"}, bad))
    assert not report.ok and not report.written
    hits = [e for e in report.errors if message in e.message]
    assert hits, [str(e) for e in report.errors]
    assert (hits[0].row, hits[0].column) == (4, path)
    assert snapshot(ward) == before


def test_an_ndjson_error_names_the_line(unchanged_ward):
    ward = unchanged_ward
    lines = [patient(), vital("t11", when="2026-11-19T09:00:00Z"),
             _drop(vital("t12"), "valueQuantity")]
    report = run(ward, "\n\n".join(json.dumps(r) for r in lines).encode())
    assert not report.ok
    assert [(e.row, e.column) for e in report.errors] == [
        (5, "Observation.valueQuantity.value")]

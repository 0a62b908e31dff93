"""Evaluation follows the data (issue 13 §1): every write path in core brings the alerts of
the patients it touched up to date in its own transaction, with no `evaluate`; a failing
evaluation never costs the data. On SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.capture.corrections import correct, mark_entered_in_error, verify
from core.capture.entry import enter_day, enter_grid
from core.config import Settings
from core.monitoring.monitor import run_cycle
from core.store.db import session_scope
from core.store.models import (
    Alert,
    AlertState,
    EvaluationFailure,
    LabResult,
    Patient,
    PatientStatus,
)
from tests.core.test_fhir import bundle, obs
from tests.core.test_fhir import patient as fhir_patient
from tests.core.test_fhir import run as fhir_run
from tests.core.test_importing import NOW, PATIENTS
from tests.core.test_importing import run as csv_run

WHEN = datetime(2026, 11, 14, 8, 0)  # day 4 of P001 (infusion 2026-11-10), ward time (UTC)
LOW_PLATELETS = (b"patient_id,collected_at,analyte,value,unit\n"
                 b"P001,2026-11-14T08:00,platelets,8,10^9/L\n")


@pytest.fixture
def ward(store: Engine) -> Engine:
    report = csv_run(store, PATIENTS)
    assert report.ok, report.errors
    return store


def alerts(engine: Engine, patient_id: str = "P001", rule: str = "ctcae_platelets") -> list[Alert]:
    with session_scope(engine) as s:
        return list(s.scalars(select(Alert).join(Patient, Patient.id == Alert.patient_pk)
                              .where(Patient.patient_id == patient_id, Alert.rule_id == rule)))


def lab_id(engine: Engine, analyte: str, patient_id: str = "P001") -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(LabResult.id).join(Patient, Patient.id == LabResult.patient_pk)
                            .where(Patient.patient_id == patient_id,
                                   LabResult.analyte == analyte,
                                   LabResult.status == "final")))


def test_a_critical_result_imported_raises_its_alert_without_evaluate(ward: Engine) -> None:
    assert alerts(ward) == []
    report = csv_run(ward, LOW_PLATELETS, user="nurse.kim")
    assert report.ok and report.written, report.errors
    [alert] = alerts(ward)
    assert (alert.state, alert.severity, alert.grade) == (AlertState.FIRING, "severe", 4)
    assert "screening flag" in alert.message.lower()
    assert alerts(ward, "P002") == []  # only the patient the write touched


def test_a_dry_run_or_a_refused_import_evaluates_nobody(ward: Engine) -> None:
    assert csv_run(ward, LOW_PLATELETS, dry_run=True).ok
    bad = LOW_PLATELETS + b"P001,2026-11-15T08:00,platelets,lots,10^9/L\n"
    assert not csv_run(ward, bad).ok
    assert alerts(ward) == [] and alerts(ward, "P001", "lab_overdue") == []


# Each write path, given a patient whose data already meets a rule but who was never
# evaluated (a row written behind the write path's back): the write brings the alert.

def _stale_critical(engine: Engine) -> None:
    """Platelets 8 for P001 and P002 written directly, not through a write path."""
    with session_scope(engine) as s:
        for pid in ("P001", "P002"):
            pk = s.scalar(select(Patient.id).where(Patient.patient_id == pid))
            s.add(LabResult(patient_pk=pk, analyte="platelets",
                            collected_at=datetime(2026, 11, 14, 7, tzinfo=UTC), value=8.0,
                            unit="10^9/L", original_value="8", original_unit="10^9/L",
                            source="manual"))


def _hand_entry(e: Engine) -> None:
    assert enter_day(e, "P001", WHEN, labs=[("ferritin", "900", "ng/mL")], user="n", now=NOW).ok


def _grid(e: Engine) -> None:
    grid = pd.DataFrame([{"date": date(2026, 11, 13), "ferritin": "850"}])
    assert enter_grid(e, "P001", grid, {"ferritin": "ng/mL"}, user="n", now=NOW).ok


def _csv(e: Engine) -> None:
    rows = b"patient_id,collected_at,analyte,value,unit\nP001,2026-11-13T08:00,crp,20,mg/L\n"
    assert csv_run(e, rows, user="n").ok


def _fhir(e: Engine) -> None:
    res = fhir_patient(pid="P001", rid="p1", infusion="2026-11-10")
    report = fhir_run(e, bundle(res, obs("o9", "3255-7", 3.0, "g/L")), user="n")
    assert report.ok and report.written, report.errors


def _correction(e: Engine) -> None:
    _hand_entry(e)
    correct(e, "labs", lab_id(e, "ferritin"), {"value": "950"}, "typo", "n", now=NOW)


def _entered_in_error(e: Engine) -> None:
    _hand_entry(e)
    mark_entered_in_error(e, "labs", lab_id(e, "ferritin"), "wrong_patient", "n")


def _verification(e: Engine) -> None:
    _hand_entry(e)
    assert verify(e, [lab_id(e, "ferritin")], "second.nurse") == []


def _episode(e: Engine) -> None:
    ep = {"kind": "CRS", "grade": 1, "onset": WHEN}
    assert enter_day(e, "P001", WHEN, episodes=[ep], user="dr", now=NOW).ok


def _treatment(e: Engine) -> None:
    tx = {"drug": "tocilizumab", "dose": 8, "dose_unit": "mg/kg"}
    assert enter_day(e, "P001", WHEN, treatments=[tx], user="n", now=NOW).ok


WRITES: dict[str, Callable[[Engine], None]] = {
    "hand-entry": _hand_entry, "grid": _grid, "csv-import": _csv, "fhir-import": _fhir,
    "correction": _correction, "entered-in-error": _entered_in_error,
    "verification": _verification, "episode": _episode, "treatment": _treatment,
}


@pytest.mark.parametrize("write", list(WRITES.values()), ids=list(WRITES))
def test_every_write_path_brings_its_patients_alerts_up_to_date(
        ward: Engine, write: Callable[[Engine], None]) -> None:
    _stale_critical(ward)
    assert alerts(ward) == []
    write(ward)
    [alert] = alerts(ward)
    assert alert.state == AlertState.FIRING and alert.grade == 4
    assert alerts(ward, "P002") == []  # untouched: still waits for the monitor


def test_a_death_recorded_resolves_the_patients_open_alerts(ward: Engine) -> None:
    assert csv_run(ward, LOW_PLATELETS).ok
    assert alerts(ward)[0].state == AlertState.FIRING
    events = b"patient_id,kind,at\nP001,death,2026-11-16T10:00\n"
    assert csv_run(ward, events, user="n").ok
    with session_scope(ward) as s:
        assert s.scalar(select(Patient.status).where(Patient.patient_id == "P001")) == (
            PatientStatus.DECEASED)
    [alert] = alerts(ward)
    assert alert.state == AlertState.RESOLVED


def test_a_failing_evaluation_keeps_the_data_and_the_monitor_retries_it(
        ward: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import core.monitoring.evaluation

    def broken(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("a rule met odd data")

    real = core.monitoring.evaluation._run_rules
    monkeypatch.setattr(core.monitoring.evaluation, "_run_rules", broken)
    with caplog.at_level(logging.ERROR, logger="core.store.unit_of_work"):
        report = csv_run(ward, LOW_PLATELETS, user="nurse.kim")
    assert report.ok and report.written  # the data is saved
    assert lab_id(ward, "platelets") > 0 and alerts(ward) == []
    assert "evaluation after a write failed" in caplog.text
    with session_scope(ward) as s:
        [failure] = s.scalars(select(EvaluationFailure)).all()
    assert failure.source == "write" and "ZeroDivisionError" in failure.error
    assert failure.retried_at is None

    monkeypatch.setattr(core.monitoring.evaluation, "_run_rules", real)
    cycle = run_cycle(ward, Settings.from_env(database_url=str(ward.url)))
    assert cycle.error is None and cycle.patients == 2
    assert alerts(ward)[0].state == AlertState.FIRING
    with session_scope(ward) as s:
        assert s.scalars(select(EvaluationFailure)).one().retried_at is not None

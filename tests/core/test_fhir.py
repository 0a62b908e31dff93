"""FHIR R4 import on SQLite and PostgreSQL: mapping, idempotency and a corpus of bad files.

The builders here (patient, obs, vital, med, bundle) serve the other tests/core/test_fhir_*
files too."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import select

from core.capture.fhir import import_fhir
from core.store.models import LabResult, Patient
from tests.core.test_importing import NOW, snapshot

EXT = "http://cartwatch.example/fhir/StructureDefinition/"


def patient(pid="F001", rid="p1", infusion="2026-11-10"):
    res = {"resourceType": "Patient", "id": rid,
           "identifier": [{"system": "urn:study", "value": pid}], "gender": "female",
           "birthDate": "1961-04-02",
           "extension": [{"url": EXT + "car-t-product", "valueString": "axi-cel"}]}
    if infusion:
        res["extension"].append({"url": EXT + "infusion-date", "valueDate": infusion})
    return res


def obs(rid="o1", loinc="3255-7", value=1.4, unit="g/L", when="2026-11-12T08:00:00Z",
        subject="Patient/p1", comparator=None):
    q = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    if comparator:
        q["comparator"] = comparator
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": subject}, "effectiveDateTime": when,
            "valueQuantity": q,
            "referenceRange": [{"low": {"value": 2.0, "unit": unit},
                                "high": {"value": 4.0, "unit": unit}}]}


def vital(rid="v1", loinc="8310-5", value=39.2, unit="Cel", when="2026-11-19T08:00:00Z",
          subject="Patient/p1", status="final"):
    q = {"value": value, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
    return {"resourceType": "Observation", "id": rid, "status": status,
            "category": [{"coding": [{"code": "vital-signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
            "subject": {"reference": subject}, "effectiveDateTime": when, "valueQuantity": q}


def med(rid="m1", name="Tocilizumab 20 mg/mL injection", when="2026-11-20T09:00:00Z",
        status="completed", end=None, dose=(560, "mg"), route="Intravenous",
        subject="Patient/p1", coding=None):
    res = {"resourceType": "MedicationAdministration", "id": rid, "status": status,
           "medicationCodeableConcept": {"text": name, "coding": coding or []},
           "subject": {"reference": subject}}
    if end is not None or status == "in-progress":
        res["effectivePeriod"] = {"start": when, **({"end": end} if end else {})}
    else:
        res["effectiveDateTime"] = when
    if dose is not None:
        res["dosage"] = {"dose": {"value": dose[0], "unit": dose[1]},
                         "route": {"text": route}}
    return res


def bundle(*resources):
    return json.dumps({"resourceType": "Bundle", "type": "collection",
                       "entry": [{"fullUrl": f"urn:uuid:{i}", "resource": r}
                                 for i, r in enumerate(resources)]}).encode()


def run(engine, data, **kw):
    kw.setdefault("now", NOW)
    return import_fhir(engine, data, "test.json", **kw)


GOOD = bundle(patient(), obs(), obs("o2", "2276-4", 2500, "ug/L", comparator=">"))


def test_a_bundle_registers_the_patient_and_converts_the_labs(store):
    report = run(store, GOOD, user="nurse.kim")
    assert report.ok and report.written, [str(e) for e in report.errors]
    assert report.rows_new == 3
    with store.connect() as c:
        p = c.execute(select(Patient)).one()
        labs = {r.analyte: r for r in c.execute(select(LabResult))}
    assert (p.patient_id, str(p.infusion_date), p.product, p.source) == (
        "F001", "2026-11-10", "axi-cel", "fhir")
    fib = labs["fibrinogen"]
    assert fib.value == pytest.approx(140) and fib.ref_low == pytest.approx(200)
    assert (fib.source, fib.source_record_id, fib.loinc) == ("fhir", "o1", "3255-7")
    assert (labs["ferritin"].qualifier, labs["ferritin"].value) == (">", 2500)


def test_reimporting_adds_nothing_and_ndjson_works(store):
    assert run(store, GOOD).ok
    before = snapshot(store)
    again = run(store, GOOD)
    assert again.ok and again.rows_new == 0 and again.rows_already_present == 3
    nd = "\n".join(json.dumps(r) for r in (patient(infusion=None), obs("o3", "1988-5", 40,
                                                                     "mg/L"))).encode()
    assert snapshot(store) == before
    report = run(store, nd)  # the patient is registered: no infusion date needed
    assert report.ok and report.rows_new == 1, [str(e) for e in report.errors]


def test_dry_run_writes_nothing(store):
    before = snapshot(store)
    report = run(store, GOOD, dry_run=True)
    assert report.ok and report.rows_new == 3 and not report.written
    assert snapshot(store) == before


def _bad(**changes):
    o = obs()
    for path, value in changes.items():
        target = o
        keys = path.split(".")
        for k in keys[:-1]:
            target = target[k]
        if value is None:
            target.pop(keys[-1])
        else:
            target[keys[-1]] = value
    return bundle(patient(), o)


BAD = [
    pytest.param(b"{not json", 0, "", "not valid JSON", id="bad-json"),
    pytest.param(b"", 0, "", "empty", id="empty"),
    pytest.param(json.dumps({"resourceType": "Bundle", "entry": []}).encode(), 0,
                 "Bundle.entry", "no entries", id="empty-bundle"),
    pytest.param(bundle(patient(), {"id": "x1"}), 2,
                 "resourceType", "no resource with a resourceType", id="no-resource-type"),
    pytest.param(bundle(patient(infusion=None), obs()), 1, "Patient.extension(infusion-date)",
                 "has no infusion date", id="patient-without-infusion-date"),
    pytest.param(_bad(valueQuantity=None), 2, "Observation.valueQuantity.value",
                 "no valueQuantity value", id="missing-value"),
    pytest.param(_bad(**{"valueQuantity.unit": "furlong", "valueQuantity.code": "furlong"}), 2,
                 "Observation.valueQuantity.unit", "not a unit accepted for Fibrinogen",
                 id="bad-unit"),
    pytest.param(_bad(**{"valueQuantity.unit": "mg/dL", "valueQuantity.code": "mg/dL",
                         "valueQuantity.value": 2.1}), 2,
                 "Observation.valueQuantity.value", "was it g/L?", id="unit-mixup"),
    pytest.param(_bad(**{"valueQuantity.comparator": ">="}), 2,
                 "Observation.valueQuantity.comparator", "Only the comparators",
                 id="bad-comparator"),
    pytest.param(_bad(effectiveDateTime=None), 2, "Observation.effectiveDateTime",
                 "no effectiveDateTime", id="missing-time"),
    pytest.param(_bad(effectiveDateTime="2026-12-24T08:00:00Z"), 2,
                 "Observation.effectiveDateTime", "in the future", id="future-time"),
    pytest.param(_bad(subject={"reference": "Patient/nobody"}), 2, "Observation.subject",
                 "No patient with study ID 'nobody'", id="unknown-subject"),
    pytest.param(b'{"resourceType": "Patient"}\nnot json\n', 2, "", "Line 2 is not valid JSON",
                 id="ndjson-bad-line"),
]


@pytest.mark.parametrize(("data", "row", "column", "message"), BAD)
def test_a_bad_fhir_file_is_refused_with_a_row_and_path_and_nothing_changes(
        store, data, row, column, message):
    before = snapshot(store)
    report = run(store, data)
    assert not report.ok and not report.written
    hits = [e for e in report.errors if message in e.message]
    assert hits, [str(e) for e in report.errors]
    assert (hits[0].row, hits[0].column) == (row, column)
    assert snapshot(store) == before


def test_one_bad_observation_keeps_the_good_patient_out_too(store):
    good = copy.deepcopy(GOOD)
    data = bundle(patient(), obs(), obs("o9", "3255-7", -1, "g/L", "2026-11-13T08:00:00Z"))
    assert good and not run(store, data).ok
    with store.connect() as c:
        assert c.execute(select(Patient)).all() == []

"""MedicationAdministration (SQLite): which medicine it is, the vasopressor count the CRS
grade reads, day 0 from the CAR-T product, and the site settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.capture.codemap import CodeMap, map_code
from core.capture.entry import save_site_setting
from core.capture.fhir import DAY0, EXTRA_DRUGS, PRODUCT_CODES
from core.capture.fhir.drugs import Medication, identify
from core.capture.fhir.read import Entry
from core.capture.fhir.vasopressors import VasoAdmin, derived_rows
from core.store.models import CodeMapEntry, CodeTarget, Observation, Patient, Treatment
from tests.core.test_fhir import bundle, med, patient, run, vital

NO_MAP = CodeMap([])
SITE_MAP = CodeMap([
    CodeMapEntry(system="urn:local:mar", code="TCZ", target_kind=CodeTarget.DRUG,
                 target="tocilizumab", created_by="admin"),
    CodeMapEntry(system="urn:local:mar", code="NE-DRIP", target_kind=CodeTarget.OBSERVATION,
                 target="vasopressors", created_by="admin"),
])


@pytest.mark.parametrize(("text", "coding", "expected"), [
    ("Tocilizumab 20 mg/mL injection", None, Medication("drug", "tocilizumab")),
    ("ACTEMRA 400 mg", None, Medication("drug", "tocilizumab")),
    ("Dexamethasone sodium phosphate 4 mg/mL", None, Medication("drug", "dexamethasone")),
    ("Solu-Medrol 125 mg", None, Medication("drug", "methylprednisolone")),
    ("Anakinra 100 mg syringe", None, Medication("drug", "anakinra")),
    ("Siltuximab", None, Medication("drug", "siltuximab")),
    ("Ruxolitinib 5 mg tablet", None, Medication("drug", "ruxolitinib")),
    ("Emapalumab-lzsg", None, Medication("drug", "emapalumab")),
    ("Etoposide 100 mg", None, Medication("drug", "etoposide")),
    ("Paracetamol 1 g IV", None, Medication("drug", "paracetamol")),
    ("Noradrenaline 4 mg in 50 mL", None, Medication("vasopressor", "norepinephrine")),
    ("Levophed", None, Medication("vasopressor", "norepinephrine")),
    ("Adrenaline 1 mg/mL", None, Medication("vasopressor", "epinephrine")),
    ("Phenylephrine 100 mcg/mL", None, Medication("vasopressor", "phenylephrine")),
    ("DOPamine 400 mg/250 mL", None, Medication("vasopressor", "dopamine")),
    ("Vasopressin 20 units/100 mL", None, Medication("vasopressin", "vasopressin")),
    ("DOBUTamine 250 mg/250 mL", None, Medication("inotrope", "dobutamine")),
    ("Yescarta (axicabtagene ciloleucel) suspension", None, Medication("product", "axi-cel")),
    ("KYMRIAH", None, Medication("product", "tisa-cel")),
    ("Cefepime 2 g", None, Medication("unknown", "Cefepime 2 g")),
    ("", {"system": "urn:local:mar", "code": "TCZ"}, Medication("drug", "tocilizumab")),
    ("drip", {"system": "urn:local:mar", "code": "NE-DRIP"},
     Medication("vasopressor", "code NE-DRIP")),
    ("Local product", {"system": "urn:local:mar", "code": "CART-7"},
     Medication("product", "CART-7")),
])
def test_a_medication_is_known_by_the_site_map_then_by_its_name(text, coding, expected):
    concept = {"text": text, "coding": [coding] if coding else []}
    assert identify(concept, SITE_MAP, ["CART-7"]) == expected


T = datetime(2026, 11, 20, tzinfo=UTC)
NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)


def at(hour: float) -> datetime:
    return T + timedelta(hours=hour)


def admin(n: int, drug: str, start: float, end: float | None = None, running: bool = True):
    entry = Entry(n, {"resourceType": "MedicationAdministration", "id": f"m{n}"})
    return VasoAdmin(entry, "F001", drug, at(start), None if end is None else at(end),
                     "MedicationAdministration.effectiveDateTime", open=running and end is None)


VASO = [
    pytest.param([admin(1, "norepinephrine", 10)], {"vasopressors": [(10, "1")]},
                 id="one-running"),
    pytest.param([admin(1, "norepinephrine", 10, 14), admin(2, "epinephrine", 12)],
                 {"vasopressors": [(10, "1"), (12, "2"), (14, "1")]}, id="overlap-then-stop"),
    pytest.param([admin(1, "norepinephrine", 10), admin(2, "norepinephrine", 11)],
                 {"vasopressors": [(10, "1"), (11, "1")]}, id="two-bags-one-drug"),
    pytest.param([admin(1, "norepinephrine", 10, 12)],
                 {"vasopressors": [(10, "1"), (12, "0")]}, id="stopped"),
    pytest.param([admin(1, "dopamine", 9), admin(2, "phenylephrine", 10, running=False)],
                 {"vasopressors": [(9, "1"), (10, "2")]}, id="a-bolus-counts-at-its-time"),
    pytest.param([admin(1, "norepinephrine", 10), admin(2, "vasopressin", 10, 12)],
                 {"vasopressors": [(10, "1")], "vasopressin": [(10, "yes"), (12, "no")]},
                 id="vasopressin-apart"),
    pytest.param([admin(1, "norepinephrine", 10, 40)], {"vasopressors": [(10, "1")]},
                 id="an-end-after-now-is-not-yet-a-stop"),
]


@pytest.mark.parametrize(("admins", "expected"), VASO)
def test_the_vasopressor_count_is_the_distinct_drugs_running_at_each_start_and_stop(
        admins, expected):
    rows = derived_rows(admins, NOW)
    got: dict[str, list] = {}
    for r in rows:
        when = datetime.fromisoformat(r.values["observed_at"])
        hours = (when - T).total_seconds() / 3600
        got.setdefault(r.values["kind"], []).append((hours, r.values["value"]))
    assert got == expected
    assert all(r.by_key and r.source_id.startswith("MedicationAdministration/") for r in rows)


def observations(engine):
    with engine.connect() as c:
        return c.execute(select(Observation.kind, Observation.value_num, Observation.status,
                                Observation.correction_reason)
                         .order_by(Observation.id)).all()


def test_a_later_file_that_knows_more_recomputes_the_count_and_supersedes_it(engine):
    ne = med("m2", "Norepinephrine", "2026-11-20T10:00:00Z", status="in-progress")
    assert run(engine, bundle(patient(), ne)).ok
    epi = med("m3", "Epinephrine", "2026-11-20T10:00:00Z", status="in-progress")
    report = run(engine, bundle(patient(), ne, epi))
    assert report.ok and report.superseded == 1, [str(e) for e in report.errors]
    (first, second) = observations(engine)
    assert first[:3] == ("vasopressors", 1, "superseded")
    assert second[:3] == ("vasopressors", 2, "final")
    assert "recomputed from the EHR's administration record" in second[3]


def test_day0_from_the_product_administration_only_when_the_site_allows_it(engine):
    data = bundle(patient(infusion=None),
                  med("car", "Yescarta (axicabtagene ciloleucel)", "2026-11-11T02:00:00Z",
                      dose=None), vital("t1", when="2026-11-12T08:00:00Z"))
    refused = run(engine, data, tz="America/New_York")
    assert not refused.ok
    (error,) = [e for e in refused.errors if e.row == 1]  # (row 3: its patient is unknown)
    assert error.column == "Patient.extension(infusion-date)"
    assert DAY0 in error.message and "administration of axi-cel" in error.message
    save_site_setting(engine, DAY0, True, "admin")
    report = run(engine, data, tz="America/New_York")
    assert report.ok, [str(e) for e in report.errors]
    assert report.skipped == {"MedicationAdministration: CAR-T product (gives day 0 only)": 1}
    with engine.connect() as c:
        p = c.execute(select(Patient.infusion_date, Patient.product)).one()
    assert (str(p.infusion_date), p.product) == ("2026-11-10", "axi-cel")  # ward date


def test_a_site_product_code_names_the_product(engine):
    save_site_setting(engine, DAY0, True, "admin")
    save_site_setting(engine, PRODUCT_CODES, ["CART-7"], "admin")
    given = med("car", "study cell product", "2026-11-10T10:00:00Z", dose=None,
                coding=[{"system": "urn:local:mar", "code": "CART-7"}])
    assert run(engine, bundle(patient(infusion=None), given)).ok
    with engine.connect() as c:
        assert c.execute(select(Patient.product)).scalar() == "axi-cel"  # its extension


def test_antipyretics_are_recorded_only_when_the_site_lists_them(engine):
    para = med("m5", "Paracetamol 1 g", "2026-11-19T09:00:00Z", dose=(1, "g"))
    first = run(engine, bundle(patient(), para))
    assert first.ok and first.skipped == {"MedicationAdministration: paracetamol not recorded": 1}
    save_site_setting(engine, EXTRA_DRUGS, ["paracetamol"], "admin")
    second = run(engine, bundle(patient(), para))
    assert second.ok and second.rows_new == 1 and not second.skipped
    with engine.connect() as c:
        assert c.execute(select(Treatment.drug, Treatment.dose)).all() == [("paracetamol", 1)]


def test_medication_reference_inotropes_and_unknown_medicines(engine):
    medication = {"resourceType": "Medication", "id": "toc",
                  "code": {"text": "Tocilizumab 400 mg/20 mL"}}
    by_ref = {k: v for k, v in med("m6").items() if k != "medicationCodeableConcept"}
    by_ref["medicationReference"] = {"reference": "Medication/toc"}
    report = run(engine, bundle(patient(), medication, by_ref,
                                med("m7", "DOBUTamine 250 mg", status="in-progress"),
                                med("m8", "Cefepime 2 g")))
    assert report.ok, [str(e) for e in report.errors]
    assert dict(report.skipped) == {
        "Medication: read only to name administrations": 1,
        "MedicationAdministration: dobutamine (an inotrope, not a vasopressor)": 1,
        "MedicationAdministration: medication not monitored": 1}
    with engine.connect() as c:
        assert c.execute(select(Treatment.drug)).scalars().all() == ["tocilizumab"]


@pytest.mark.parametrize(("name", "route", "reason"), [
    ("Lidocaine 1% with epinephrine 1:100,000", "Infiltration",
     "epinephrine in a local anaesthetic"),
    ("EPINEPHrine 0.3 mg auto-injector", "Intramuscular", "epinephrine not given into a vein"),
    ("Racepinephrine 2.25% nebulised", "Inhalation", "epinephrine not given into a vein"),
])
def test_epinephrine_that_does_not_treat_hypotension_is_not_counted(engine, name, route,
                                                                    reason):
    report = run(engine, bundle(patient(), med("m9", name, route=route, dose=(1, "mL"))))
    assert report.ok and report.rows_new == 1  # the patient only
    assert dict(report.skipped) == {f"MedicationAdministration: {reason} (not a vasopressor "
                                    "for the CRS grade)": 1}
    assert observations(engine) == []


def test_a_site_mapped_local_code_imports_as_a_vital_sign(engine):
    map_code(engine, system="urn:local:flowsheet", code="TEMP-ORAL", target_kind="observation",
             target="temperature", user="admin", reason="oral temperature row")
    local = vital("t9", value=38.6)
    local["code"] = {"coding": [{"system": "urn:local:flowsheet", "code": "TEMP-ORAL"}]}
    report = run(engine, bundle(patient(), local))
    assert report.ok and report.rows_new == 2, [str(e) for e in report.errors]
    assert observations(engine)[0][:2] == ("temperature", 38.6)

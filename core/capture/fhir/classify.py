"""Sort a file's resources: what becomes rows, what is retracted, what is skipped (counted
in the report, never an error), and errors for malformed resources that we do monitor."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.capture.codemap import CodeMap
from core.capture.fhir.drugs import concept, identify, not_counted, treatment_row
from core.capture.fhir.labs import lab_row
from core.capture.fhir.options import Options
from core.capture.fhir.patients import ProductGiven
from core.capture.fhir.read import Entry, Mapped, codings, effective, parse_time, subject_id
from core.capture.fhir.report import FhirReport
from core.capture.fhir.vasopressors import VasoAdmin, vaso_admin
from core.capture.fhir.vitals import vital_rows
from core.capture.importing import RowError
from core.store.models import CodeTarget

OBSERVATION_STATUSES = ("", "final", "amended", "corrected", "preliminary")
ADMINISTRATION_STATUSES = ("completed", "in-progress")


@dataclass
class Sorted:
    patients: list[Entry] = field(default_factory=list)
    mapped: list[Mapped] = field(default_factory=list)
    vaso: list[VasoAdmin] = field(default_factory=list)
    products: dict[str, list[ProductGiven]] = field(default_factory=lambda: defaultdict(list))
    retract: list[Entry] = field(default_factory=list)


def medication_index(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """Medication resources of the file by how an administration refers to them."""
    out: dict[str, dict[str, Any]] = {}
    for e in entries:
        if e.rtype == "Medication":
            if e.rid:
                out[f"Medication/{e.rid}"] = e.res
            if e.full_url:
                out[e.full_url] = e.res
    return out


def sort_entries(entries: list[Entry], *, codes: CodeMap, options: Options,
                 refs: dict[str, str], tz: str, errors: list[RowError],
                 report: FhirReport) -> Sorted:
    found = Sorted()
    medications = medication_index(entries)
    for e in entries:
        if not e.rtype:
            errors.append(RowError(e.row, "resourceType", "", "This entry has no resource "
                                   "with a resourceType."))
        elif e.rtype == "Patient":
            found.patients.append(e)
        elif e.rtype == "Observation":
            _observation(e, codes, refs, errors, report, found)
        elif e.rtype == "MedicationAdministration":
            _administration(e, codes, options, refs, tz, medications, errors, report, found)
        elif e.rtype == "Medication":
            report.skip("Medication: read only to name administrations")
        else:
            report.skip(f"{e.rtype}: resource type not monitored")
    return found


def _observation(e: Entry, codes: CodeMap, refs: dict[str, str], errors: list[RowError],
                 report: FhirReport, found: Sorted) -> None:
    if e.status == "entered-in-error":
        found.retract.append(e)
        return
    if e.status not in OBSERVATION_STATUSES:
        report.skip(f"Observation: status {e.status}")
        return
    target = codes.resolve_any(codings(e.res.get("code")))
    if target is not None and target.kind is CodeTarget.DRUG:
        report.skip("Observation: code names a drug, not a result")
        return
    has_value = any(k.startswith("value") for k in e.res) or bool(e.res.get("component"))
    if target is not None and not has_value and e.res.get("dataAbsentReason"):
        report.skip("Observation: no value (dataAbsentReason)")
        return
    if target is not None and target.kind is CodeTarget.ANALYTE:
        row = lab_row(e, target, refs, errors)
        if row is not None:
            found.mapped.append(row)
        return
    problems: list[RowError] = []
    rows = vital_rows(e, target, codes, refs, problems)
    if e.status == "preliminary" and (rows or problems):
        # bedside observations have no preliminary flag: the final version will come
        report.skip("Observation: preliminary vital sign (only labs are kept as preliminary)")
    elif problems:
        errors.extend(problems)
    elif not rows:
        report.skip("Observation: code not monitored")
    else:
        found.mapped.extend(rows)


def _administration(e: Entry, codes: CodeMap, options: Options, refs: dict[str, str],
                    tz: str, medications: dict[str, dict[str, Any]],
                    errors: list[RowError], report: FhirReport, found: Sorted) -> None:
    if e.status == "entered-in-error":
        found.retract.append(e)
        return
    if e.status not in ADMINISTRATION_STATUSES:
        report.skip(f"MedicationAdministration: status {e.status or 'missing'}")
        return
    named = concept(e, medications)
    med = identify(named, codes, list(options.product_codes))
    if med.kind == "drug":
        if med.name not in options.recorded:
            report.skip(f"MedicationAdministration: {med.name} not recorded")
            return
        row = treatment_row(e, med.name, refs, errors)
        if row is not None:
            found.mapped.append(row)
    elif med.kind in ("vasopressor", "vasopressin"):
        why = not_counted(e, named)
        if why is not None:
            report.skip(f"MedicationAdministration: {med.name} {why} (not a vasopressor "
                        "for the CRS grade)")
            return
        admin = vaso_admin(e, med.name, refs, tz, errors)
        if admin is not None:
            found.vaso.append(admin)
    elif med.kind == "product":
        pid, _ref = subject_id(e.res, refs)
        when, _path = effective(e.res, e.rtype)
        if pid:
            found.products[pid].append(ProductGiven(e, med.name,
                                                    parse_time(when, tz) if when else None))
        report.skip("MedicationAdministration: CAR-T product (gives day 0 only)")
    elif med.kind == "inotrope":
        report.skip(f"MedicationAdministration: {med.name} (an inotrope, not a vasopressor)")
    else:
        report.skip("MedicationAdministration: medication not monitored")

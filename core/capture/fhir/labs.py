"""A laboratory Observation -> one labs row (the CSV kind), checked by the CSV import.

valueQuantity value/unit (UCUM or a spelling core.vocabulary.units accepts; the site map's unit
when the
source's own is missing or not convertible), comparator < or > as the qualifier,
referenceRange low/high, effectiveDateTime (or effectivePeriod.start), subject."""

from __future__ import annotations

from core.capture.codemap import LOINC_SYSTEMS, Target
from core.capture.fhir.read import Entry, Mapped, codings, subject_or_error, time_or_error
from core.capture.importing import RowError
from core.vocabulary.units import ANALYTES, LOINC_TO_ANALYTE, conversion_factor

LAB_PATHS = {"patient_id": "Observation.subject", "analyte": "Observation.code.coding",
             "loinc": "Observation.code.coding", "value": "Observation.valueQuantity.value",
             "unit": "Observation.valueQuantity.unit",
             "qualifier": "Observation.valueQuantity.comparator",
             "collected_at": "Observation.effectiveDateTime",
             "ref_low": "Observation.referenceRange.low",
             "ref_high": "Observation.referenceRange.high"}


def lab_row(entry: Entry, target: Target, refs: dict[str, str],
            errors: list[RowError]) -> Mapped | None:
    """The labs row of one Observation whose code resolved to an analyte, or None with
    errors recorded (position and FHIR path)."""
    res, row, before = entry.res, entry.row, len(errors)
    analyte = target.code
    pid = subject_or_error(entry, refs, errors)
    qty = res.get("valueQuantity")
    value = unit = comparator = ""
    if not isinstance(qty, dict) or qty.get("value") is None:
        errors.append(RowError(row, "Observation.valueQuantity.value", "",
                               "The Observation has no valueQuantity value (a number with "
                               "its unit)."))
    else:
        value = str(qty.get("value"))
        unit = str(qty.get("unit") or qty.get("code") or "")
        comparator = str(qty.get("comparator") or "")
        if target.unit and (not unit or conversion_factor(ANALYTES[analyte], unit) is None):
            unit = target.unit  # the site map says how this local code's values are sent
        if not unit:
            errors.append(RowError(row, "Observation.valueQuantity.unit", value,
                                   "The valueQuantity has no unit."))
        if comparator and comparator not in ("<", ">"):
            errors.append(RowError(row, "Observation.valueQuantity.comparator", comparator,
                                   "Only the comparators < and > are accepted."))
    when, when_path = time_or_error(entry, errors, "when the sample was taken")
    if len(errors) > before:
        return None
    ref_range = (res.get("referenceRange") or [{}])[0] or {}
    loinc = next((c for s, c in codings(res.get("code"))
                  if (s in LOINC_SYSTEMS or not s) and LOINC_TO_ANALYTE.get(str(c)) == analyte),
                 "")
    values = {"patient_id": str(pid), "collected_at": str(when), "analyte": analyte,
              "value": value, "unit": unit, "qualifier": comparator,
              "ref_low": str((ref_range.get("low") or {}).get("value", "")),
              "ref_high": str((ref_range.get("high") or {}).get("value", "")),
              "loinc": str(loinc or "")}
    return Mapped("labs", entry, values, {**LAB_PATHS, "collected_at": when_path},
                  entry.rid or None, preliminary=entry.status == "preliminary")

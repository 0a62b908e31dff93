"""A vital-sign Observation -> observations rows (the CSV kind), checked by the CSV import
(data-entry limits of core.vocabulary.observations), so a FHIR temperature is exactly a typed one.

Kinds come from the site code map, then the FHIR vital-signs LOINC codes (core.capture.codemap:
8310-5 temperature, 8867-4 heart rate, 9279-1 respiratory rate, 8480-6 / 8462-4 systolic /
diastolic pressure, 59408-5 / 2708-6 SpO2, 3151-8 inhaled oxygen flow). A blood-pressure
panel (85354-9) carries its pressures as components: each component whose code resolves
becomes its own row (source_record_id `<id>#<code>`).

Units: temperature Cel / [degF] (converted to °C, the source value kept in the note); SpO2
%; oxygen flow L/min; pressures mm[Hg]; rates /min. A number without a unit is accepted
except for temperature and oxygen flow (where the unit decides the value). Yes/no and choice
kinds mapped by a site take valueBoolean, valueString, valueInteger or a
valueCodeableConcept's code or text.
"""

from __future__ import annotations

from typing import Any

from core.capture.codemap import CodeMap, Target
from core.capture.fhir.read import Entry, Mapped, codings, subject_or_error, time_or_error
from core.capture.importing import RowError
from core.store.models import CodeTarget
from core.vocabulary.observations import OBSERVATION_KINDS, ValueType

OBS_PATHS = {"patient_id": "Observation.subject", "observed_at": "Observation.effectiveDateTime",
             "kind": "Observation.code.coding", "value": "Observation.valueQuantity.value",
             "unit": "Observation.valueQuantity.unit", "note": "Observation.note"}

_CELSIUS = {"cel", "°c", "c", "degc", "deg c", "celsius"}
_FAHRENHEIT = {"[degf]", "°f", "f", "degf", "deg f", "fahrenheit"}
_PER_MIN = {"/min", "1/min", "min-1", "/min."}
UNITS: dict[str, set[str]] = {
    "temperature": _CELSIUS | _FAHRENHEIT,
    "heart_rate": _PER_MIN | {"{beats}/min", "{beat}/min", "beats/min", "bpm", "{h.b.}/min"},
    "respiratory_rate": _PER_MIN | {"{breaths}/min", "{breath}/min", "breaths/min"},
    "systolic_bp": {"mm[hg]", "mmhg", "mm hg"},
    "diastolic_bp": {"mm[hg]", "mmhg", "mm hg"},
    "spo2": {"%", "percent"},
    "oxygen_flow": {"l/min", "l/min.", "lpm"},
}
UNIT_REQUIRED = {"temperature", "oxygen_flow"}


def vital_rows(entry: Entry, target: Target | None, codes: CodeMap, refs: dict[str, str],
               errors: list[RowError]) -> list[Mapped]:
    """The observations rows of one Observation (its own code, else its components'), or
    [] with errors recorded; [] without errors means nothing here is monitored."""
    parts: list[tuple[Target, dict[str, Any], str, str | None]] = []
    if target is not None:
        parts.append((target, entry.res, "Observation", entry.rid or None))
    else:
        for i, comp in enumerate(entry.res.get("component") or []):
            if not isinstance(comp, dict):
                continue
            t = codes.resolve_any(codings(comp.get("code")))
            if t is not None and t.kind is CodeTarget.OBSERVATION:
                code = codings(comp.get("code"))[0][1]
                parts.append((t, comp, f"Observation.component[{i}]",
                              f"{entry.rid}#{code}" if entry.rid else None))
    if not parts:
        return []
    before = len(errors)
    pid = subject_or_error(entry, refs, errors)
    when, when_path = time_or_error(entry, errors, "when it was measured")
    out = []
    for t, holder, path, source_id in parts:
        value = _value(entry, t, holder, path, errors)
        if value is None or len(errors) > before:
            continue
        raw, unit, note = value
        values = {"patient_id": str(pid), "observed_at": str(when), "kind": t.code,
                  "value": raw, "unit": unit, "note": note}
        number = OBSERVATION_KINDS[t.code].type is ValueType.NUMBER
        paths = {**OBS_PATHS, "observed_at": when_path,
                 "value": f"{path}.valueQuantity.value" if number else f"{path}.value[x]",
                 "unit": f"{path}.valueQuantity.unit"}
        out.append(Mapped("observations", entry, values, paths, source_id))
    return [] if len(errors) > before else out


def _value(entry: Entry, target: Target, holder: dict[str, Any], path: str,
           errors: list[RowError]) -> tuple[str, str, str] | None:
    """(value, unit, note) as the observations import reads them, or None with an error."""
    spec = OBSERVATION_KINDS[target.code]
    if spec.type is not ValueType.NUMBER:
        raw = _coded(holder)
        if raw is None:
            errors.append(RowError(entry.row, f"{path}.value[x]", "",
                                   f"The {spec.label} has no value (valueBoolean, "
                                   "valueString or valueCodeableConcept)."))
            return None
        return raw, "", ""
    qty = holder.get("valueQuantity")
    if not isinstance(qty, dict) or qty.get("value") is None:
        errors.append(RowError(entry.row, f"{path}.valueQuantity.value", "",
                               f"The {spec.label} has no valueQuantity value (a number with "
                               "its unit)."))
        return None
    raw = str(qty["value"])
    unit = str(qty.get("code") or qty.get("unit") or target.unit or "").strip()
    key = unit.lower()
    accepted = UNITS.get(target.code)
    if not unit and target.code in UNIT_REQUIRED:
        errors.append(RowError(entry.row, f"{path}.valueQuantity.unit", raw,
                               f"The {spec.label} has no unit; send Cel or [degF]"
                               if target.code == "temperature" else
                               f"The {spec.label} has no unit; send L/min."))
        return None
    if unit and accepted is not None and key not in accepted:
        errors.append(RowError(entry.row, f"{path}.valueQuantity.unit", unit,
                               f"{unit!r} is not a unit accepted for {spec.label} (accepted: "
                               f"{', '.join(sorted(accepted))})."))
        return None
    if target.code == "temperature" and key in _FAHRENHEIT:
        try:
            fahrenheit = float(raw)
        except ValueError:
            errors.append(RowError(entry.row, f"{path}.valueQuantity.value", raw,
                                   f"{spec.label} must be a number, not {raw!r}."))
            return None
        celsius = round((fahrenheit - 32.0) * 5.0 / 9.0, 2)
        return f"{celsius:g}", spec.unit or "", f"{raw} {unit} in the source EHR"
    return raw, spec.unit or "", ""


def _coded(holder: dict[str, Any]) -> str | None:
    if isinstance(holder.get("valueBoolean"), bool):
        return "yes" if holder["valueBoolean"] else "no"
    for key in ("valueString", "valueInteger"):
        if holder.get(key) is not None:
            return str(holder[key])
    concept = holder.get("valueCodeableConcept")
    if isinstance(concept, dict):
        found = codings(concept)
        if found:
            return str(found[0][1])
        if concept.get("text"):
            return str(concept["text"])
    return None

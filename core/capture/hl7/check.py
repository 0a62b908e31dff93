"""Parsed HL7 messages checked before anything of them is written (core.capture.hl7.results
then writes each).

`check_all` reads and writes nothing: the patients and codes some messages name are read
once for all of them (`Lookups`), their values validated as one import, and what is stored
for their patients, items and times read once a kind (a group of messages that arrived
together, core.capture.hl7.receive). Values pass through the import's own validation
(`core.capture.importing.validate.PREPARE`: units, plausibility, times), so a value
arriving by HL7 is held to the same rules as one in a CSV file. What is HL7's own:
- the patient (PID-3) and the code (OBX-3, through the site code map, then LOINC) must be
  known, else the message is held (`Hold`);
- values past a soft plausibility limit are taken as confirmed (the laboratory has released
  them: there is nobody at the sending end to confirm); impossible values are refused;
- an error is reported at the OBX (and field) of its own message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, cast

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from core.capture.codemap import LOINC_SYSTEMS, CodeMap, Target
from core.capture.hl7.parse import DATA_TYPE_ERROR, DELETE, SKIP, Parsed, Problem, Result
from core.capture.hl7.stored import stored_rows
from core.capture.importing import Context, _check_lengths, _patient_index
from core.capture.importing.reading import RowError
from core.capture.importing.validate import PREPARE
from core.capture.importing.writing import _key_hash
from core.capture.importing.writing import _records as frame_records
from core.store.models import CodeTarget, LabResult, Observation
from core.vocabulary.observations import OBSERVATION_KINDS

log = logging.getLogger(__name__)

# import column -> OBX field, for pointing an AE at the field the import's check refused
FIELD_OF = {"value": 5, "qualifier": 5, "unit": 6, "ref_low": 7, "ref_high": 7,
            "collected_at": 14, "observed_at": 14, "analyte": 3, "loinc": 3, "kind": 3,
            "note": 8, "patient_id": 3}
# the spellings an EHR sends for the bedside observations' units (UCUM first)
OBSERVATION_UNITS = {
    "°C": {"cel", "°c", "degc", "c", "deg c"},
    "/min": {"/min", "{beats}/min", "{breaths}/min", "bpm", "beats/min", "breaths/min", "min-1"},
    "mmHg": {"mm[hg]", "mmhg", "mm hg"},
    "%": {"%", "percent"},
    "L/min": {"l/min", "l/mn"},
}


class Hold(Exception):  # noqa: N818 - a decision, not an error
    """The message cannot be placed yet (unknown patient or code); it waits for a person."""

    def __init__(self, reason: str, patient_id: str | None) -> None:
        super().__init__(reason)
        self.reason, self.patient_id = reason, patient_id


@dataclass
class Applied:
    rows_written: int = 0
    notes: list[str] = field(default_factory=list)
    patient_id: str | None = None

    def summary(self) -> str:
        head = f"{self.rows_written} change(s) written"
        return "; ".join([head, *self.notes])[:2000]


@dataclass(frozen=True)
class Lookups:
    """The registered patients (study ID -> primary key, infusion date) and the site code
    map entries some messages name, each read in one query for all of them: a group of
    messages shares one write transaction, in which neither changes."""

    patients: dict[str, tuple[int, date]]
    codes: CodeMap

    @classmethod
    def read(cls, session: Session, messages: Iterable[Parsed],
             matched: Mapping[str, str] | None = None) -> Lookups:
        """`matched`: PID-3 value -> registered patient, set by a person."""
        ids: set[str] = set()
        codes: set[str] = set()
        for parsed in messages:
            ids.update(parsed.patient_ids)
            codes.update(c.strip() for r in parsed.results if r.status != SKIP
                         for _s, c in r.codings if c)
        if matched:
            ids.update(matched[p] for p in list(ids) if p in matched)
        return cls(_patient_index(session, ids), CodeMap.load(session, codes=codes))


@dataclass
class Checked:
    """A message held to the patients, the code map and the import's validation, with
    nothing written yet: its results by kind, each with its target and, once validated, the
    row the import prepared for it; and the patient an ADT names. `write` applies it."""

    parsed: Parsed
    out: Applied
    adt_patient: str | None = None
    kinds: dict[CodeTarget, list[tuple[Result, Target]]] = field(default_factory=dict)
    patient_of: dict[str, str] = field(default_factory=dict)  # PID-3 -> registered patient
    rows: dict[CodeTarget, list[dict[str, Any]]] = field(default_factory=dict)
    # per kind: the value stored for each row's patient, item and time, and the row keys
    # taken, as read before any message of the group was written (`_read_stored`)
    stored: dict[CodeTarget, tuple[list[Any], set[str]]] = field(default_factory=dict)


Outcome = Checked | Hold | Problem | Exception  # an Exception: a defect met by this message


def check_all(session: Session, messages: Sequence[Parsed], *, tz: str,
              matched: dict[str, str] | None = None) -> list[Outcome]:
    """Each message checked (`Checked`), or why it is held (Hold) or refused (Problem): the
    patients and codes they name read in one query each, the values of each kind validated
    as one import of all their rows. Reads, never writes."""
    lookups = Lookups.read(session, messages, matched)
    placed: list[Outcome] = []
    for parsed in messages:
        try:
            placed.append(_placed(parsed, lookups, matched or {}))
        except (Hold, Problem) as outcome:
            placed.append(outcome)
    ctx = Context(tz=tz, now=datetime.now(UTC), patients=lookups.patients,
                  confirm_unusual=True)
    for kind in (CodeTarget.ANALYTE, CodeTarget.OBSERVATION):
        which = [n for n, c in enumerate(placed) if isinstance(c, Checked) and c.kinds.get(kind)]
        checked = [cast(Checked, placed[n]) for n in which]
        if not checked:
            continue
        found: list[Exception | None]
        try:
            found = list(_validated(kind, checked, ctx))
        except Exception as exc:  # a defect: each message alone, so it costs only its own
            log.warning("HL7: %d message(s) could not be validated together (%s); each alone",
                        len(checked), exc)
            found = [_validated_alone(kind, c, ctx) for c in checked]
        for n, refusal in zip(which, found, strict=True):
            if refusal is not None:
                placed[n] = refusal
    checked_all = [c for c in placed if isinstance(c, Checked)]
    try:
        _read_stored(session, checked_all)
    except Exception as exc:  # each message reads its own when written, alone
        log.warning("HL7: the stored values of %d message(s) could not be read together "
                    "(%s); each reads its own", len(checked_all), exc)
        for c in checked_all:
            c.stored.clear()
    return placed


def _read_stored(session: Session, checked: list[Checked]) -> None:
    """What is stored for each result's patient, item and time (`stored_rows`), and which
    of their row keys are taken, in one query each per kind, for the messages none of whose
    results names the patient, item and time of an earlier message's: a message that does
    is written after that one, so `write` reads what it finds then."""
    for kind in (CodeTarget.ANALYTE, CodeTarget.OBSERVATION):
        labs = kind is CodeTarget.ANALYTE
        model: Any = LabResult if labs else Observation
        seen: set[str] = set()
        alone: list[Checked] = []
        for c in checked:
            keys = {row["_row_key"] for row in c.rows.get(kind, ())}
            if keys and not keys & seen:
                alone.append(c)
            seen |= keys
        rows = [row for c in alone for row in c.rows[kind]]
        if not rows:
            continue
        current = stored_rows(session, model, labs, rows)
        taken = set(session.execute(select(model.row_key).where(
            model.row_key.in_({row["_row_key"] for row in rows}))).scalars())
        at = 0
        for c in alone:
            n = len(c.rows[kind])
            c.stored[kind] = (current[at:at + n], taken)
            at += n


def _placed(parsed: Parsed, lookups: Lookups, matched: dict[str, str]) -> Checked:
    """The message's patients and codes placed (else Hold), its results sorted by kind."""
    patients = lookups.patients

    def resolve(pid: str) -> str:
        return pid if pid in patients else matched.get(pid, pid)

    unknown = [pid for pid in parsed.patient_ids if resolve(pid) not in patients]
    if unknown:
        ref = (parsed.adt.patient if parsed.adt else next(
            r.patient for r in parsed.results if r.patient.patient_id == unknown[0]))
        sent = ", ".join(ref.all_ids)
        what = (f"no registered patient with PID-3 {unknown[0]!r}" if unknown[0]
                else "no PID-3 identifier of the site's identifier type")
        raise Hold(f"Held: {what} (PID-3 sent: {sent}). Match it to a registered patient, "
                   "then release.", unknown[0] or (ref.all_ids[0] if ref.all_ids else None))
    out = Applied(notes=list(parsed.notes),
                  patient_id=resolve(parsed.patient_ids[0]) if parsed.patient_ids else None)
    if parsed.adt is not None:
        return Checked(parsed, out, adt_patient=resolve(parsed.adt.patient.patient_id))
    checked = Checked(parsed, out, kinds={CodeTarget.ANALYTE: [], CodeTarget.OBSERVATION: []},
                      patient_of={pid: resolve(pid) for pid in parsed.patient_ids})
    targets = _targets(parsed, lookups.codes)
    for result in parsed.results:
        if result.status == SKIP:
            out.notes.append(f"OBX #{result.seq} ({result.code_text}) has status "
                             f"{result.status_code}: no value to store")
            continue
        target = targets[result.seq]
        checked.kinds[target.kind].append((result, target))
    return checked


def target_of(codes: CodeMap, parsed: Parsed, result: Result) -> Target | None:
    """What an OBX-3 means here: its codings through the site code map (for their own
    system, then under the sending application's name), then LOINC; None when unknown."""
    app = parsed.header.sending_app
    return codes.resolve_any([*result.codings, *((app, c) for _s, c in result.codings)])


def _targets(parsed: Parsed, codes: CodeMap) -> dict[int, Target]:
    found: dict[int, Target] = {}
    for result in parsed.results:
        if result.status == SKIP:
            continue
        target = target_of(codes, parsed, result)
        if target is None or target.kind is CodeTarget.DRUG:
            # a result message does not record a drug given (that is FHIR
            # MedicationAdministration or a treatments CSV): an OBX coded as a drug is more
            # likely a drug level, so it is not guessed into a treatment
            why = ("maps to a drug (a treatment), which a result message (ORU) does not "
                   "record. An admin maps the code to a lab analyte or a bedside observation "
                   "instead, then release; or dismiss the message with a reason"
                   if target is not None else
                   "is neither in the site code map nor a LOINC code CAR-T Watch monitors. "
                   "An admin maps the code, then release")
            raise Hold(f"Held: OBX #{result.seq} code {result.code_text!r} {why}.",
                       result.patient.patient_id)
        found[result.seq] = target
    return found


def _obs_unit(result: Result, kind: str) -> str:
    spec = OBSERVATION_KINDS[kind]
    if not result.unit or spec.unit is None:
        return spec.unit or result.unit
    if result.unit == spec.unit or result.unit.strip().lower() in OBSERVATION_UNITS.get(
            spec.unit, set()):
        return spec.unit
    raise Problem("OBX", result.seq, 6, DATA_TYPE_ERROR,
                  f"unit {result.unit!r} is not accepted for {spec.label} (expected "
                  f"{spec.unit})")


def _records(kind: CodeTarget, checked: Checked) -> list[dict[str, str | None]]:
    """The message's results of `kind` as the import's input rows (text, as in a CSV)."""
    records: list[dict[str, str | None]] = []
    for r, t in checked.kinds[kind]:
        when = r.observed_at.astimezone(UTC).isoformat()
        pid = checked.patient_of[r.patient.patient_id]
        if kind is CodeTarget.ANALYTE:
            loinc = next((c for s, c in r.codings if s in LOINC_SYSTEMS), "")
            records.append({"patient_id": pid, "collected_at": when, "analyte": t.code,
                            "value": r.value or "0", "unit": t.unit or r.unit,
                            "qualifier": r.qualifier, "ref_low": r.ref_low,
                            "ref_high": r.ref_high, "loinc": loinc if t.by == "LOINC" else ""})
        else:
            note = f"HL7 flags: {r.flags}" if r.flags else ""
            records.append({"patient_id": pid, "observed_at": when, "kind": t.code,
                            "value": r.value or "0", "unit": _obs_unit(r, t.code),
                            "note": note})
    return records


_DUPLICATE = re.compile(r"Duplicate of row (\d+)")


def _validated(kind: CodeTarget, checked: list[Checked], ctx: Context) -> list[Problem | None]:
    """The results of `kind` of several messages validated as one import (the rows the
    import prepared are kept on each message), and each message's refusal, if any.

    A row repeating the patient, item and time of another message's row is not a duplicate
    here: each message is applied after the ones before it (a correction after a value)."""
    name = "labs" if kind is CodeTarget.ANALYTE else "observations"
    refused: list[Problem | None] = [None] * len(checked)
    records: list[dict[str, str | None]] = []
    owner: list[int] = []  # each input row's message
    for n, c in enumerate(checked):
        try:
            mine = _records(kind, c)
        except Problem as p:  # a unit the bedside observation does not take
            refused[n] = p
            continue
        records += mine
        owner += [n] * len(mine)
    if not records:
        return refused
    ctx = replace(ctx, errors=[])
    prepared = PREPARE[name](pd.DataFrame(records, dtype=str), ctx)
    rows = frame_records(prepared)  # plain Python values, one dict per OBX
    _check_lengths(name, prepared, ctx, rows)
    starts: dict[int, int] = {}  # each message's first row
    for i, n in enumerate(owner):
        starts.setdefault(n, i)
    errors: dict[int, list[RowError]] = {}
    for e in ctx.errors:
        n, i = owner[e.row - 2], e.row - 2 - starts[owner[e.row - 2]]
        if _DUPLICATE.match(e.message):  # a duplicate only of a row of its own message
            key = rows[e.row - 2]["_natural"]
            first = next(j for j in range(starts[n], e.row - 1) if rows[j]["_natural"] == key)
            if first == e.row - 2:
                continue
            e = replace(e, message=_DUPLICATE.sub(f"Duplicate of row {first - starts[n] + 2}",
                                                  e.message))
        if not _is_retraction(checked[n].kinds[kind], i + 2, e.column):
            errors.setdefault(n, []).append(replace(e, row=i + 2))
    for n, row in zip(owner, rows, strict=True):
        row["_row_key"] = _key_hash(name, row["_natural"])
        row["_content"] = _key_hash(name, row["_value_key"])
        checked[n].rows.setdefault(kind, []).append(row)
    for n, found in errors.items():
        refused[n] = _problems(found, checked[n].kinds[kind])
    return refused


def _validated_alone(kind: CodeTarget, checked: Checked,
                     ctx: Context) -> Exception | None:
    """One message's results of `kind` validated on their own (after a defect met when
    validating several together): its refusal, or the defect it meets."""
    checked.rows.pop(kind, None)
    try:
        return _validated(kind, [checked], ctx)[0]
    except Exception as exc:
        return exc


def _problems(errors: list[RowError], items: list[tuple[Result, Target]]) -> Problem:
    """The import's row errors as a Problem at the OBX (and field) they came from."""
    found = []
    for e in errors:
        i = e.row - 2
        result = items[i][0] if 0 <= i < len(items) else items[0][0]
        column = e.column.split(" or ")[0]
        field_no = FIELD_OF.get(column, 5)
        text = _DUPLICATE.sub(lambda m: f"Duplicate of OBX #{items[int(m.group(1)) - 2][0].seq}",
                              e.message).replace("this file", "this message")
        found.append(Problem("OBX", result.seq, field_no, DATA_TYPE_ERROR,
                             f"{result.code_text}: {text}"))
    first = found[0]
    first.extra = found[1:]
    return first


def _is_retraction(items: list[tuple[Result, Target]], row: int, column: str) -> bool:
    """D/W results carry no value to check: only their item and time matter."""
    i = row - 2
    return (0 <= i < len(items) and items[i][0].status == DELETE
            and column in ("value", "unit", "qualifier", "ref_low", "ref_high", "loinc"))

"""Vasopressor administrations -> the bedside observations the CRS grade reads.

The ASTCT CRS grade (criteria §5.1, core/rules/crs.py) reads two observation kinds:
`vasopressors` (how many vasopressors, excluding vasopressin: 1 is grade 3, 2 or more
grade 4) and `vasopressin` (yes: with or without one vasopressor, grade 3); criteria §12.2
asks for "vasopressor use: number and names (vasopressin flagged separately)". An EHR
records each drug's administration, not that number, so this module derives it.

The rule, per patient, from the vasopressor MedicationAdministrations in the file
(status completed or in-progress; norepinephrine/noradrenaline, epinephrine/adrenaline,
phenylephrine, dopamine, or a local code the site map sends to the `vasopressors` kind;
vasopressin apart; dobutamine and milrinone are inotropes, not vasopressors, and skipped;
so is [DESIGN] epinephrine in a local anaesthetic or given other than into a vein, e.g. an
anaphylaxis pen or a nebuliser, which does not treat CRS hypotension):
- an administration runs over [effectivePeriod.start, effectivePeriod.end); one in progress
  with no end runs on (to the end of what the file tells); a completed one with a single
  time (effectiveDateTime, or a period without an end) runs at that instant only;
- at every instant an administration starts, and every past instant one ends, the file
  gives one `vasopressors` observation = the number of DISTINCT non-vasopressin drugs
  running then (two bags of norepinephrine are one vasopressor; an end gives the lower
  count, 0 when none is left), and, for a patient with vasopressin in the file, one
  `vasopressin` observation (yes while it runs, no when it ends);
- the note names every drug running (and stopped) with its resource, e.g.
  "norepinephrine (MedicationAdministration/ma1)": entered-in-error on one of them
  retracts every derived row that counted it.
Only the administrations in the same file count: a sync page that holds a new
administration but not one already running from an earlier page counts only the new one
(the CRS then reads the latest count of the day). Derived rows are matched by their
natural key (patient, kind, time): a later file that knows more recomputes the count at
that instant and supersedes the earlier one (reason naming the file).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from core.fhir.read import (
    Entry,
    Mapped,
    parse_time,
    subject_or_error,
    time_or_error,
)
from core.importing import RowError

VASO_PATHS = {"patient_id": "MedicationAdministration.subject",
              "kind": "MedicationAdministration.medicationCodeableConcept",
              "value": "MedicationAdministration.medicationCodeableConcept",
              "unit": "MedicationAdministration.medicationCodeableConcept",
              "note": "MedicationAdministration.medicationCodeableConcept"}


@dataclass(frozen=True)
class VasoAdmin:
    entry: Entry
    pid: str
    drug: str  # the vasopressor's name, or "vasopressin"
    start: datetime
    end: datetime | None
    start_path: str
    open: bool  # in progress with no end: running on

    @property
    def tag(self) -> str:
        return f"{self.drug} (MedicationAdministration/{self.entry.rid})"

    def runs(self, t: datetime) -> bool:
        if self.end is not None:
            return self.start <= t < self.end
        return self.start <= t if self.open else t == self.start


def vaso_admin(entry: Entry, drug: str, refs: dict[str, str], tz: str,
               errors: list[RowError]) -> VasoAdmin | None:
    """One vasopressor administration with its times, or None with errors recorded."""
    before = len(errors)
    pid = subject_or_error(entry, refs, errors)
    when, path = time_or_error(entry, errors, "when the infusion started")
    start = parse_time(when, tz) if when else None
    if when and start is None:
        errors.append(RowError(entry.row, path, when, "Not a date or date-time we can read; "
                               "use ISO form like 2026-11-03T08:30:00Z."))
    period = entry.res.get("effectivePeriod")
    end_text = str(period.get("end") or "") if isinstance(period, dict) else ""
    end = parse_time(end_text, tz) if end_text else None
    if end_text and end is None:
        errors.append(RowError(entry.row, "MedicationAdministration.effectivePeriod.end",
                               end_text, "Not a date or date-time we can read; use ISO form "
                               "like 2026-11-03T14:00:00Z."))
    if start is not None and end is not None and end < start:
        errors.append(RowError(entry.row, "MedicationAdministration.effectivePeriod.end",
                               end_text, "The infusion ends before it starts; check the "
                               "period."))
    if len(errors) > before or start is None or pid is None:
        return None
    return VasoAdmin(entry, pid, drug, start, end, path,
                     open=entry.status == "in-progress" and end is None)


def derived_rows(admins: list[VasoAdmin], now: datetime) -> list[Mapped]:
    """The `vasopressors` / `vasopressin` observations rows of the rule above."""
    by_patient: dict[str, list[VasoAdmin]] = defaultdict(list)
    for a in admins:
        by_patient[a.pid].append(a)
    out: list[Mapped] = []
    for pid, mine in by_patient.items():
        pressors = [a for a in mine if a.drug != "vasopressin"]
        vasopressin = [a for a in mine if a.drug == "vasopressin"]
        for kind, group in (("vasopressors", pressors), ("vasopressin", vasopressin)):
            if group:
                out += _rows(pid, kind, group, now)
    return out


def _rows(pid: str, kind: str, group: list[VasoAdmin], now: datetime) -> list[Mapped]:
    instants = sorted({a.start for a in group}
                      | {a.end for a in group if a.end is not None and a.end <= now})
    out = []
    for t in instants:
        running = [a for a in group if a.runs(t)]
        stopped = [a for a in group if a.end == t]
        defining = min((a for a in group if a.start == t or a.end == t),
                       key=lambda a: a.entry.row)
        if kind == "vasopressors":
            value = str(len({a.drug for a in running}))
        else:
            value = "yes" if running else "no"
        note = "From the EHR's administration record: running " + (
            ", ".join(a.tag for a in running) or "none")
        if stopped:
            note += "; stopped " + ", ".join(a.tag for a in stopped)
        path = (defining.start_path if defining.start == t
                else "MedicationAdministration.effectivePeriod.end")
        values = {"patient_id": pid, "observed_at": t.isoformat(), "kind": kind,
                  "value": value, "unit": "", "note": (note + ".")[:1000]}
        out.append(Mapped("observations", defining.entry, values,
                          {**VASO_PATHS, "observed_at": path},
                          f"MedicationAdministration/{defining.entry.rid}", by_key=True))
    return out

"""The site code map: a local code (lab system, EHR) -> what CAR-T Watch monitors.

One map serves CSV, HL7 v2 and FHIR. A code resolves, in order:
1. an active site entry for that coding system (HL7 CWE-3 / FHIR coding.system / a sending
   application's name), then one for any system (`*`);
2. the built-in LOINC codes: the analyte catalogue (core.vocabulary.units) and the vital signs
below.

Entries are never deleted: a new entry for the same (system, code) deactivates the old one,
and every change is audited with who, when and why.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.store import audit
from core.store.models import CodeMapEntry, CodeTarget
from core.store.unit_of_work import write_session
from core.vocabulary.observations import DRUGS, OBSERVATION_KINDS, resolve_drug
from core.vocabulary.units import ANALYTES, LOINC_TO_ANALYTE, conversion_factor

ANY_SYSTEM = "*"
LOINC_SYSTEMS = frozenset({"http://loinc.org", "LN", "LOINC", "urn:oid:2.16.840.1.113883.6.1"})

# Vital signs by LOINC (the FHIR vital-signs profile) -> bedside observation kinds.
VITAL_SIGN_LOINC: dict[str, str] = {
    "8310-5": "temperature",  # body temperature
    "8867-4": "heart_rate",
    "9279-1": "respiratory_rate",
    "8480-6": "systolic_bp",
    "8462-4": "diastolic_bp",
    "59408-5": "spo2",  # oxygen saturation by pulse oximetry
    "2708-6": "spo2",  # oxygen saturation in arterial blood
    "3151-8": "oxygen_flow",  # inhaled oxygen flow rate
}

CSV_COLUMNS = ("system", "code", "target_kind", "target", "unit", "display")


@dataclass(frozen=True)
class Target:
    """What a code means here: a lab analyte, an observation kind or a drug."""

    kind: CodeTarget
    code: str
    unit: str | None = None  # the unit the source sends, when the map names one
    by: str = "LOINC"  # "site map" or "LOINC": shown when a nurse asks why


class Entry(Protocol):
    """What the map reads of a CodeMapEntry (the entry, or a row of its columns)."""

    @property
    def system(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def target_kind(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def unit(self) -> str | None: ...


class CodeMap:
    """The active site entries, read in one query; resolve() is then a dict lookup."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self._entries = {(e.system, e.code): e for e in entries}

    @classmethod
    def load(cls, session: Session, *, codes: Collection[str] | None = None) -> CodeMap:
        """The active entries (the columns resolve() reads, not whole rows); with `codes`,
        only the entries for those codes (a message's few), which resolve the same."""
        E = CodeMapEntry
        query = select(col(E.system), col(E.code), col(E.target_kind), col(E.target),
                       col(E.unit)).where(col(E.active).is_(True)).order_by(col(E.id))
        if codes is not None:
            if not codes:
                return cls([])
            query = query.where(col(E.code).in_(list(codes)))
        return cls(session.execute(query).all())

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, system: str | None, code: str | None) -> Target | None:
        """The target of one code, or None when neither the site map nor LOINC knows it."""
        if not code:
            return None
        code = code.strip()
        system = (system or "").strip()
        entry = self._entries.get((system, code)) or self._entries.get((ANY_SYSTEM, code))
        if entry is not None:
            return Target(CodeTarget(entry.target_kind), entry.target, entry.unit, "site map")
        if system in LOINC_SYSTEMS or not system:
            if code in LOINC_TO_ANALYTE:
                return Target(CodeTarget.ANALYTE, LOINC_TO_ANALYTE[code])
            if code in VITAL_SIGN_LOINC:
                return Target(CodeTarget.OBSERVATION, VITAL_SIGN_LOINC[code])
        return None

    def local_codes(self, system: str = ANY_SYSTEM) -> dict[str, dict[str, str]]:
        """{target kind: {code: target}} of the entries for `system` and for any system: what
        a CSV column (no coding system) reads through core.capture.importing's Context."""
        out: dict[str, dict[str, str]] = {}
        for (entry_system, code), e in sorted(self._entries.items(),
                                              key=lambda item: item[0][0] != ANY_SYSTEM):
            if entry_system in (system, ANY_SYSTEM):
                out.setdefault(str(e.target_kind), {})[code] = e.target
        return out

    def resolve_any(self, codings: Iterable[tuple[str | None, str | None]]) -> Target | None:
        """The first of several codings (FHIR CodeableConcept, HL7 CWE triplets) we know."""
        for system, code in codings:
            target = self.resolve(system, code)
            if target is not None:
                return target
        return None


def load(engine: Engine) -> CodeMap:
    with Session(engine) as session:
        return CodeMap.load(session)


class CodeMapRefused(ValueError):
    """A map entry that would not work; the message names the field and what was expected."""


def check_entry(target_kind: str, target: str, unit: str | None) -> tuple[CodeTarget, str]:
    """The entry's (kind, target) in canonical form, or CodeMapRefused with a sentence."""
    try:
        kind = CodeTarget(target_kind.strip().lower())
    except ValueError:
        raise CodeMapRefused(f"target_kind {target_kind!r} is not one of "
                             f"{', '.join(k.value for k in CodeTarget)}.") from None
    key = target.strip()
    if kind is CodeTarget.ANALYTE:
        if key.lower() not in ANALYTES:
            raise CodeMapRefused(f"target {target!r} is not an analyte we monitor; expected "
                                 f"one of {', '.join(ANALYTES)}.")
        key = key.lower()
        if unit and conversion_factor(ANALYTES[key], unit) is None:
            raise CodeMapRefused(f"unit {unit!r} is not a unit CAR-T Watch can convert for "
                                 f"{ANALYTES[key].name}.")
    elif kind is CodeTarget.OBSERVATION:
        if key not in OBSERVATION_KINDS:
            raise CodeMapRefused(f"target {target!r} is not an observation kind; expected one "
                                 f"of {', '.join(OBSERVATION_KINDS)}.")
    else:
        drug = resolve_drug(key)
        if drug is None:
            raise CodeMapRefused(f"target {target!r} is not a drug we record; expected one of "
                                 f"{', '.join(DRUGS)}.")
        key = drug
    return kind, key


def _put(session: Session, *, system: str, code: str, kind: CodeTarget, target: str,
         unit: str | None, display: str | None, user: str, reason: str) -> CodeMapEntry:
    old = session.execute(select(CodeMapEntry).where(
        col(CodeMapEntry.system) == system, col(CodeMapEntry.code) == code,
        col(CodeMapEntry.active).is_(True))).scalars().first()
    before = audit.snapshot(old)
    if old is not None:
        old.active = False
        session.add(old)
        session.flush()
    entry = CodeMapEntry(system=system, code=code, display=display, target_kind=kind,
                         target=target, unit=unit or None, created_by=user)
    session.add(entry)
    session.flush()
    audit.record(session, actor=user, action="map_code", table_name="codemapentry",
                 record_id=entry.id, before=before, after=audit.snapshot(entry), reason=reason)
    return entry


def map_code(engine: Engine, *, system: str, code: str, target_kind: str, target: str,
             user: str, reason: str, unit: str | None = None, display: str | None = None,
             role: str | None = None) -> int:
    """Add (or replace) one entry; returns its id. `role` (None = trusted) needs
    site_settings."""
    require(role, "site_settings")
    if not code.strip():
        raise CodeMapRefused("code is empty: give the local code the system sends.")
    if not reason.strip():
        raise CodeMapRefused("Give a reason for the mapping (it goes to the audit trail).")
    kind, key = check_entry(target_kind, target, unit)
    with write_session(engine, actor=user) as session:
        entry = _put(session, system=system.strip() or ANY_SYSTEM, code=code.strip(), kind=kind,
                     target=key, unit=(unit or "").strip() or None, display=display,
                     user=user, reason=reason)
        assert entry.id is not None  # given by the flush in _put
        return int(entry.id)


def unmap(engine: Engine, entry_id: int, *, user: str, reason: str,
          role: str | None = None) -> None:
    """Deactivate an entry (it stays, with the audit of who and why)."""
    require(role, "site_settings")
    if not reason.strip():
        raise CodeMapRefused("Give a reason for removing the mapping.")
    with write_session(engine, actor=user) as session:
        entry = session.get(CodeMapEntry, entry_id)
        if entry is None or not entry.active:
            raise CodeMapRefused(f"No active mapping {entry_id}.")
        before = audit.snapshot(entry)
        entry.active = False
        session.add(entry)
        session.flush()
        audit.record(session, actor=user, action="unmap_code", table_name="codemapentry",
                     record_id=entry.id, before=before, after=audit.snapshot(entry),
                     reason=reason)


def import_csv(engine: Engine, data: bytes, *, user: str, reason: str,
               role: str | None = None) -> int:
    """Load a map from CSV (columns: system, code, target_kind, target[, unit, display]).
    Every row or none: a bad row raises CodeMapRefused naming its row and field."""
    require(role, "site_settings")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CodeMapRefused("The file is not UTF-8 text; save it as UTF-8 CSV.") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"code", "target_kind", "target"} - set(reader.fieldnames or ())
    if missing:
        raise CodeMapRefused(f"The header lacks {', '.join(sorted(missing))}; expected "
                             f"{', '.join(CSV_COLUMNS)}.")
    rows, problems = [], []
    for n, row in enumerate(reader, start=2):
        code = (row.get("code") or "").strip()
        if not code:
            problems.append(f"row {n}, code: empty; give the local code.")
            continue
        try:
            kind, key = check_entry(row.get("target_kind") or "", row.get("target") or "",
                                    (row.get("unit") or "").strip() or None)
        except CodeMapRefused as exc:
            problems.append(f"row {n}: {exc}")
            continue
        rows.append((n, (row.get("system") or "").strip() or ANY_SYSTEM, code, kind, key,
                     (row.get("unit") or "").strip() or None,
                     (row.get("display") or "").strip() or None))
    if problems:
        raise CodeMapRefused("Nothing was saved. " + " ".join(problems))
    if not rows:
        raise CodeMapRefused("The file has no rows under its header.")
    with write_session(engine, actor=user) as session:
        for _n, system, code, kind, key, unit, display in rows:
            _put(session, system=system, code=code, kind=kind, target=key, unit=unit,
                 display=display, user=user, reason=reason)
    return len(rows)


def entries(engine: Engine, *, include_inactive: bool = False) -> list[CodeMapEntry]:
    with Session(engine) as session:
        query = select(CodeMapEntry).order_by(col(CodeMapEntry.system), col(CodeMapEntry.code),
                                              col(CodeMapEntry.id))
        if not include_inactive:
            query = query.where(col(CodeMapEntry.active).is_(True))
        return list(session.execute(query).scalars())

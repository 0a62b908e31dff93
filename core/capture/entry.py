"""Hand entry of a day's data for one patient, through exactly the import's validation.

`enter_day` turns a panel (labs as (analyte, value text, unit), bedside observations,
episodes, treatments, course events, reasons for missing labs) into one-off frames of the
CSV kinds and runs them through `core.capture.importing.validate_rows` / `write_rows`: the rules for
units, plausibility, unit mix-ups, duplicates and conflicts are the import's, word for word.
Everything is written in one transaction or nothing is; every inserted row is audited.
`enter_grid` does the same for several days of labs at once (the back-fill grid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.importing import TABLES, Context, validate_rows, write_rows
from core.store import audit
from core.store.db import session_scope
from core.store.faults import storage_guard
from core.store.models import Patient, SiteSetting
from core.store.unit_of_work import write_session
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES

CONFIRM_HINT = "tick 'These unusual values are right' and save again"
SECTIONS = ("labs", "observations", "episodes", "treatments", "events", "missing")

# ICE (Immune effector Cell-associated Encephalopathy) score, criteria §5.2: ten points.
ICE_ITEMS: tuple[tuple[str, str, int], ...] = (
    ("orient_year", "Orientation: year", 1),
    ("orient_month", "Orientation: month", 1),
    ("orient_city", "Orientation: city", 1),
    ("orient_hospital", "Orientation: hospital", 1),
    ("naming", "Names 3 objects (1 point each)", 3),
    ("commands", "Follows simple commands", 1),
    ("writing", "Writes a standard sentence", 1),
    ("attention", "Counts back from 100 by 10", 1),
)


def ice_score(points: Mapping[str, int | bool]) -> int:
    """The ICE score (0-10) from its items; each item capped at its maximum."""
    total = 0
    for key, _label, most in ICE_ITEMS:
        total += max(0, min(most, int(points.get(key, 0) or 0)))
    return total


# ---------------------------------------------------------------------------- site settings

def site_setting(engine: Engine, key: str, default: Any = None) -> Any:
    """A site setting's value (SiteSetting.value["value"]), or the default."""
    with Session(engine) as s:
        row = s.get(SiteSetting, key)
        return default if row is None else row.value.get("value", default)


@storage_guard()
def save_site_setting(engine: Engine, key: str, value: Any, user: str, *,
                      role: str | None = None) -> None:
    """Store a site setting (audited); threshold keys need rule_thresholds, the rest
    site_settings (admin only; role None = trusted caller)."""
    require(role, "rule_thresholds" if key.startswith("threshold") else "site_settings")
    with session_scope(engine) as s:
        row = s.get(SiteSetting, key)
        before = None if row is None else dict(row.value)
        if row is None:
            row = SiteSetting(key=key, value={"value": value}, updated_by=user)
        else:
            row.value = {"value": value}
            row.updated_by = user
            row.updated_at = datetime.now(UTC)
        s.add(row)
        audit.record(s, actor=user, action="setting", table_name="sitesetting", record_id=key,
                     before=before, after={"value": value}, reason="site setting changed")


def usual_units(engine: Engine) -> dict[str, str]:
    """analyte -> the unit this site's lab reports in (site setting `usual_units`), else
    the catalogue's canonical unit."""
    site = site_setting(engine, "usual_units", {}) or {}
    return {code: site.get(code, a.unit) for code, a in ANALYTES.items()}


# ---------------------------------------------------------------------------- results

@dataclass(frozen=True)
class EntryError:
    """One problem on the form: which section and item, which field, the value, a sentence."""

    section: str
    item: str
    field: str
    value: str
    message: str
    needs_confirmation: bool = False

    def __str__(self) -> str:
        val = f" {self.value!r}" if self.value else ""
        return f"{self.item}{val}: {self.message}"


@dataclass
class EntryResult:
    errors: list[EntryError] = field(default_factory=list)
    added: dict[str, int] = field(default_factory=dict)
    already_present: dict[str, int] = field(default_factory=dict)
    ids: dict[str, list[int]] = field(default_factory=dict)
    written: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def needs_confirmation(self) -> bool:
        """Only unusual (soft-limit) values stand in the way: a tick will save them."""
        return bool(self.errors) and all(e.needs_confirmation for e in self.errors)

    def summary(self) -> str:
        if self.errors:
            return f"Nothing was saved: {len(self.errors)} value(s) need attention."
        parts = [f"{n} {k}" for k, n in self.added.items() if n]
        same = sum(self.already_present.values())
        text = "Saved " + (", ".join(parts) if parts else "nothing new")
        return text + (f" ({same} already stored, unchanged)." if same else ".")


# ---------------------------------------------------------------------------- entry

def _iso(t: datetime | date) -> str:
    return t.isoformat() if isinstance(t, datetime) else t.isoformat()


def _form_time(v: object) -> str:
    """A form's date or date-time value (the date widgets give `date`/`datetime`) as text."""
    assert isinstance(v, date), v  # a datetime is a date
    return _iso(v)


def _frame(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns), dtype=object).fillna("")
    return frame.astype(str).apply(lambda s: s.str.strip())


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and pd.isna(v)) or str(v).strip() == ""


@storage_guard()
def enter_day(
    engine: Engine,
    patient_id: str,
    when: datetime,
    *,
    labs: Iterable[tuple[str, str, str]] = (),
    observations: Iterable[tuple[str, str]] = (),
    episodes: Iterable[Mapping[str, object]] = (),
    treatments: Iterable[Mapping[str, object]] = (),
    events: Iterable[Mapping[str, object]] = (),
    missing: Iterable[tuple[str, str]] = (),
    user: str,
    confirm_unusual: bool = False,
    tz: str = "UTC",
    now: datetime | None = None,
    dry_run: bool = False,
    role: str | None = None,
) -> EntryResult:
    """Validate and save one patient's data for one time (`when`, naive = ward time).

    `role` (None = trusted caller) needs enter_data, and document_episode for episodes.

    Blank lab or observation values are skipped (not entered), so a half-filled panel is
    fine. Episodes give kind, grade, onset and optionally resolved; treatments drug, dose,
    dose_unit, route (given at `when` unless `given_at`); events kind and note.
    """
    episodes = list(episodes)
    require(role, "enter_data")
    if any(not _blank(e.get("kind")) for e in episodes):
        require(role, "document_episode")
    stamp = _iso(when)
    tables: dict[str, tuple[pd.DataFrame, list[str]]] = {}
    lab_rows = [(a, str(v).strip(), u) for a, v, u in labs if not _blank(v)]
    if lab_rows:
        tables["labs"] = (_frame([{"patient_id": patient_id, "collected_at": stamp,
                                   "analyte": a, "value": v, "unit": u}
                                  for a, v, u in lab_rows],
                                 ["patient_id", "collected_at", "analyte", "value", "unit"]),
                          [_analyte_label(a) for a, _v, _u in lab_rows])
    obs_rows = [(k, str(v).strip()) for k, v in observations if not _blank(v)]
    if obs_rows:
        tables["observations"] = (
            _frame([{"patient_id": patient_id, "observed_at": stamp, "kind": k, "value": v}
                    for k, v in obs_rows], ["patient_id", "observed_at", "kind", "value"]),
            [OBSERVATION_KINDS[k].label if k in OBSERVATION_KINDS else k for k, _ in obs_rows])
    eps = [dict(e) for e in episodes if not _blank(e.get("kind"))]
    if eps:
        tables["episodes"] = (_frame([{
            "patient_id": patient_id, "kind": e["kind"], "grade": e.get("grade", ""),
            "onset": _form_time(e["onset"]) if not _blank(e.get("onset")) else "",
            "resolved": _form_time(e["resolved"]) if not _blank(e.get("resolved")) else "",
            "note": e.get("note") or ""} for e in eps],
            ["patient_id", "kind", "grade", "onset", "resolved", "note"]),
            [f"{e['kind']} episode" for e in eps])
    trs = [dict(t) for t in treatments if not _blank(t.get("drug"))]
    if trs:
        tables["treatments"] = (_frame([{
            "patient_id": patient_id, "drug": t["drug"],
            "given_at": _form_time(t["given_at"]) if not _blank(t.get("given_at")) else stamp,
            "dose": "" if _blank(t.get("dose")) else t["dose"],
            "dose_unit": t.get("dose_unit") or "", "route": t.get("route") or ""} for t in trs],
            ["patient_id", "drug", "given_at", "dose", "dose_unit", "route"]),
            [str(t["drug"]) for t in trs])
    evs = [dict(e) for e in events if not _blank(e.get("kind"))]
    if evs:
        tables["events"] = (_frame([{
            "patient_id": patient_id, "kind": e["kind"],
            "at": _form_time(e["at"]) if not _blank(e.get("at")) else stamp,
            "note": e.get("note") or ""} for e in evs], ["patient_id", "kind", "at", "note"]),
            [str(e["kind"]) for e in evs])
    gaps = [(a, r) for a, r in missing if not _blank(a) and not _blank(r)]
    if gaps:
        day = _day_after_infusion(engine, patient_id, when, tz)
        tables["missing"] = (_frame([{"patient_id": patient_id, "day": "" if day is None
                                      else str(day), "analyte": a, "reason": r}
                                     for a, r in gaps],
                                    ["patient_id", "day", "analyte", "reason"]),
                             [f"{_analyte_label(a)} not available" for a, _ in gaps])
    return _save(engine, patient_id, tables, user=user, confirm_unusual=confirm_unusual, tz=tz,
                 now=now, dry_run=dry_run)


@storage_guard()
def enter_grid(
    engine: Engine,
    patient_id: str,
    grid: pd.DataFrame,
    units: Mapping[str, str],
    *,
    user: str,
    at: time = time(6, 0),
    confirm_unusual: bool = False,
    tz: str = "UTC",
    now: datetime | None = None,
    dry_run: bool = False,
    role: str | None = None,
) -> EntryResult:
    """Back-fill several days of labs: one row per date (column `date`), one column per
    analyte code holding value text; blank cells are skipped. Drawn at `at` ward time."""
    require(role, "enter_data")
    rows: list[dict[str, str]] = []
    labels: list[str] = []
    for rec in grid.to_dict("records"):
        d = rec.get("date")
        if _blank(d):
            if any(not _blank(rec.get(a)) for a in ANALYTES):
                rows.append({"patient_id": patient_id, "collected_at": "", "analyte": "",
                             "value": "", "unit": ""})
                labels.append("a row without a date")
            continue
        day = pd.Timestamp(d).date()
        stamp = datetime.combine(day, at).isoformat()
        for code in ANALYTES:
            v = rec.get(code)
            if _blank(v):
                continue
            rows.append({"patient_id": patient_id, "collected_at": stamp, "analyte": code,
                         "value": str(v).strip(), "unit": units.get(code, ANALYTES[code].unit)})
            labels.append(f"{day:%d %b} {ANALYTES[code].name}")
    tables = {}
    if rows:
        tables["labs"] = (_frame(rows, ["patient_id", "collected_at", "analyte", "value",
                                        "unit"]), labels)
    return _save(engine, patient_id, tables, user=user, confirm_unusual=confirm_unusual, tz=tz,
                 now=now, dry_run=dry_run)


def _analyte_label(code: str) -> str:
    a = ANALYTES.get(str(code).lower())
    return a.name if a else str(code)


def _day_after_infusion(engine: Engine, patient_id: str, when: datetime,
                        tz: str) -> int | None:
    with Session(engine) as s:
        inf = s.execute(select(col(Patient.infusion_date)).where(
            col(Patient.patient_id) == patient_id)).scalar_one_or_none()
    if inf is None:
        return None
    local = when.astimezone(ZoneInfo(tz)).date() if when.tzinfo else when.date()
    return (local - inf).days


def _save(engine: Engine, patient_id: str, tables: dict[str, tuple[pd.DataFrame, list[str]]],
          *, user: str, confirm_unusual: bool, tz: str, now: datetime | None,
          dry_run: bool) -> EntryResult:
    from core.capture.importing import _patient_index  # the import's own patient lookup

    result = EntryResult()
    if not tables:
        result.errors.append(EntryError("", "Form", "", "", "Nothing to save: every value "
                                        "is empty."))
        return result
    now = now or datetime.now(UTC)
    prepared: dict[str, pd.DataFrame] = {}
    with write_session(engine, actor=user) as session:
        patients = _patient_index(session)
        for kind, (frame, labels) in tables.items():
            ctx = Context(tz=tz, now=now, patients=patients, confirm_unusual=confirm_unusual,
                          confirm_hint=CONFIRM_HINT)
            prepared[kind] = validate_rows(session, kind, frame, ctx)
            for e in ctx.errors:
                i = e.row - 2
                result.errors.append(EntryError(
                    kind, labels[i] if 0 <= i < len(labels) else kind, e.column, e.value,
                    e.message, needs_confirmation=CONFIRM_HINT in e.message))
        if result.errors or dry_run:
            session.rollback()
            for kind, p in prepared.items():
                if "_present" in p.columns:
                    result.added[kind] = int((~p["_present"]).sum())
            return result
        for kind, p in prepared.items():
            new = p[~p["_present"]]
            result.added[kind] = len(new)
            result.already_present[kind] = int(p["_present"].sum())
            if new.empty:
                continue
            write_rows(session, kind, new, batch_id=None, user=user, source="manual")
            model = TABLES[kind]
            keys = list(new["_row_key"])
            rows = session.execute(select(model).where(
                model.row_key.in_(keys))).scalars().all()
            result.ids[kind] = [r.id for r in rows]
            for r in rows:
                audit.record(session, actor=user, action="insert", table_name=kind,
                             record_id=r.id, patient_id=patient_id, after=audit.snapshot(r),
                             reason="entered on the data-entry form")
    result.written = True
    return result

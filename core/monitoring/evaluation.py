"""`evaluate` and `replay`: run the rules over the database and report (design.md contract).

`run_evaluate` reads the active courses, runs every rule, then brings the alerts in line and
records an `EvaluationRun` in one write transaction. On SQLite that transaction begins
IMMEDIATE (one writer at a time) and the read before it is a separate short one, so the
write lock is not held while the rules run; a second evaluate at the same time just syncs
after the first (the sync is idempotent). On PostgreSQL everything is one transaction under a
transaction-level advisory lock, so a second concurrent evaluate refuses at once.

`run_replay` runs the rules as of every day of each course (backtesting) and never writes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.config import Settings
from core.monitoring.alerts import (
    DEFAULT_ESCALATE_AFTER,
    SCREENING_NOTE,
    alerts_by_patient,
    resolve_for_inactive,
    sync_alerts,
)
from core.monitoring.notify import NotifyConfig, NotifyConfigError, notify_config
from core.rules.base import Finding, RuleSpec, Status
from core.store.audit import data_version
from core.store.db import is_sqlite, session_scope
from core.store.lab_reads import recorded_lab_fields
from core.store.loading import WardFrames, load_patient_courses, load_ward, ward_day
from core.store.models import EvaluationRun, Patient, PatientStatus, utcnow
from core.vocabulary.course import PatientInfo

log = logging.getLogger(__name__)

EVALUATE_LOCK_KEY = 0x43415254_5745  # "CARTWE": one fixed key for every evaluate job


def iso_z(when: datetime) -> str:
    """UTC ISO 8601 with a trailing Z, to the second."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_AS_IS = frozenset({str, int, bool, type(None)})  # most values of a finding, by exact type


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null, datetimes to ISO text."""
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, str | bytes):
        try:
            value = value.item()
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return iso_z(value)
    return value


def finding_json(finding: Finding) -> dict[str, Any]:
    """`Finding.to_json()` made JSON-safe; a graded rule's grade is always an integer.

    The dict `to_json` makes and its evidence items are this call's own, made safe in
    place; what the finding's `extra` holds inside them is copied, never changed."""
    out = finding.to_json()
    for item in (out, *out["evidence"]):
        for key, value in item.items():
            if type(value) not in _AS_IS and key != "evidence":
                item[key] = _plain(value)
    grade = out.get("grade")
    if isinstance(grade, float) and grade.is_integer():
        out["grade"] = int(grade)
    return out


def _specs(specs: Sequence[RuleSpec] | None) -> list[RuleSpec]:
    if specs is not None:
        return list(specs)
    from core.rules.catalog import all_specs

    return list(all_specs())


def _site_overrides(settings: Settings,
                    specs: Sequence[RuleSpec]) -> Mapping[str, Mapping[str, float]] | None:
    """Per-rule threshold overrides from the site config file, if there is one."""
    if settings.site_config is None:
        return None
    from core.site_config import site_overrides

    return site_overrides(settings, specs)


def _lock(session: Session, *, wait: bool = False) -> None:
    """On PostgreSQL, the transaction-level advisory lock that serialises alert syncs.

    A scheduled evaluate or monitor cycle tries it and refuses at once (`wait=False`); the
    follow-up of a write waits for it (at most one ward evaluation), so the write's alerts are
    synced after, never under, a concurrent ward evaluation. On SQLite the write transaction
    began IMMEDIATE: writers are already serialised.
    """
    if is_sqlite(session.get_bind()):
        return
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVALUATE_LOCK_KEY})
        return
    got = session.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": EVALUATE_LOCK_KEY}
    ).scalar()
    if not got:
        raise RuntimeError(
            "another evaluate is running on this database; try again when it has finished"
        )


def run_evaluate(
    engine: Engine,
    settings: Settings,
    as_of: datetime | None = None,
    patient_id: str | None = None,
    actor: str = "system",
    *,
    specs: Sequence[RuleSpec] | None = None,
    escalate_after: timedelta = DEFAULT_ESCALATE_AFTER,
    wait_for_lock: bool = False,
) -> dict[str, Any]:
    """Run every rule for the active patients (or one patient), update alerts, report.

    `as_of` (default now) is both the data cut-off and the clock the alerts are stamped
    with; a naive time is taken as UTC. Returns the design.md JSON document:
    {"as_of": ISO-Z, "patients": [{"patient_id", "day", "findings": [...]}]}.
    Raises RuntimeError when another evaluate holds the PostgreSQL lock (unless
    `wait_for_lock`: the monitor waits, e.g. for a write's follow-up to commit), and
    LookupError for an unknown `patient_id`.
    """
    started = utcnow()
    as_of = as_of or started
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    with session_scope(engine) as session:
        _lock(session, wait=wait_for_lock)
        if is_sqlite(engine):
            # Every SQLite transaction here holds the write lock (BEGIN IMMEDIATE): read, then
            # release it while the rules run, so nurses and pages are not kept waiting; the
            # alert sync is its own short write transaction, and runs the rules again only if
            # a write came in between (PostgreSQL keeps one transaction under its lock).
            version = data_version(session)
            ids = None if patient_id is None else [patient_id]
            loaded = _load(session, settings, ids, as_of)
            session.commit()
            found = _run_rules(session, loaded, settings, specs)
            if data_version(session) != version:
                loaded = _load(session, settings, ids, as_of)
                found = _run_rules(session, loaded, settings, specs)
        else:
            loaded = _load(session, settings, None if patient_id is None else [patient_id],
                           as_of)
            found = _run_rules(session, loaded, settings, specs)
        if patient_id is not None and not loaded:
            raise LookupError(f"There is no patient {patient_id!r}.")
        run = EvaluationRun(started_at=started, as_of=as_of, actor=actor)
        session.add(run)
        _sync(session, settings, found, as_of, actor, specs, escalate_after,
              every_active=patient_id is None)
        run.patients = len(loaded)
        run.findings = sum(f.status == Status.MET for _, _, fs in found for f in fs)
        run.finished_at = utcnow()
    # the report is made once the alerts are committed, not while holding the write lock
    return {"as_of": iso_z(as_of), "patients": [{
        "patient_id": patient.patient_id,
        "day": ward_day(as_of, patient.infusion_date, settings.ward_tz),
        "findings": [finding_json(f) for f in findings],
    } for _, patient, findings in found]}


def follow_writes(session: Session, settings: Settings, patient_pks: Collection[int],
                  actor: str = "system", *, as_of: datetime | None = None) -> int:
    """Bring the alerts of the patients a write touched up to date, in the write's own
    transaction (core.store.unit_of_work calls it just before COMMIT). Returns how many active
    patients were evaluated; a touched patient who is no longer active has their open
    alerts resolved."""
    as_of = as_of or utcnow()
    _lock(session, wait=True)
    loaded = _load(session, settings, None, as_of, pks=sorted(patient_pks))
    _sync(session, settings, _run_rules(session, loaded, settings, None, met_only=True), as_of,
          actor, None, DEFAULT_ESCALATE_AFTER, every_active=False)
    if len(loaded) < len(patient_pks):
        active = session.scalars(select(col(Patient.id)).where(
            col(Patient.status) == PatientStatus.ACTIVE.value))
        resolve_for_inactive(session, [pk for pk in active if pk is not None], as_of,
                             actor=actor, notify=notifications(settings))
    return len(loaded)


def notifications(settings: Settings) -> NotifyConfig | None:
    """The site's contact points. A [notify] table that cannot be used turns notifications
    off, logged at ERROR, while alerts are still brought up to date; the monitor's cycle
    records the same error, so its health check reports it."""
    try:
        return notify_config(settings)
    except NotifyConfigError as exc:
        log.error("notifications are off: %s", exc)
        return None


Found = list[tuple[int, PatientInfo, list[Finding]]]  # (patient key, info, findings)


def _load(session: Session, settings: Settings, ids: list[str] | None, as_of: datetime,
          *, pks: list[int] | None = None) -> WardFrames:
    """The ward to evaluate, as the rules read it: the given study IDs (any status), the
    given patient keys (active ones), else every active patient."""
    if pks is not None:
        ids = list(session.scalars(select(col(Patient.patient_id)).where(
            col(Patient.id).in_(pks))))
        if not ids:
            return load_ward(session, settings.ward_tz, [], as_of=as_of, read="cited")
    return load_ward(session, settings.ward_tz, ids, active_only=ids is None or pks is not None,
                     as_of=as_of, read="cited")


def _run_rules(session: Session, loaded: WardFrames, settings: Settings,
               specs: Sequence[RuleSpec] | None, *, met_only: bool = False) -> Found:
    """Each patient's findings (`met_only`: see core.rules.engine.evaluate_ward), their
    evidence's lab rows with the fields the ward was read without (read "cited")."""
    from core.rules.engine import evaluate_ward
    from core.rules.frames import Ward

    rule_specs = _specs(specs)
    ward = Ward.of_frames(loaded.patients, loaded.as_of_days, loaded.tables, evaluating=True,
                          tz=loaded.tz)
    found = evaluate_ward(ward, rule_specs, _site_overrides(settings, rule_specs),
                          met_only=met_only)
    # each item once (by identity): record() turns its value into text
    cited = {id(e): e for fs in found for f in fs for e in f.evidence if e.lab is not None}
    if cited:
        lab_id = ward.labs["lab_id"]
        fields = recorded_lab_fields(session, {int(lab_id[e.lab]) for e in cited.values()})
        for e in cited.values():
            e.record(*fields[int(lab_id[e.lab])])
    return list(zip(loaded.pks, loaded.patients, found, strict=True))


def _sync(session: Session, settings: Settings, found: Found,
          as_of: datetime, actor: str, specs: Sequence[RuleSpec] | None,
          escalate_after: timedelta, *, every_active: bool) -> None:
    """Alerts in line with the findings (and, for a whole ward, resolved for patients no
    longer active)."""
    by_id = {s.rule.id: s for s in _specs(specs)}
    notify = notifications(settings)
    pks = [pk for pk, _, _ in found]
    alerts = alerts_by_patient(session, pks)
    for pk, _patient, findings in found:
        sync_alerts(session, pk, findings, by_id, as_of, escalate_after=escalate_after,
                    actor=actor, alerts=alerts[pk], notify=notify)
    if every_active:
        resolve_for_inactive(session, pks, as_of, actor=actor, notify=notify)


def run_replay(
    engine: Engine,
    settings: Settings,
    patient_id: str | None = None,
    *,
    as_of: datetime | None = None,
    specs: Sequence[RuleSpec] | None = None,
) -> dict[str, Any]:
    """Run the rules as of every day of each course (every patient, any status); no writes.

    The document is run_evaluate's, each patient adding "days": [{"day": N, "findings"}].
    """
    from core.rules.engine import evaluate_courses, replay_courses

    as_of = as_of or utcnow()
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    rule_specs = _specs(specs)
    overrides = _site_overrides(settings, rule_specs)
    ids = [patient_id] if patient_id is not None else None
    # read in one short transaction, then compute without holding any lock
    with session_scope(engine) as session:
        loaded = load_patient_courses(session, settings.ward_tz, ids, active_only=False,
                                      as_of=as_of, read="rules")
        if patient_id is not None and not loaded:
            raise LookupError(f"There is no patient {patient_id!r}.")

    courses = [c for _, c in loaded]
    current = evaluate_courses(courses, rule_specs, overrides)
    patients: list[dict[str, Any]] = []
    for (course, days), findings in zip(replay_courses(courses, rule_specs, overrides), current,
                                        strict=True):
        patients.append({
            "patient_id": course.patient.patient_id,
            "day": ward_day(as_of, course.patient.infusion_date, settings.ward_tz),
            "findings": [finding_json(f) for f in findings],
            "days": [{"day": int(day), "findings": [finding_json(f) for f in found]}
                     for day, found in days],
        })
    return {"as_of": iso_z(as_of), "patients": patients}


def _evidence_text(item: Mapping[str, Any]) -> str:
    head = item.get("analyte") or ""
    if item.get("value") is not None:
        head += f" {item['value']}{' ' + item['unit'] if item.get('unit') else ''}"
    if item.get("day") is not None:
        head += f" (day {math.floor(item['day'])})"
    why = item.get("why") or ""
    return f"{head.strip()}: {why}" if head.strip() else why


def _finding_line(patient: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    bits = [f"{patient['patient_id']} day {patient['day']}", f["rule"]]
    if f.get("grade") is not None:
        bits.append(f"grade {f['grade']}")
    if f.get("score") is not None:
        bits.append(f"score {f['score']:g}" if isinstance(f["score"], float)
                    else f"score {f['score']}")
    if f.get("since_day") is not None:
        bits.append(f"since day {math.floor(f['since_day'])}")
    line = "  ".join(bits)
    evidence = [_evidence_text(e) for e in f.get("evidence") or []]
    if evidence:
        line += " — " + "; ".join(evidence[:3])
    if f.get("missing"):
        line += f" [missing: {', '.join(f['missing'])}]"
    return line


def text_report(doc: Mapping[str, Any]) -> str:
    """The human-readable form of an evaluate/replay document: one line per met finding."""
    patients = doc.get("patients") or []
    lines = [SCREENING_NOTE, f"As of {doc.get('as_of')}: {len(patients)} patient(s)."]
    met_total = 0
    for p in patients:
        for f in p.get("findings") or []:
            if f.get("status") == Status.MET.value:
                lines.append(_finding_line(p, f))
                met_total += 1
        if "days" in p:
            first: dict[str, int] = {}
            for d in p["days"]:
                for f in d.get("findings") or []:
                    if f.get("status") == Status.MET.value:
                        first.setdefault(f["rule"], d["day"])
            if first:
                lines.append(f"{p['patient_id']} replay, first met: " + ", ".join(
                    f"{rule} day {day}" for rule, day in sorted(first.items(),
                                                                key=lambda kv: kv[1])))
    if met_total == 0:
        lines.append("No rule is met.")
    return "\n".join(lines)


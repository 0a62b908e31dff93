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

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.alerts import (
    DEFAULT_ESCALATE_AFTER,
    SCREENING_NOTE,
    alerts_by_patient,
    resolve_for_inactive,
    sync_alerts,
)
from core.config import Settings
from core.db import is_sqlite, session_scope
from core.loading import load_patient_courses, ward_day
from core.models import EvaluationRun, utcnow
from core.rules.base import Finding, RuleSpec, Status

EVALUATE_LOCK_KEY = 0x43415254_5745  # "CARTWE": one fixed key for every evaluate job


def iso_z(when: datetime) -> str:
    """UTC ISO 8601 with a trailing Z, to the second."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null, datetimes to ISO text."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # most values of a finding: checked first, by exact type
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
    """`Finding.to_json()` made JSON-safe; a graded rule's grade is always an integer."""
    out = _plain(finding.to_json())
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
    from core.rules.site import site_overrides

    return site_overrides(settings, specs)


def _lock(session: Any, engine: Engine) -> None:
    if is_sqlite(engine):
        return  # the write transaction began IMMEDIATE: writers are already serialised
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
) -> dict[str, Any]:
    """Run every rule for the active patients (or one patient), update alerts, report.

    `as_of` (default now) is both the data cut-off and the clock the alerts are stamped
    with; a naive time is taken as UTC. Returns the design.md JSON document:
    {"as_of": ISO-Z, "patients": [{"patient_id", "day", "findings": [...]}]}.
    Raises RuntimeError when another evaluate holds the PostgreSQL lock, and LookupError
    for an unknown `patient_id`.
    """
    from core.rules.engine import gc_paused

    with gc_paused():
        return _evaluate(engine, settings, as_of, patient_id, actor, specs, escalate_after)


def _evaluate(engine: Engine, settings: Settings, as_of: datetime | None,
              patient_id: str | None, actor: str, specs: Sequence[RuleSpec] | None,
              escalate_after: timedelta) -> dict[str, Any]:
    """run_evaluate's work."""
    from core.rules.engine import evaluate_courses

    started = utcnow()
    as_of = as_of or started
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    rule_specs = _specs(specs)
    by_id = {s.rule.id: s for s in rule_specs}
    overrides = _site_overrides(settings, rule_specs)

    patients: list[dict[str, Any]] = []
    with session_scope(engine) as session:
        _lock(session, engine)
        ids = [patient_id] if patient_id is not None else None
        loaded = load_patient_courses(session, settings.ward_tz, ids,
                                      active_only=patient_id is None, as_of=as_of,
                                      with_index=True)
        if patient_id is not None and not loaded:
            raise LookupError(f"There is no patient {patient_id!r}.")
        if is_sqlite(engine):
            # Every SQLite transaction here holds the write lock (BEGIN IMMEDIATE): release it
            # while the rules run, so nurses and pages are not kept waiting; the alert sync
            # below is its own short write transaction. (PostgreSQL keeps one transaction,
            # whose advisory lock covers the whole run.)
            session.commit()
        found = evaluate_courses([course for _, course in loaded], rule_specs, overrides)
        results = [(pk, course, f) for (pk, course), f in zip(loaded, found, strict=True)]
        run = EvaluationRun(started_at=started, as_of=as_of, actor=actor)
        session.add(run)
        met = 0
        alerts = alerts_by_patient(session, [pk for pk, _ in loaded])
        for pk, course, findings in results:
            sync_alerts(session, pk, findings, by_id, as_of,
                        escalate_after=escalate_after, actor=actor, alerts=alerts[pk])
            met += sum(f.status == Status.MET for f in findings)
            patients.append({
                "patient_id": course.patient.patient_id,
                "day": ward_day(as_of, course.patient.infusion_date, settings.ward_tz),
                "findings": [finding_json(f) for f in findings],
            })
        if patient_id is None:
            resolve_for_inactive(session, [pk for pk, _ in loaded], as_of, actor=actor)
        run.patients = len(loaded)
        run.findings = met
        run.finished_at = utcnow()
    return {"as_of": iso_z(as_of), "patients": patients}


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
    from core.rules.engine import evaluate_course, replay_courses

    as_of = as_of or utcnow()
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=UTC)
    rule_specs = _specs(specs)
    overrides = _site_overrides(settings, rule_specs)
    ids = [patient_id] if patient_id is not None else None
    # read in one short transaction, then compute without holding any lock
    with session_scope(engine) as session:
        loaded = load_patient_courses(session, settings.ward_tz, ids, active_only=False,
                                      as_of=as_of, with_index=True)
        if patient_id is not None and not loaded:
            raise LookupError(f"There is no patient {patient_id!r}.")

    patients: list[dict[str, Any]] = []
    for course, days in replay_courses((c for _, c in loaded), rule_specs, overrides):
        findings = evaluate_course(course, specs=rule_specs, overrides=overrides)
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


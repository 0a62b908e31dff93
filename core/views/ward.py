"""The ward overview: one row per active patient, most concerning first, and its top alerts.

The alert inbox is core.views.inbox; the masked huddle wall is core.views.huddle; what changed
and how fresh the data is, core.views.changes.

Grades and statuses come only from the alerts that `evaluate` keeps in line with the rules
(core/rules is the one source of grades): an open alert of `crs_grade` carries the current
CRS grade, and no open alert means the rule is not met. Nothing here compares a lab with a
clinical threshold; the lab columns are the values as stored, with their direction of change.

The concern score only orders the ward list [DESIGN]: it weighs the rules' own severities and
alert states, and a patient without labs today; it is not a clinical score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import func, select
from sqlmodel import Session, col

from core.monitoring.alerts import OPEN_STATES
from core.rules.catalog import rules_by_id, syndrome_ids
from core.store.models import (
    Alert,
    AlertState,
    LabResult,
    Patient,
    PatientStatus,
    RecordStatus,
    as_utc,
    utcnow,
)
from core.vocabulary.course import day_of

WATCHED = ("ferritin", "fibrinogen", "anc", "platelets")
SPARK_DAYS = 14  # days of history in a sparkline
SEVERITY_RANK = {"info": 0, "warning": 1, "severe": 2}
UNACKNOWLEDGED = (AlertState.FIRING.value, AlertState.ESCALATED.value)
# [DESIGN] weights of the ward sort; not clinical
CONCERN_WEIGHTS = {
    "escalated": 100.0, "severe": 20.0, "warning": 4.0, "info": 1.0,
    "acknowledged_factor": 0.25, "syndrome_grade": 15.0, "syndrome_met": 40.0,
    "no_labs_today": 10.0,
}
FINAL = RecordStatus.FINAL.value


def short_name(rule_id: str) -> str:
    """A rule's name short enough for one line of a wall display (Rule.short_name; the id
    of a rule no longer in the catalogue)."""
    rule = rules_by_id().get(rule_id)
    return rule.short_name if rule is not None and rule.short_name else rule_id


def utc_series(col: pd.Series) -> pd.Series:
    """Stored times (naive UTC from SQLite, aware from PostgreSQL) as aware UTC."""
    return pd.to_datetime(col, utc=True, format="ISO8601")


def _active_patients(session: Session, ward: str | None) -> pd.DataFrame:
    P = Patient
    stmt = select(col(P.id), col(P.patient_id), col(P.initials), col(P.bed), col(P.ward),
                  col(P.product), col(P.infusion_date)).where(
        col(P.status) == PatientStatus.ACTIVE.value)
    if ward:
        stmt = stmt.where(col(P.ward) == ward)
    return pd.read_sql(stmt, session.connection())


def _labs(session: Session, pks: list[int], analytes: Sequence[str],
          now: datetime) -> pd.DataFrame:
    L = LabResult
    stmt = (select(col(L.patient_pk), col(L.analyte), col(L.collected_at), col(L.value))
            .where(col(L.status) == FINAL, col(L.patient_pk).in_(pks),
                   col(L.analyte).in_(analytes), col(L.collected_at) <= now)
            .order_by(col(L.patient_pk), col(L.analyte), col(L.collected_at)))
    frame = pd.read_sql(stmt, session.connection())
    if len(frame):
        frame["collected_at"] = utc_series(frame["collected_at"])
    return frame


def _newest_lab(session: Session, pks: list[int], now: datetime) -> dict[int, pd.Timestamp]:
    L = LabResult
    stmt = (select(col(L.patient_pk), func.max(col(L.collected_at)).label("newest"))
            .where(col(L.status) == FINAL, col(L.patient_pk).in_(pks),
                   col(L.collected_at) <= now)
            .group_by(col(L.patient_pk)))
    frame = pd.read_sql(stmt, session.connection())
    if frame.empty:
        return {}
    frame["newest"] = utc_series(frame["newest"])
    return dict(zip(frame["patient_pk"].astype(int), frame["newest"], strict=True))


def _open_alerts(session: Session, pks: list[int]) -> pd.DataFrame:
    A = Alert
    stmt = select(col(A.id), col(A.patient_pk), col(A.rule_id), col(A.severity), col(A.state),
                  col(A.grade), col(A.score), col(A.since_day), col(A.title),
                  col(A.first_fired_at), col(A.last_seen_at)).where(
        col(A.patient_pk).in_(pks),
        col(A.state).in_([s.value for s in OPEN_STATES]))
    return pd.read_sql(stmt, session.connection())


def trend_arrow(values: Sequence[float]) -> str:
    """↑, ↓ or → for the last value against the one before; "" with fewer than two."""
    if len(values) < 2:
        return ""
    last, prev = values[-1], values[-2]
    return "↑" if last > prev else "↓" if last < prev else "→"


def _max_grade(alerts: list[dict], rules: Iterable[str]) -> int | None:
    wanted = set(rules)
    grades = [int(a["grade"]) for a in alerts
              if a["rule_id"] in wanted and a["grade"] is not None and a["grade"] == a["grade"]]
    return max(grades) if grades else None


def _since(alerts: list[dict], rule: str) -> float | None:
    days = [float(a["since_day"]) for a in alerts
            if a["rule_id"] == rule and a["since_day"] is not None]
    return min(days) if days else None


def records_by_pk(frame: pd.DataFrame) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for rec in frame.to_dict("records"):
        out.setdefault(int(rec["patient_pk"]), []).append(rec)
    return out


def concern_score(counts: dict[str, int], syndrome_grades: Sequence[int | None],
                  syndromes_met: int, no_labs_today: bool) -> float:
    """The ward sort key [DESIGN]: escalations first, then severity of what is unacknowledged."""
    w = CONCERN_WEIGHTS
    score = w["escalated"] * counts.get("escalated", 0)
    for sev in ("severe", "warning", "info"):
        score += w[sev] * counts.get(sev, 0)
        score += w[sev] * w["acknowledged_factor"] * counts.get(f"{sev}_seen", 0)
    score += w["syndrome_grade"] * sum(g or 0 for g in syndrome_grades)
    score += w["syndrome_met"] * syndromes_met
    if no_labs_today:
        score += w["no_labs_today"]
    return float(score)


SUMMARY_COLUMNS = [
    "patient_pk", "patient_id", "initials", "bed", "ward", "product", "day",
    "crs_grade", "icans_grade", "iec_hs", "iec_hs_since_day", "hlh", "icaht_grade",
    "ticaht_grade",
    *[f"{a}{s}" for a in WATCHED for s in ("", "_trend", "_series", "_at")],
    "unack_severe", "unack_warning", "unack_info", "escalated", "open_alerts",
    "newest_lab_at", "lab_age_h", "no_labs_today", "concern",
]


def ward_summary(session: Session, tz: str, now: datetime | None = None,
                 ward: str | None = None) -> pd.DataFrame:
    """One row per active patient, most concerning first (SUMMARY_COLUMNS).

    Values are in canonical units (core/vocabulary/units.py); `*_series` holds the values of the
    last
    SPARK_DAYS days, oldest first; `lab_age_h` is hours since the newest lab of any kind;
    `no_labs_today` is true when nothing was drawn on the ward's calendar day of `now`.
    """
    now = as_utc(now) or utcnow()
    zone = ZoneInfo(tz)
    patients = _active_patients(session, ward)
    if patients.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SUMMARY_COLUMNS})
    pks = [int(p) for p in patients["id"]]
    labs = _labs(session, pks, WATCHED, now)
    newest = _newest_lab(session, pks, now)
    alerts = _open_alerts(session, pks)
    today_start = pd.Timestamp(now.astimezone(zone).replace(
        hour=0, minute=0, second=0, microsecond=0)).tz_convert(UTC)
    spark_start = pd.Timestamp(now) - pd.Timedelta(days=SPARK_DAYS)
    series: dict[tuple[int, str], tuple[list[float], list[pd.Timestamp]]] = {}
    for pk, analyte, at, value in zip(labs["patient_pk"], labs["analyte"], labs["collected_at"],
                                      labs["value"], strict=True):
        vals, times = series.setdefault((int(pk), analyte), ([], []))
        vals.append(float(value))
        times.append(at)
    alerts_by = records_by_pk(alerts)

    rows = []
    met_syndromes = syndrome_ids("met")  # an open alert of one weighs the concern score
    for p in patients.to_dict("records"):
        pk = int(p["id"])
        a = alerts_by.get(pk, [])
        rule_ids = {x["rule_id"] for x in a}
        row: dict = {
            "patient_pk": pk, "patient_id": p["patient_id"],
            "initials": p["initials"] if isinstance(p["initials"], str) else "",
            "bed": p["bed"] if isinstance(p["bed"], str) else "", "ward": p["ward"],
            "product": p["product"],
            "day": math.floor(day_of(now, p["infusion_date"], zone)),
            "crs_grade": _max_grade(a, ["crs_grade"]),
            "icans_grade": _max_grade(a, ["icans_grade"]),
            "iec_hs": "met" if "iec_hs" in rule_ids else "",
            "iec_hs_since_day": _since(a, "iec_hs"),
            "hlh": ", ".join(short_name(r) for r in ("cartox_hlh", "hlh_2004")
                             if r in rule_ids),
            "icaht_grade": _max_grade(a, ["icaht_early", "icaht_late"]),
            "ticaht_grade": _max_grade(a, ["ticaht_early", "ticaht_late"]),
        }
        for analyte in WATCHED:
            values, times = series.get((pk, analyte), ([], []))
            row[analyte] = values[-1] if values else None
            row[f"{analyte}_trend"] = trend_arrow(values)
            row[f"{analyte}_series"] = [v for v, t in zip(values, times, strict=True)
                                        if t >= spark_start]
            row[f"{analyte}_at"] = times[-1] if times else None
        counts = {sev: 0 for sev in SEVERITY_RANK}
        counts.update({f"{sev}_seen": 0 for sev in SEVERITY_RANK})
        counts["escalated"] = 0
        for x in a:
            sev = x["severity"] if x["severity"] in SEVERITY_RANK else "warning"
            counts[sev if x["state"] in UNACKNOWLEDGED else f"{sev}_seen"] += 1
            counts["escalated"] += x["state"] == AlertState.ESCALATED.value
        row.update({"unack_severe": counts["severe"], "unack_warning": counts["warning"],
                    "unack_info": counts["info"], "escalated": counts["escalated"],
                    "open_alerts": len(a)})
        newest_at = newest.get(pk)
        row["newest_lab_at"] = newest_at
        row["lab_age_h"] = (None if newest_at is None
                            else (pd.Timestamp(now) - newest_at).total_seconds() / 3600)
        row["no_labs_today"] = newest_at is None or newest_at < today_start
        met = len(rule_ids & met_syndromes)
        row["concern"] = concern_score(counts, [row["crs_grade"], row["icans_grade"]], met,
                                       row["no_labs_today"])
        rows.append(row)
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    for column in ("crs_grade", "icans_grade", "icaht_grade", "ticaht_grade"):
        out[column] = out[column].astype("Int64")
    return sort_by_concern(out)


def sort_by_concern(summary: pd.DataFrame) -> pd.DataFrame:
    """Most concerning first; ties by bed then study ID, so the order is stable."""
    return summary.sort_values(["concern", "bed", "patient_id"],
                               ascending=[False, True, True], kind="stable").reset_index(drop=True)


def filter_summary(summary: pd.DataFrame, products: Sequence[str] = (),
                   statuses: Sequence[str] = ()) -> pd.DataFrame:
    """Rows of the given products and with any of the statuses (see STATUS_FILTERS)."""
    out = summary
    if products:
        out = out[out["product"].isin(list(products))]
    if statuses:
        mask = pd.Series(False, index=out.index)
        for s in statuses:
            mask |= STATUS_FILTERS[s](out)
        out = out[mask]
    return out.reset_index(drop=True)


STATUS_FILTERS = {
    "Unacknowledged severe": lambda f: f["unack_severe"] > 0,
    "Escalated": lambda f: f["escalated"] > 0,
    "CRS": lambda f: f["crs_grade"].fillna(0).astype(float) > 0,
    "ICANS": lambda f: f["icans_grade"].fillna(0).astype(float) > 0,
    "IEC-HS screen met": lambda f: f["iec_hs"] == "met",
    "ICAHT": lambda f: f["icaht_grade"].fillna(0).astype(float) > 0,
    "No labs today": lambda f: f["no_labs_today"].astype(bool),
}


def _alert_lines(rows: list[dict], limit: int) -> list[str]:
    syndromes = syndrome_ids()

    def rank(r: dict) -> tuple:
        grade = r["grade"] if r["grade"] is not None and r["grade"] == r["grade"] else 0
        return (r["state"] in UNACKNOWLEDGED, r["rule_id"] in syndromes,
                SEVERITY_RANK.get(r["severity"], 0), grade)

    lines = []
    ordered = sorted(rows, key=rank, reverse=True)
    for r in ordered[:limit]:
        grade = r["grade"]
        grade_text = "" if grade is None or grade != grade else f" grade {int(grade)}"
        seen = "" if r["state"] in UNACKNOWLEDGED else f" ({r['state']})"
        lines.append(f"{r['severity'].upper()}: {short_name(r['rule_id'])}{grade_text}{seen}")
    if len(ordered) > limit:
        lines.append(f"+{len(ordered) - limit} more")
    return lines


def top_alerts(session: Session, patient_pks: Sequence[int],
               limit: int = 3) -> dict[int, list[str]]:
    """Each patient's open alerts as short lines, unacknowledged and most severe first."""
    by_pk = records_by_pk(_open_alerts(session, list(patient_pks)))
    return {int(pk): _alert_lines(by_pk.get(int(pk), []), limit) for pk in patient_pks}

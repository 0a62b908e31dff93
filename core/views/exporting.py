"""Exports: a patient's data as CSV (all final rows, original and canonical units), a
de-identified registry extract (keyed-hash subjects, days after infusion), and a one-page
handover snapshot of the timeline as PNG or PDF."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import warnings
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.store.db import session_scope
from core.store.loading import load_courses
from core.store.models import Patient

_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """Defuse spreadsheet formula injection in text cells (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def export_patient_csv(engine: Engine, patient_id: str, tz: str) -> str:
    with session_scope(engine) as s:
        courses = load_courses(s, tz, [patient_id], active_only=False)
    if not courses:
        raise ValueError(f"no patient {patient_id!r}")
    labs = courses[0].labs.copy()
    labs.insert(0, "patient_id", patient_id)
    cols = ["patient_id", "analyte", "day", "collected_at", "value", "unit", "qualifier",
            "original_value", "original_unit", "ref_low", "ref_high", "verified"]
    labs = labs[cols].sort_values(["day", "analyte"])
    labs = labs.map(neutralise)
    buf = io.StringIO()
    labs.to_csv(buf, index=False)
    return buf.getvalue()


# --- de-identified registry extract ----------------------------------------------------------

SITE_SECRET_ENV = "CARTWATCH_SITE_SECRET"
MIN_SECRET_LENGTH = 16
REGISTRY_COLUMNS = ["subject", "product", "sex", "age_band", "disease", "status", "record",
                    "item", "day", "value", "unit", "qualifier", "grade", "end_day"]


class RegistryRefused(ValueError):
    """No usable site secret: a registry extract is never written without one."""


def subject_key(patient_id: str, site_secret: str) -> str:
    """The registry's subject ID: HMAC-SHA256 of the study ID under the site's secret (the
    same patient always maps to the same key at one site; nobody without the secret can go
    back or test a guess)."""
    return hmac.new(site_secret.encode(), patient_id.encode(), hashlib.sha256).hexdigest()[:24]


def age_band(birth_year: int | None, infusion: date) -> str:
    """Ten-year band of the age at infusion ("60-69"); 90 and over as "90+"."""
    if birth_year is None:
        return ""
    age = infusion.year - int(birth_year)
    if age >= 90:
        return "90+"
    lo = max(0, age // 10 * 10)
    return f"{lo}-{lo + 9}"


_DATE_LIKE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")


def _scrub(text: str | None, patient_id: str) -> str:
    """Free text kept for a registry (product, disease) without dates or the study ID."""
    out = _DATE_LIKE.sub("[date]", text or "")
    return out.replace(patient_id, "[id]") if patient_id else out


def _day(v: float | None) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 3)


def registry_extract(engine: Engine, site_secret: str | None, tz: str = "UTC") -> pd.DataFrame:
    """Every patient's course for a registry, de-identified: subject = keyed hash of the study
    ID, every time as days after infusion, birth year as an age band; no initials, bed, ward,
    dates or free-text notes (which may hold names). One row for the infusion (day 0) and
    the lymphodepletion start, then one per lab value, observation, episode, treatment and
    course event (REGISTRY_COLUMNS)."""
    if not site_secret or len(site_secret) < MIN_SECRET_LENGTH:
        raise RegistryRefused(
            f"A registry extract needs the site secret in {SITE_SECRET_ENV} (at least "
            f"{MIN_SECRET_LENGTH} characters, kept by the site, never sent with the extract); "
            "nothing was exported.")
    with session_scope(engine) as s:
        courses = load_courses(s, tz, active_only=False)
        disease = dict(s.execute(select(col(Patient.patient_id), col(Patient.disease))).all())
    rows: list[dict[str, object]] = []
    for course in courses:
        p = course.patient
        base = {"subject": subject_key(p.patient_id, site_secret),
                "product": _scrub(p.product, p.patient_id),
                "sex": p.sex or "", "age_band": age_band(p.birth_year, p.infusion_date),
                "disease": _scrub(disease.get(p.patient_id), p.patient_id), "status": p.status}
        rows.append({**base, "record": "infusion", "item": base["product"], "day": 0.0})
        if p.lymphodepletion_day is not None:
            rows.append({**base, "record": "lymphodepletion", "item": "start",
                         "day": p.lymphodepletion_day})
        for r in course.labs.itertuples():
            rows.append({**base, "record": "lab", "item": r.analyte, "day": _day(r.day),
                         "value": r.value, "unit": r.unit, "qualifier": r.qualifier or ""})
        for r in course.observations.itertuples():
            value = r.value_num if r.value_num is not None and not pd.isna(r.value_num) \
                else r.value_text
            rows.append({**base, "record": "observation", "item": r.kind, "day": _day(r.day),
                         "value": value, "unit": r.unit or ""})
        for r in course.episodes.itertuples():
            rows.append({**base, "record": "episode", "item": str(r.kind),
                         "day": _day(r.onset_day), "grade": r.grade,
                         "end_day": _day(r.resolved_day), "qualifier": str(r.origin)})
        for r in course.treatments.itertuples():
            rows.append({**base, "record": "treatment", "item": r.drug, "day": _day(r.day),
                         "value": r.dose, "unit": r.dose_unit or ""})
        for r in course.events.itertuples():
            rows.append({**base, "record": "event", "item": str(r.kind), "day": _day(r.day)})
    frame = pd.DataFrame(rows, columns=REGISTRY_COLUMNS)
    return frame.sort_values(["subject", "day", "record", "item"], kind="stable",
                             na_position="last").reset_index(drop=True)


def registry_csv(engine: Engine, site_secret: str | None, tz: str = "UTC") -> str:
    buf = io.StringIO()
    registry_extract(engine, site_secret, tz).map(neutralise).to_csv(buf, index=False)
    return buf.getvalue()


# --- handover snapshot (PNG / PDF) -----------------------------------------------------------

SNAPSHOT_WIDTH = 1400


@cache
def _kaleido_server() -> bool:
    """Start kaleido's sync server once per process (later images take ~0.1 s, not ~2 s).

    kaleido drives the system chromium (Debian's /usr/bin/chromium); nothing is downloaded.
    """
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)
        return True
    except Exception:  # noqa: BLE001 - fall back to one browser per image
        return False


def figure_image(fig: go.Figure, fmt: str, width: int = SNAPSHOT_WIDTH) -> bytes:
    """The figure as PNG or PDF bytes, one page the size of the figure."""
    if fmt not in ("png", "pdf"):
        raise ValueError(f"unknown image format {fmt!r}: png or pdf")
    _kaleido_server()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "kopts argument is ignored if using a server"
        return fig.to_image(format=fmt, width=width, height=int(fig.layout.height or 1200),
                            scale=1 if fmt == "pdf" else 1.5)


def patient_snapshot(engine: Engine, patient_id: str, tz: str, fmt: str,
                     now: datetime | None = None) -> bytes:
    """A one-page handover snapshot: header, open alerts and the timeline (PNG or PDF)."""
    from core.monitoring.alert_actions import patient_alerts
    from core.rules.engine import evaluate_course
    from core.store.lab_reads import lab_corrections
    from core.store.loading import as_of_day
    from core.views.figures import timeline_figure
    from core.views.patient_summary import handover_title

    now = now or datetime.now(UTC)
    with session_scope(engine) as s:
        courses = load_courses(s, tz, [patient_id], active_only=False)
        if not courses:
            raise ValueError(f"no patient {patient_id!r}")
        alerts = patient_alerts(s, patient_id)
        corrected = lab_corrections(s, patient_id)
    course = courses[0]
    today = as_of_day(now, course.patient.infusion_date, tz)
    findings = evaluate_course(course)
    hi = 30.0 if today <= 28 else min(100.0, today + 2)
    fig = timeline_figure(course, (-7.0, hi), today_day=today, corrected=corrected,
                          title=handover_title(course, findings, alerts, today, now))
    return figure_image(fig, fmt)


def export_patient(engine: Engine, patient_id: str, tz: str, out: Path) -> Path:
    """Write the patient's CSV, PNG or PDF export, chosen by the file's suffix."""
    suffix = out.suffix.lower().lstrip(".")
    if suffix == "csv":
        out.write_text(export_patient_csv(engine, patient_id, tz), encoding="utf-8")
    elif suffix in ("png", "pdf"):
        out.write_bytes(patient_snapshot(engine, patient_id, tz, suffix))
    else:
        raise ValueError(f"cannot export to {out.name}: use .csv, .png or .pdf")
    return out

"""Exports: a patient's data as CSV (all final rows, original and canonical units), and a
one-page handover snapshot of the timeline as PNG or PDF."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import plotly.graph_objects as go
from sqlalchemy.engine import Engine

from core.db import session_scope
from core.loading import load_courses

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
    from core.alerts import patient_alerts
    from core.figures import timeline_figure
    from core.loading import as_of_day, lab_corrections
    from core.patient_summary import handover_title
    from core.rules.engine import evaluate_course

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

"""Patient timeline screen: cached loaders and render helpers (the page stays a description).

The figure itself is built in core/views/figures.py, so the CLI export draws the same chart.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.access.permissions import NotAllowed
from core.monitoring.alert_actions import acknowledge, alert_history, patient_alerts, snooze
from core.monitoring.alerts import SCREENING_NOTE
from core.rules.base import Finding
from core.store.db import session_scope
from core.store.faults import StorageFault
from core.store.lab_reads import lab_corrections, preliminary_labs
from core.store.loading import as_of_day
from core.views.exporting import export_patient_csv, figure_image
from core.views.figures import timeline_figure
from core.views.patient_summary import (
    IEC_HS_TIERS,
    TIERS_NOTE,
    Header,
    ScoreBlock,
    handover_title,
)
from core.views.timeline_content import DEFAULT_ANALYTES, TIMELINE_ANALYTES
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES, fmt
from dashboard import resources
from dashboard.auth import SignedIn, may

BADGES = {"severe": ":red-badge[SEVERE]", "warning": ":orange-badge[warning]",
          "info": ":blue-badge[info]"}
STATE_WORDS = {"firing": "firing", "escalated": "ESCALATED", "acknowledged": "acknowledged",
               "snoozed": "snoozed", "resolved": "resolved"}
ANALYTE_LABELS = {code: ANALYTES[code].name for code in TIMELINE_ANALYTES}


# --- cached loaders ---------------------------------------------------------------------------
# Keyed by the data version the page read (dashboard/resources.py): a write by any process is
# a miss on the next run. The ttl bounds what follows the clock (today's findings).

Version = tuple[int, int]


@st.cache_data(ttl=30, show_spinner=False, max_entries=50)
def findings(_engine, url: str, version: Version, patient_id: str,  # noqa: ANN001
             tz: str) -> list[Finding]:
    """Every rule's finding for the patient now (the scores panel and the header)."""
    from core.rules.engine import evaluate_course

    course = resources.patient_course(_engine, url, version, patient_id, tz)
    return [] if course is None else evaluate_course(course, overrides=overrides())


@st.cache_data(ttl=300, show_spinner=False, max_entries=50)
def suggested_episodes(_engine, url: str, version: Version, patient_id: str,  # noqa: ANN001
                       tz: str) -> list[dict]:
    """Episode windows suggested by a replay of the rules (documented ones win)."""
    from core.views.suggested_episodes import suggested_for

    course = resources.patient_course(_engine, url, version, patient_id, tz)
    return [] if course is None else suggested_for(course, overrides())


@st.cache_data(ttl=600, show_spinner=False, max_entries=50)
def corrections(_engine, url: str, version: Version,  # noqa: ANN001
                patient_id: str) -> dict[int, str]:
    with session_scope(_engine) as s:
        return lab_corrections(s, patient_id)


@st.cache_data(ttl=600, show_spinner=False, max_entries=50)
def preliminary(_engine, url: str, version: Version,  # noqa: ANN001
                patient_id: str) -> tuple[pd.DataFrame, bool]:
    with session_scope(_engine) as s:
        return preliminary_labs(s, patient_id)


def render_preliminary(frame: pd.DataFrame, rules_read_them: bool, tz: str) -> None:
    """Preliminary results (HL7 OBX-11 P, FHIR preliminary) waiting for the final value."""
    if frame.empty:
        return
    zone = ZoneInfo(tz)
    rows = [{"Result": ANALYTES[r.analyte].name if r.analyte in ANALYTES else r.analyte,
             "Value": f"{r.qualifier or ''}{fmt(r.value)} {r.unit}",
             "Taken": f"{r.collected_at.tz_convert(zone):%a %d %b %H:%M}",
             "From": {"hl7": "lab feed", "fhir": "EHR"}.get(r.source, r.source)}
            for r in frame.itertuples()]
    read = ("The rules read them (site setting)." if rules_read_them else
            "They are not on the chart and no rule reads them until the final value arrives.")
    with st.container(border=True):
        st.markdown(f"**Preliminary results: {len(rows)}** (not final). {read}")
        st.table(pd.DataFrame(rows).set_index("Result"))


def overrides() -> dict | None:
    settings = resources.get_settings()
    if settings.site_config is None:
        return None
    from core.site_config import site_overrides

    return site_overrides(settings)


# A figure is shared read-only by every session: cache_resource skips pickling, which would
# re-validate the whole figure (about 0.1 s) on every warm run.
@st.cache_resource(ttl=30, show_spinner=False, max_entries=50)
def figure(_engine, url: str, version: Version, patient_id: str, tz: str,  # noqa: ANN001
           day_range: tuple[float, float], analytes: tuple[str, ...], show_suggested: bool,
           today_day: float) -> go.Figure:
    course = resources.patient_course(_engine, url, version, patient_id, tz)
    suggested = (suggested_episodes(_engine, url, version, patient_id, tz) if show_suggested
                 else None)
    return timeline_figure(course, day_range, analytes, suggested, today_day,
                           corrections(_engine, url, version, patient_id), overrides())


def today_day(course: Course, tz: str) -> float:
    """The fractional ward day now (floor = the "day N" the ward reads)."""
    return as_of_day(datetime.now(UTC), course.patient.infusion_date, tz)


def default_range(day_now: float) -> tuple[int, int]:
    """Day -7 to +30, or to today when the patient is already past day 28."""
    return (-7, 30 if day_now <= 28 else min(100, math.floor(day_now) + 2))


# --- render helpers ---------------------------------------------------------------------------

def render_header(course: Course, h: Header, alerts: list) -> None:
    p = course.patient
    st.title(f"{p.patient_id} · {p.product}")
    cols = st.columns(6)
    cols[0].metric("Today", f"day {h.day:+d}")
    cols[1].metric("Infusion", f"{p.infusion_date:%d %b %y}")
    cols[2].metric("CRS now", h.crs)
    cols[3].metric("ICANS now", h.icans)
    cols[4].metric("CAR-HEMATOTOX", h.hematotox.split(" (")[0],
                   h.hematotox.partition(" (")[2].rstrip(")") or None, delta_color="off",
                   delta_arrow="off")
    cols[5].metric("Status", p.status, f"bed {p.bed or '–'}", delta_color="off",
                   delta_arrow="off")
    if alerts:
        listed = "; ".join(f"{BADGES.get(a.severity, '')} {a.title}"
                           + (f" (grade {a.grade})" if a.grade else "") for a in alerts[:6])
        more = f" and {len(alerts) - 6} more" if len(alerts) > 6 else ""
        st.markdown(f"**{len(alerts)} open alerts** (details in the Alerts tab): {listed}{more}")
    st.warning(SCREENING_NOTE, icon=":material/info:")


def chart_controls(day_now: float) -> tuple[tuple[int, int], tuple[str, ...], bool]:
    c = st.columns([3, 4, 2])
    lo, hi = c[0].slider("Days after infusion shown", -7, 100, default_range(day_now),
                         key="patient_days")
    chosen = c[1].multiselect("Analytes", list(TIMELINE_ANALYTES),
                              default=[a for a in TIMELINE_ANALYTES if a in DEFAULT_ANALYTES],
                              format_func=ANALYTE_LABELS.get, key="patient_analytes")
    show_suggested = c[2].checkbox("Windows suggested by the rules", value=True,
                                   key="patient_suggested")
    return (lo, hi), tuple(a for a in TIMELINE_ANALYTES if a in chosen), show_suggested


CHART_KEY = (
    "**How to read the chart.** Shaded bands: CRS, ICANS and IEC-HS windows (solid = "
    "documented by the team, dotted edge and pale = suggested by the rules). Light band "
    "behind a line: that lab's own reference range. Dashed lines: thresholds the rules use "
    "(dotted = provisional, not yet confirmed in the literature). ▲ / ▼ with a label: a "
    "censored result (\">\" above or \"<\" below the lab's range). Hollow marker: not yet "
    "verified; ◆: a corrected result. Hover a point for the date, time and the value as "
    "entered.")


def _evidence_table(evidence: list[dict]) -> pd.DataFrame:
    rows = []
    for e in evidence:
        name = e.get("analyte", "")
        name = ANALYTES[name].name if name in ANALYTES else name
        value = e.get("value")
        shown = "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
        orig = ""
        if e.get("original_unit") and e.get("original_unit") != e.get("unit"):
            orig = f"{e.get('original_value')} {e['original_unit']}"
        day = e.get("day")
        rows.append({"What": name, "Value": f"{shown} {e.get('unit') or ''}".strip(),
                     "Entered as": orig,
                     "Day": "" if day is None else f"{math.floor(day):+d}",
                     "Why": e.get("why", "")})
    return pd.DataFrame(rows)


def _act(engine, action: str, alert_id: int, **kw) -> str | None:  # noqa: ANN001, ANN003
    """Acknowledge or snooze through core.monitoring.alerts (which checks the role); the error
    sentence, or None on success."""
    try:
        with resources.write_session(engine) as s:
            (acknowledge if action == "acknowledge" else snooze)(s, alert_id, **kw)
    except (ValueError, LookupError, NotAllowed, StorageFault) as exc:
        return str(exc)
    return None


def render_alerts(engine, patient_id: str, user: SignedIn) -> list:  # noqa: ANN001
    """The patient's open alerts, evidence, what to log, and acknowledge / snooze (for a role
    that may)."""
    with session_scope(engine) as s:
        alerts = patient_alerts(s, patient_id)
    if not alerts:
        st.success("No open alerts for this patient.")
        return alerts
    for a in alerts:
        since = "" if a.since_day is None else f" · since day {math.floor(a.since_day):+d}"
        grade = f" · grade {a.grade}" if a.grade else ""
        head = (f"{BADGES.get(a.severity, '')} **{a.title}**{grade}{since}"
                f" · _{STATE_WORDS.get(str(a.state), str(a.state))}_")
        with st.container(border=True, key=f"patient_alert_{a.id}"):
            st.markdown(head)
            if a.evidence:
                st.dataframe(_evidence_table(a.evidence), hide_index=True, width="stretch")
            if a.missing:
                st.markdown("**To complete this, log:** " + "; ".join(a.missing))
            if str(a.state) == "acknowledged":
                st.caption(f"Acknowledged by {a.acknowledged_by}: {a.ack_note or 'no note'}")
            if str(a.state) == "snoozed" and a.snoozed_until:
                st.caption(f"Snoozed until {a.snoozed_until:%d %b %H:%M} UTC: {a.snooze_reason}")
            if a.rule_id == "iec_hs":
                st.info(TIERS_NOTE + "\n\n" + "\n".join(
                    f"{i}. {t}" for i, t in enumerate(IEC_HS_TIERS, 1)),
                    icon=":material/menu_book:")
            _alert_actions(engine, a.id, user)
    if not may(user, "acknowledge_alert"):
        st.caption("Only a clinician or an admin can acknowledge or snooze alerts.")
    return alerts


def _alert_actions(engine, alert_id: int, user: SignedIn) -> None:  # noqa: ANN001
    who, role = user.username, user.role
    left, right = st.columns(2)
    if may(user, "acknowledge_alert"):
        with left.form(f"patient_ack_form_{alert_id}", border=False):
            note = st.text_input("Note (optional)", key=f"patient_ack_note_{alert_id}")
            if st.form_submit_button("Acknowledge", key=f"patient_ack_{alert_id}"):
                _done(_act(engine, "acknowledge", alert_id, user=who, note=note, role=role),
                      f"Alert {alert_id} acknowledged by {who}.")
    if may(user, "snooze_alert"):
        with right.form(f"patient_snooze_form_{alert_id}", border=False):
            reason = st.text_input("Reason for snoozing (required)",
                                   key=f"patient_snooze_reason_{alert_id}")
            hours = st.number_input("Snooze for (hours)", 1, 72, 4, step=1,
                                    key=f"patient_snooze_hours_{alert_id}")
            if st.form_submit_button("Snooze", key=f"patient_snooze_{alert_id}"):
                until = datetime.now(UTC) + timedelta(hours=int(hours))
                _done(_act(engine, "snooze", alert_id, user=who, reason=reason, until=until,
                           role=role),
                      f"Alert {alert_id} snoozed for {int(hours)} h by {who}.")
    # read and drawn when opened (the expander reruns the page then), not on every view of
    # the page: that was a query and a data grid per alert, in a tab not even shown
    box = st.expander("History", key=f"patient_alert_history_{alert_id}", on_change="rerun")
    with box:
        if not box.open:
            st.caption("Who acknowledged or snoozed it, and when: shown when this opens.")
            return
        with session_scope(engine) as s:
            events = alert_history(s, alert_id)
        st.dataframe(pd.DataFrame([{"When (UTC)": f"{e.at:%d %b %H:%M}", "Who": e.actor,
                                    "What": e.action, "Note": e.note} for e in events]),
                     hide_index=True, width="stretch")


def _done(error: str | None, success: str) -> None:
    if error:
        st.error(error)
        return
    st.session_state["patient_flash"] = success
    st.rerun()


def render_scores(blocks: list[ScoreBlock]) -> None:
    st.caption(SCREENING_NOTE)
    for b in blocks:
        with st.container(border=True):
            st.markdown(f"**{b.title}**: {b.headline}")
            if b.rows:
                st.dataframe(pd.DataFrame(b.rows, columns=["Item", "State", "Values"]),
                             hide_index=True, width="stretch")
            if b.missing:
                st.markdown("**To complete it, log:** " + "; ".join(dict.fromkeys(b.missing)))


def render_exports(engine, url: str, version: Version, course: Course, tz: str,  # noqa: ANN001
                   fig: go.Figure, found: list[Finding], alerts: list, day_now: float) -> None:
    pid = course.patient.patient_id
    c = st.columns(3)
    # the CSV is written when the button is clicked (on Streamlit's own thread, no rerun),
    # not on every view of the page: it read the whole course again (~0.2 s a first view)
    c[0].download_button("Patient data (CSV)", partial(export_patient_csv, engine, pid, tz),
                         file_name=f"{pid}.csv", mime="text/csv", key="patient_csv",
                         on_click="ignore")
    fmt = c[1].radio("Snapshot format", ["pdf", "png"], horizontal=True, key="patient_fmt")
    if c[1].button("Prepare handover snapshot", key="patient_snapshot"):
        snap = go.Figure(fig)
        snap.update_layout(title=handover_title(course, found, alerts, day_now,
                                                datetime.now(UTC)),
                           margin={"t": 230}, height=(fig.layout.height or 1200) + 100)
        with st.spinner("Drawing the snapshot…"):
            st.session_state["patient_snapshot_bytes"] = (pid, fmt, figure_image(snap, fmt))
    ready = st.session_state.get("patient_snapshot_bytes")
    if ready and ready[0] == pid:
        c[2].download_button(f"Download snapshot ({ready[1].upper()})", ready[2],
                             file_name=f"{pid}-handover.{ready[1]}",
                             mime="application/pdf" if ready[1] == "pdf" else "image/png",
                             key="patient_snapshot_download")

"""The one composition root of the app: settings, engine and cached loaders."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.config import Settings
from core.course import Course
from core.db import init_db, make_engine, session_scope
from core.faults import write_session  # re-exported: dashboard/timeline.py
from core.loading import load_courses
from core.models import Patient

SCREENING_NOTE = ("Every alert here is a screening flag for clinician review, "
                  "not a diagnosis.")
SYNTHETIC_NOTE = "Synthetic sample data: no real patient."


def get_settings() -> Settings:
    return Settings.from_env()


@st.cache_resource(show_spinner=False)
def _engine_for(url: str):  # noqa: ANN202
    engine = make_engine(url)
    init_db(engine)
    return engine


def get_engine():  # noqa: ANN201
    """The engine for the configured URL (cached per URL, so tests can point elsewhere)."""
    return _engine_for(get_settings().database_url)


@st.cache_data(ttl=30, show_spinner=False)
def patients_frame(_engine, url: str) -> pd.DataFrame:  # noqa: ANN001
    """Every patient (any status), sorted by study ID."""
    with _engine.connect() as conn:
        return pd.read_sql(select(Patient.__table__).order_by(Patient.patient_id), conn)


@st.cache_data(ttl=30, show_spinner=False)
def patient_course(_engine, url: str, patient_id: str, tz: str) -> Course | None:  # noqa: ANN001
    with session_scope(_engine) as s:
        courses = load_courses(s, tz, [patient_id], active_only=False)
    return courses[0] if courses else None


# --- Ward views (issue 5: overview, huddle screen, alert inbox) ---------------------------
# The huddle loader is keyed by a clock tick, so every screen showing the same ward and
# interval shares one computation per interval; the ttl only bounds the cache.

@st.cache_data(ttl=30, show_spinner=False, max_entries=20)
def ward_summary(_engine, url: str, tz: str, ward: str | None = None) -> pd.DataFrame:  # noqa: ANN001
    from core.ward import ward_summary as summarise

    with session_scope(_engine) as s:
        return summarise(s, tz, ward=ward)


@st.cache_data(ttl=600, show_spinner=False, max_entries=50)
def huddle_snapshot(_engine, url: str, tz: str, ward: str | None, tick: int,  # noqa: ANN001
                    stale_hours: float) -> dict:
    """Masked tiles, freshness and the time they were computed (`tick` keys the refresh)."""
    from datetime import timedelta

    from core.models import utcnow
    from core.ward import freshness, huddle_tiles

    now = utcnow()
    with session_scope(_engine) as s:
        return {"tiles": huddle_tiles(s, tz, now, ward),
                "freshness": freshness(s, now, timedelta(hours=stale_hours)), "at": now}


@st.cache_data(ttl=15, show_spinner=False, max_entries=50)
def alert_inbox(_engine, url: str, states: tuple, patient_ids: tuple, rule_ids: tuple,  # noqa: ANN001
                severities: tuple) -> pd.DataFrame:
    from core.ward import InboxFilter
    from core.ward import alert_inbox as inbox

    with session_scope(_engine) as s:
        return inbox(s, InboxFilter(states, patient_ids, rule_ids, severities))


def alert_history(engine, alert_id: int) -> pd.DataFrame:  # noqa: ANN001
    """Every event of one alert, oldest first (not cached: it must show the last action)."""
    from core.alerts import alert_history as history

    with session_scope(engine) as s:
        return pd.DataFrame([{"at": e.at, "who": e.actor, "action": e.action, "note": e.note}
                             for e in history(s, alert_id)])


def act_on_alert(engine, action: str, alert_id: int, user: str, role: str,  # noqa: ANN001
                 **kw) -> None:  # noqa: ANN003
    """Acknowledge or snooze through core.alerts, which checks `role` and records who and
    when; clear caches."""
    from core.alerts import acknowledge, snooze

    act = {"acknowledge": acknowledge, "snooze": snooze}[action]
    with write_session(engine) as s:
        act(s, alert_id, user, role=role, **kw)
    alert_inbox.clear()
    ward_summary.clear()


def clear_caches() -> None:
    patients_frame.clear()
    patient_course.clear()


@st.cache_resource(show_spinner=False)
def cookie_key(_engine, url: str, configured: str | None) -> str:  # noqa: ANN001
    """The sign-in cookie's signing key (core.accounts.cookie_key), read once per process."""
    from core.accounts import cookie_key as key

    return key(_engine, configured)

"""The one composition root of the app: settings, engine and cached loaders."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.config import Settings
from core.monitoring.monitor import MonitorStatus
from core.monitoring.monitor import monitor_status as _monitor_status
from core.store.db import init_db, make_engine, session_scope
from core.store.loading import load_courses
from core.store.models import Patient
from core.store.unit_of_work import write_session  # re-exported: dashboard/timeline.py
from core.vocabulary.course import Course

log = logging.getLogger(__name__)
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


# --- Cached page data ------------------------------------------------------------------------
# Several servers (and the CLI, the monitor, an import) may write to one database. A page run
# (or a huddle tick) reads the data version once (`data_version`: two primary-key maxima) and
# passes it to the loaders below, so any write anywhere is a cache miss on the next run of
# every process; nothing needs clearing after a write. The ttl only bounds memory, and what a
# loader derives from the clock (day N, hours since the last lab, "no labs today").

def data_version(engine) -> tuple[int, int]:  # noqa: ANN001
    """core.store.audit.data_version: read it once per page run and pass it to the loaders."""
    from core.store.audit import data_version as version

    with session_scope(engine) as s:
        return version(s)


def monitor_status(engine, settings: Settings) -> MonitorStatus:  # noqa: ANN001
    """The monitor's heartbeat and the outbox (core.monitoring.monitor.monitor_status); not cached,
    as a
    monitor cycle or a delivery attempt writes no audit row."""
    with session_scope(engine) as s:
        return _monitor_status(s, interval=settings.monitor_interval)


@st.cache_data(ttl=600, show_spinner=False, max_entries=20)
def _patients(_engine, url: str, version: tuple[int, int]) -> pd.DataFrame:  # noqa: ANN001
    with _engine.connect() as conn:
        return pd.read_sql(select(Patient.__table__).order_by(Patient.patient_id), conn)


def patients_frame(engine, url: str,  # noqa: ANN001
                   version: tuple[int, int] | None = None) -> pd.DataFrame:
    """Every patient (any status), sorted by study ID (`version` read here when not given)."""
    return _patients(engine, url, data_version(engine) if version is None else version)


@st.cache_data(ttl=600, show_spinner=False, max_entries=50)
def patient_course(_engine, url: str, version: tuple[int, int], patient_id: str,  # noqa: ANN001
                   tz: str) -> Course | None:
    with session_scope(_engine) as s:
        courses = load_courses(s, tz, [patient_id], active_only=False)
    return courses[0] if courses else None


# --- Ward views (issue 5: overview, huddle screen, alert inbox) ---------------------------
# ttl 60 s: day N, lab ages and "no labs today" follow the clock, not the data version.

@st.cache_data(ttl=60, show_spinner=False, max_entries=20)
def ward_summary(_engine, url: str, version: tuple[int, int], tz: str,  # noqa: ANN001
                 ward: str | None = None) -> pd.DataFrame:
    from core.views.ward import ward_summary as summarise

    with session_scope(_engine) as s:
        return summarise(s, tz, ward=ward)


@st.cache_data(ttl=60, show_spinner=False, max_entries=50)
def huddle_snapshot(_engine, url: str, version: tuple[int, int], tz: str,  # noqa: ANN001
                    ward: str | None, stale_hours: float) -> dict:
    """Masked tiles, freshness and the time they were computed."""
    from datetime import timedelta

    from core.store.models import utcnow
    from core.views.changes import freshness
    from core.views.huddle import huddle_tiles

    now = utcnow()
    with session_scope(_engine) as s:
        return {"tiles": huddle_tiles(s, tz, now, ward),
                "freshness": freshness(s, now, timedelta(hours=stale_hours)), "at": now}


@st.cache_data(ttl=600, show_spinner=False, max_entries=50)
def alert_inbox(_engine, url: str, version: tuple[int, int], states: tuple,  # noqa: ANN001
                patient_ids: tuple, rule_ids: tuple, severities: tuple) -> pd.DataFrame:
    from core.views.inbox import InboxFilter
    from core.views.inbox import alert_inbox as inbox

    with session_scope(_engine) as s:
        return inbox(s, InboxFilter(states, patient_ids, rule_ids, severities))


def alert_history(engine, alert_id: int) -> pd.DataFrame:  # noqa: ANN001
    """Every event of one alert, oldest first (not cached: it must show the last action)."""
    from core.monitoring.alert_actions import alert_history as history

    with session_scope(engine) as s:
        return pd.DataFrame([{"at": e.at, "who": e.actor, "action": e.action, "note": e.note}
                             for e in history(s, alert_id)])


def act_on_alert(engine, action: str, alert_id: int, user: str, role: str,  # noqa: ANN001
                 **kw) -> None:  # noqa: ANN003
    """Acknowledge or snooze through core.monitoring.alerts, which checks `role` and records who and
    when (its audit row moves the data version: no cache to clear)."""
    from core.monitoring.alert_actions import acknowledge, snooze

    act = {"acknowledge": acknowledge, "snooze": snooze}[action]
    with write_session(engine) as s:
        act(s, alert_id, user, role=role, **kw)


@st.cache_resource(show_spinner=False)
def cookie_key(_engine, url: str, configured: str | None) -> str:  # noqa: ANN001
    """The sign-in cookie's signing key (core.access.accounts.cookie_key), read once per process."""
    from core.access.accounts import cookie_key as key

    return key(_engine, configured)


def patient_for_alert(engine, alert_id: str | None) -> str | None:  # noqa: ANN001
    """The study ID whose alert a notification's link (`/patient?alert=ID`) names."""
    if not alert_id:
        return None
    from core.monitoring.notify import patient_for_link

    with session_scope(engine) as s:
        return patient_for_link(s, alert_id)


# The browser modules of the elements the pages draw, which Streamlit loads only when an
# element of that kind is first drawn: each one the timeline waited for (the Plotly chart's
# is 4.6 MB) added a download, a compile and a React suspense to the session's first view.
ELEMENT_MODULES = ("PlotlyChart", "DataFrame", "Selectbox", "Multiselect", "TextInput",
                   "NumberInput", "Checkbox", "Slider", "Radio", "Metric", "DownloadButton",
                   "DateInput", "TextArea", "FileUploader")


@st.cache_resource(show_spinner=False)
def _element_modules() -> list[str]:
    """Where this Streamlit build serves those modules (static/js/<Name>.<hash>.js),
    relative to a page's URL; one missing from the build is logged and left to load on use."""
    js = Path(st.__file__).parent / "static" / "static" / "js"
    found = []
    for name in ELEMENT_MODULES:
        module = sorted(js.glob(f"{name}.*.js"))
        if module:
            found.append(f"./static/js/{module[0].name}")
        else:
            log.warning("no %s module in this Streamlit build: it loads on first use", name)
    return found


def prefetch_modules() -> None:
    """Load the browser modules of the elements the pages draw while the page is idle (on
    the sign-in page, then in the sidebar), so that no page waits for them when it first
    draws a chart, a table or a widget. The paths are file names of Streamlit's own build,
    JSON-quoted."""
    modules = _element_modules()
    if modules:
        st.html(f"<script>(window.requestIdleCallback || setTimeout)(() => "
                f"{json.dumps(modules)}.forEach(m => import(new URL(m, document.baseURI)"
                f".href)))</script>", unsafe_allow_javascript=True)

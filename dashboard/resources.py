"""The one composition root of the app: settings, engine and cached loaders."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sqlalchemy import select

from core.config import Settings
from core.course import Course
from core.db import init_db, make_engine, session_scope
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


def clear_caches() -> None:
    patients_frame.clear()
    patient_course.clear()

"""Patient timeline: labs against days after infusion with episode windows."""

from datetime import date

import streamlit as st

from dashboard import resources
from dashboard.timeline import timeline_figure

settings = resources.get_settings()
engine = resources.get_engine()
patient_id = st.session_state.get("patient_id")
course = patient_id and resources.patient_course(engine, settings.database_url, patient_id,
                                                 settings.ward_tz)
if not course:
    st.title("Patient timeline")
    st.info("Pick a patient in the sidebar.")
    st.stop()

p = course.patient
day_today = (date.today() - p.infusion_date).days
st.title(f"{p.patient_id} · {p.product}")
cols = st.columns(4)
cols[0].metric("Day after infusion", f"{day_today:+d}")
cols[1].metric("Infusion date", f"{p.infusion_date:%d %b %Y}")
cols[2].metric("Bed", p.bed or "–")
cols[3].metric("Status", p.status)
lo, hi = st.slider("Days shown", -7, 100, (-7, 30), key="patient_days")
st.plotly_chart(timeline_figure(course, (lo, hi)), key="patient_timeline",
                width="stretch")
st.caption(resources.SCREENING_NOTE)

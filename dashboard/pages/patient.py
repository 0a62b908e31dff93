"""Patient timeline: the screen a ward team reads every morning.

Header, labs on one "days after infusion" axis with episode windows and treatments, the
patient's alerts (acknowledge / snooze), the scores, and the handover exports.
"""

import streamlit as st

from core.views.patient_summary import header, score_blocks
from dashboard import auth, chart_text, resources
from dashboard import timeline as tl

settings = resources.get_settings()
engine = resources.get_engine()
url, tz = settings.database_url, settings.ward_tz
version = resources.data_version(engine)
patient_id = st.session_state.get("patient_id")
course = patient_id and resources.patient_course(engine, url, version, patient_id, tz)
if not course:
    st.title("Patient timeline")
    st.info("Pick a patient in the sidebar.")
    st.stop()

if flash := st.session_state.pop("patient_flash", None):
    st.success(flash)
day_now = tl.today_day(course, tz)
found = tl.findings(engine, url, version, patient_id, tz)
top = st.container()  # the header, filled once the alerts are known
chart, alerts_tab, scores_tab, export_tab = st.tabs(
    ["Timeline", "Alerts", "Scores", "Export / handover"])
with alerts_tab:
    alerts = tl.render_alerts(engine, patient_id, auth.current())
with top:
    tl.render_header(course, header(found, day_now), alerts)
with chart:
    tl.render_preliminary(*tl.preliminary(engine, url, version, patient_id), tz)
    day_range, analytes, show_suggested = tl.chart_controls(day_now)
    fig = tl.figure(engine, url, version, patient_id, tz, day_range, analytes,
                    show_suggested, round(day_now, 2))
    summary = chart_text.chart_summary(course, day_range, analytes, day_now)
    st.plotly_chart(fig, key="patient_timeline", width="stretch", theme=None, alt=summary)
    st.caption(summary)  # the chart's description, and where its text alternative is
    chart_text.render_values_table(
        course, day_range, analytes,
        tl.suggested_episodes(engine, url, version, patient_id, tz) if show_suggested else None,
        tl.corrections(engine, url, version, patient_id), tl.overrides())
    st.caption(tl.CHART_KEY)
with scores_tab:
    tl.render_scores(score_blocks(found))
with export_tab:
    tl.render_exports(engine, url, version, course, tz, fig, found, alerts, day_now)

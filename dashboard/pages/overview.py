"""Ward overview: one row per active patient, most concerning first."""

import streamlit as st

from core.views.ward import STATUS_FILTERS, filter_summary
from dashboard import resources
from dashboard.ward_view import (
    highlight_no_labs,
    overview_column_config,
    overview_table,
    show_notices,
    ward_notices,
)

COLUMNS = ["Open", "Bed", "Day", "Concern", "Level", "CRS", "ICANS", "IEC-HS screen", "ICAHT",
           "Ferritin", "Ferritin 14 d", "Fibrinogen", "Fibrinogen 14 d", "ANC", "ANC 14 d",
           "Platelets", "Platelets 14 d", "Severe", "Warning", "Info", "Newest lab", "Product"]

settings = resources.get_settings()
engine = resources.get_engine()
version = resources.data_version(engine)
summary = resources.ward_summary(engine, settings.database_url, version, settings.ward_tz)

st.title("Ward overview")
show_notices(ward_notices(resources.monitor_status(engine, settings), settings.tz))
if summary.empty:
    st.info("No active patients.")
    st.stop()

left, right = st.columns(2)
statuses = left.multiselect("Status", list(STATUS_FILTERS), key="overview_status",
                            placeholder="Any status")
products = right.multiselect("Product", sorted(summary["product"].unique()),
                             key="overview_product", placeholder="Any product")
shown = filter_summary(summary, products, statuses)

no_labs = summary[summary["no_labs_today"].astype(bool)]
if len(no_labs):
    st.warning("No labs today: " + ", ".join(
        f"bed {b or '–'} ({p})" for b, p in zip(no_labs["bed"], no_labs["patient_id"],
                                                strict=True)), icon=":material/science:")

table = overview_table(shown)
event = st.dataframe(
    highlight_no_labs(table), column_config=overview_column_config(summary["concern"].max()),
    column_order=COLUMNS, hide_index=True, width="stretch", height=min(38 + 35 * len(table), 900),
    on_select="rerun", selection_mode="single-row", key="overview_table")
st.caption(f"{len(shown)} of {len(summary)} active patients, sorted by concern (a sort order, "
           "not a clinical score). Click a patient ID to open the timeline in a new tab, or "
           "select a row to open it here. Grades come from the rules' open alerts. "
           + resources.SCREENING_NOTE)

rows = event.selection.rows if event else []
if rows:
    st.session_state.pop("_patient_from_url", None)  # app.py then takes the patient from the URL
    st.switch_page("pages/patient.py", query_params={"patient": shown.iloc[rows[0]]["patient_id"]})

"""CAR-T Watch: st.navigation over the pages, the shared sidebar and the patient picker."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard import resources  # noqa: E402

st.set_page_config(page_title="CAR-T Watch", page_icon=":material/monitor_heart:",
                   layout="wide")

PAGES = Path(__file__).parent / "pages"
# (section, file, title, icon, url path). A page is listed once its file exists, so pages
# can land one at a time; the first listed page that exists is the default.
REGISTRY = [
    ("Ward", "overview.py", "Ward overview", ":material/dashboard:", "overview"),
    ("Ward", "patient.py", "Patient timeline", ":material/timeline:", "patient"),
    ("Ward", "alerts.py", "Alert inbox", ":material/notifications:", "alerts"),
    ("Ward", "huddle.py", "Huddle screen", ":material/tv:", "huddle"),
    ("Data", "entry.py", "Enter data", ":material/edit_note:", "entry"),
    ("Data", "import_data.py", "Bulk import", ":material/upload_file:", "import"),
    ("Data", "verify.py", "Verification queue", ":material/fact_check:", "verify"),
    ("Data", "audit.py", "Audit trail", ":material/history:", "audit"),
    ("Rules", "rules.py", "Rules in force", ":material/rule:", "rules"),
    ("Rules", "backtest.py", "Backtesting", ":material/query_stats:", "backtest"),
]
sections: dict[str, list] = {}
for section, file, title, icon, url in REGISTRY:
    if (PAGES / file).exists():
        sections.setdefault(section, []).append(
            st.Page(PAGES / file, title=title, icon=icon, url_path=url,
                    default=not sections))
nav = st.navigation(sections)

engine = resources.get_engine()
settings = resources.get_settings()
patients = resources.patients_frame(engine, settings.database_url)

if nav.url_path == "huddle":  # wall display: no sidebar, no identifiers on screen
    nav.run()
    st.stop()

with st.sidebar:
    st.markdown("**CAR-T Watch**")
    if patients.empty:
        st.info("No patients yet. Import a patients file or run `make run` to load the "
                "synthetic sample.")
    else:
        ids = list(patients["patient_id"])
        wanted = st.query_params.get("patient")
        if wanted in ids and not st.session_state.get("_patient_from_url"):
            st.session_state["patient_id"] = wanted  # a bookmarked link opens that patient
        st.session_state["_patient_from_url"] = True
        if st.session_state.get("patient_id") not in ids:
            st.session_state["patient_id"] = ids[0]
        labels = {
            r.patient_id: f"{r.patient_id} · bed {r.bed if isinstance(r.bed, str) else '–'}"
            f" · {r.product}"
            + ("" if r.status == "active" else f" ({r.status})")
            for r in patients.itertuples()
        }
        st.selectbox("Patient", ids, key="patient_id", format_func=labels.get)
        st.query_params["patient"] = st.session_state["patient_id"]
        if patients["is_synthetic"].any():
            st.caption(resources.SYNTHETIC_NOTE)
    st.caption(resources.SCREENING_NOTE)

nav.run()

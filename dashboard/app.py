"""CAR-T Watch: st.navigation over the pages, the shared sidebar and the patient picker."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard import auth, resources  # noqa: E402

PAGES = Path(__file__).parent / "pages"
# (section, file, title, icon, url path, the core.access.permissions action a role needs to open
# it).
# A page is listed once its file exists, so pages can land one at a time.
REGISTRY = [
    ("Ward", "overview.py", "Ward overview", ":material/dashboard:", "overview", "view"),
    ("Ward", "patient.py", "Patient timeline", ":material/timeline:", "patient", "view"),
    ("Ward", "alerts.py", "Alert inbox", ":material/notifications:", "alerts", "view"),
    ("Ward", "huddle.py", "Huddle screen", ":material/tv:", "huddle", "view_huddle"),
    ("Data", "entry.py", "Enter data", ":material/edit_note:", "entry", "enter_data"),
    ("Data", "import_data.py", "Bulk import", ":material/upload_file:", "import", "enter_data"),
    ("Data", "verify.py", "Verification queue", ":material/fact_check:", "verify",
     "correct_data"),
    ("Data", "held.py", "Held messages", ":material/inbox:", "held", "correct_data"),
    ("Data", "audit.py", "Audit trail", ":material/history:", "audit", "view"),
    ("Rules", "rules.py", "Rules in force", ":material/rule:", "rules", "view"),
    ("Rules", "backtest.py", "Backtesting", ":material/query_stats:", "backtest", "view"),
    ("Admin", "admin.py", "Users & settings", ":material/manage_accounts:", "admin",
     "manage_users"),
    ("Account", "account.py", "My account", ":material/person:", "account", "own_account"),
]
REGISTRY = [r for r in REGISTRY if (PAGES / r[1]).exists()]


def main() -> None:
    """The app: the huddle wall for a display token, else sign-in, navigation, sidebar."""
    st.set_page_config(page_title="CAR-T Watch", page_icon=":material/monitor_heart:",
                       layout="wide")
    engine = resources.get_engine()
    settings = resources.get_settings()

    if auth.display_allowed(settings, st.query_params.get("display")):
        # the huddle TV: only the wall, no sign-in form, no way to other pages
        # The wall keeps its own URL (/huddle?display=...): a default page is always served at
        # "/", so the wall as the default would leave /huddle unmatched ("Page not found" over
        # the wall). "/?display=..." switches to the wall, keeping the query.
        huddle = next(r for r in REGISTRY if r[4] == "huddle")
        wall = st.Page(PAGES / huddle[1], title=huddle[2], icon=huddle[3], url_path=huddle[4])

        def _to_wall() -> None:
            st.switch_page(wall, query_params=st.query_params.to_dict())

        st.navigation([st.Page(_to_wall, title=huddle[2], default=True), wall],
                      position="hidden").run()
        st.stop()

    user = auth.gate(engine, settings)
    # every page stays reachable by URL (so a bookmark survives signing in), but a page the
    # role may not open is not listed, and refuses to render below
    openable = [r for r in REGISTRY if auth.may(user, r[5])]
    default = (openable or REGISTRY)[0]
    sections: dict[str, list] = {}
    for section, file, title, icon, url, action in REGISTRY:
        sections.setdefault(section, []).append(
            st.Page(PAGES / file, title=title, icon=icon, url_path=url, default=file == default[1],
                    visibility="visible" if auth.may(user, action) else "hidden"))
    nav = st.navigation(sections)
    if user is None:
        auth.sign_in_page(engine, settings)  # stops here unless the sign-in succeeds
        st.stop()
    patients = resources.patients_frame(engine, settings.database_url)

    needs = {title: action for _s, _f, title, _i, _u, action in REGISTRY}[nav.title]
    if nav.url_path == "huddle" and auth.may(user, needs):  # wall: no sidebar, no identifiers
        nav.run()
        st.stop()

    with st.sidebar:
        st.markdown("**CAR-T Watch**")
        if patients.empty:
            st.info("No patients yet. Import a patients file or run `make run` to load the "
                    "synthetic sample.")
        else:
            ids = list(patients["patient_id"])
            # a bookmark names the patient; a notification's link names only its alert
            wanted = (st.query_params.get("patient")
                      or resources.patient_for_alert(engine, st.query_params.get("alert")))
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
        st.divider()
        auth.sidebar(engine, settings, user)
        resources.prefetch_modules()

    if not auth.may(user, needs):
        auth.refuse_page(user, nav.title, needs)  # reached by URL: says so and stops
    nav.run()


# Streamlit runs this script as __main__. A worker process that the backtest spawns from
# the server imports it as __mp_main__ (multiprocessing's safe importing of the main
# module), and must not run the app.
if __name__ == "__main__":
    main()

"""Verification queue: hand-entered lab values waiting for a second person's check."""

import streamlit as st

from core.corrections import verification_queue, verification_required, verify
from core.entry import save_site_setting
from dashboard import capture as ui
from dashboard import resources

engine = resources.get_engine()
st.title("Verification queue")
st.caption("Lab values typed in by hand (or corrected) that no second person has checked yet. "
           "You cannot verify a value you entered yourself.")
user = ui.user_box()
required = verification_required(engine)
if st.toggle("This site requires second-person verification", value=required,
             key="verify_required") != required and user:
    save_site_setting(engine, "require_verification", not required, user)
    st.rerun()
only_patient = st.checkbox("Only the patient picked in the sidebar", key="verify_only_patient")
queue = verification_queue(engine, st.session_state.get("patient_id") if only_patient else None)
if queue.empty:
    st.success("Nothing waiting for verification.")
    st.stop()
queue.insert(0, "verify", False)
picked = st.data_editor(
    queue, hide_index=True, key="verify_table", disabled=[c for c in queue if c != "verify"],
    column_config={"verify": st.column_config.CheckboxColumn("Verify"),
                   "confirmed_unusual": st.column_config.CheckboxColumn("Unusual, confirmed"),
                   "collected_at": st.column_config.DatetimeColumn("Drawn",
                                                                   format="YYYY-MM-DD HH:mm")})
ids = [int(i) for i in picked.loc[picked["verify"], "id"]]
if st.button(f"Verify {len(ids)} value(s)", disabled=not ids or not user, type="primary",
             key="verify_go"):
    for msg in verify(engine, ids, user):
        st.warning(msg)
    resources.clear_caches()
    st.rerun()
if not user:
    st.caption("Type your name above to verify.")

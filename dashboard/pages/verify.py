"""Verification queue: hand-entered lab values waiting for a second person's check."""

import streamlit as st

from core.access.permissions import NotAllowed
from core.capture.corrections import verification_queue, verification_required, verify
from core.store.faults import StorageFault
from dashboard import auth, resources

engine = resources.get_engine()
me = auth.current()
st.title("Verification queue")
st.caption("Lab values typed in by hand (or corrected) that no second person has checked yet. "
           "You cannot verify a value you entered yourself.")
st.caption("This site " + ("requires" if verification_required(engine) else "does not require")
           + " second-person verification (an admin changes this under Users & settings).")
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
if st.button(f"Verify {len(ids)} value(s)", disabled=not ids, type="primary", key="verify_go"):
    try:
        for msg in verify(engine, ids, me.username, role=me.role):
            st.warning(msg)
    except (NotAllowed, StorageFault) as exc:
        st.error(str(exc))
        st.stop()
    st.rerun()

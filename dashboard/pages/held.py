"""Held messages: HL7 results for an unknown patient or an unmapped code, waiting for a person
to match (nurse) or map (admin), then release; or dismiss with a reason."""

import streamlit as st

from core.access.permissions import NotAllowed, allowed
from core.capture.codemap import CodeMapRefused, map_code
from core.capture.hl7.held import (
    HeldRefused,
    dismiss,
    held_code_targets,
    held_messages,
    match_patient,
    release,
)
from core.store.faults import StorageFault
from core.store.models import CodeTarget
from dashboard import auth, codemap_admin, resources

engine = resources.get_engine()
settings = resources.get_settings()
me = auth.current()
st.title("Held messages")
st.caption("Results from the laboratory feed (HL7) that could not be placed: the patient is not "
           "registered here, or a test code is not mapped. Nothing is dropped: match or map, "
           "then release; or dismiss with a reason. Every action goes to the audit trail.")
queue = held_messages(engine)
if queue.empty:
    st.success("No held messages.")
    st.stop()
st.write(f"{len(queue)} message(s) waiting")
labels = {int(r.id): f"{r.received_at:%Y-%m-%d %H:%M} · {r.message_type} · {r.control_id} · "
                     f"PID-3 {r.patient_id or '–'}" for r in queue.itertuples()}
picked = st.selectbox("Message", list(labels), format_func=labels.get, key="held_pick")
row = queue.set_index("id").loc[picked]
st.warning(row["reason"])
with st.expander("Raw message", expanded=True):
    st.code(row["raw"].replace("\r", "\n"), language=None)


def act(what, *args, done: str | None = None, **kwargs) -> None:  # noqa: ANN001
    try:
        said = what(engine, *args, **kwargs)
    except (HeldRefused, CodeMapRefused, NotAllowed, StorageFault) as exc:
        st.error(str(exc))
        return
    st.session_state["held_done"] = done or (said if isinstance(said, str) else "Done.")
    st.rerun()


if done := st.session_state.pop("held_done", None):
    st.success(done)
patients = resources.patients_frame(engine, settings.database_url)
c1, c2 = st.columns(2)
with c1.form("held_match_form"):
    st.markdown("**Match the patient**")
    who = st.selectbox("Registered patient", list(patients["patient_id"]), index=None,
                       key="held_match_patient")
    why = st.text_input("Why (e.g. same name and birth date)", key="held_match_reason")
    if st.form_submit_button("Match"):
        if who is None:
            st.error("Pick the registered patient this message is for.")
            st.stop()
        act(match_patient, picked, who, user=me.username, reason=why, role=me.role,
            settings=settings)
if allowed(me.role, "site_settings"):
    codes = held_code_targets(engine, picked, settings)
    with c2.container(border=True):
        st.markdown("**Map a code** (admin)")
        st.caption("The same choices as Users & settings → Code map; the mapping serves every "
                   "later message with this code too.")
        first = next((i for i, c in enumerate(codes) if not c.placeable), 0)
        code = st.selectbox(
            "Code", codes, index=first if codes else None, key="held_map_code",
            format_func=lambda c: f"{c.code} {c.text} ({c.system}) · " + (
                "not mapped" if c.target is None else
                f"now {codemap_admin.label(c.target.kind.value, c.target.code)}"))
        left, right = st.columns(2)
        kind, target, unit = codemap_admin.target_inputs(left, right, "held_map")
        if kind == CodeTarget.DRUG.value:
            st.info("A drug mapping serves FHIR medication records and treatment CSVs. A "
                    "laboratory result message (HL7 ORU) with this code stays held: map a "
                    "result code to a lab analyte or a bedside observation.")
        why_map = st.text_input("Why (goes to the audit trail)", key="held_map_reason")
        if st.button("Map code", key="held_map_save") and code is not None:
            act(map_code, system=code.system, code=code.code, target_kind=kind, target=target,
                unit=unit, user=me.username, reason=why_map, display=code.text or None,
                role=me.role,
                done=f"{code.system} {code.code} now maps to "
                     f"{codemap_admin.label(kind, target)}. Release the message to store "
                     "its values.")
else:
    c2.info("An admin maps an unknown code (here or under Users & settings).")
b1, b2 = st.columns(2)
if b1.button("Release", type="primary", key="held_release"):
    act(release, picked, user=me.username, role=me.role, settings=settings)
with b2.form("held_dismiss_form"):
    reason = st.text_input("Reason for dismissing", key="held_dismiss_reason")
    if st.form_submit_button("Dismiss"):
        act(dismiss, picked, user=me.username, reason=reason, role=me.role)
st.caption(resources.SCREENING_NOTE)

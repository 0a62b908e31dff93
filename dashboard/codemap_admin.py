"""The Code map section of Users & settings (admin): the site's local lab and EHR codes mapped
to what CAR-T Watch monitors, one at a time or from a CSV, each change with a reason. The
same map serves CSV, HL7 v2 and FHIR; everything here goes through core.capture.codemap."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access.permissions import NotAllowed
from core.capture import codemap
from core.store.faults import StorageFault
from core.store.models import CodeTarget
from core.vocabulary.observations import DRUGS, OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES, LOINC_TO_ANALYTE

TARGETS: dict[str, dict[str, str]] = {
    CodeTarget.ANALYTE.value: {code: a.name for code, a in ANALYTES.items()},
    CodeTarget.OBSERVATION.value: {code: k.label for code, k in OBSERVATION_KINDS.items()},
    CodeTarget.DRUG.value: {code: label for code, (label, _classes) in DRUGS.items()},
}
KIND_LABELS = {"analyte": "Lab analyte", "observation": "Bedside observation",
               "drug": "Drug (treatment)"}


def label(kind: str, target: str) -> str:
    """How a map target reads on a page: "Bedside observation: Temperature"."""
    return f"{KIND_LABELS.get(kind, kind)}: {TARGETS.get(kind, {}).get(target, target)}"


def target_inputs(left, right, key: str) -> tuple[str, str, str | None]:  # noqa: ANN001
    """The kind, target and unit of a mapping (the same choices wherever a code is mapped:
    this section and the Held messages page); returns (kind, target, unit or None). Not in
    an st.form: the "Which" choices follow the kind chosen. Keys: {key}_kind,
    {key}_target_{kind}, {key}_unit. core.capture.codemap.map_code checks what is saved."""
    kind = left.selectbox("Maps to a", list(TARGETS), format_func=KIND_LABELS.get,
                          key=f"{key}_kind")
    choices = TARGETS[kind]
    target = right.selectbox("Which", list(choices), format_func=choices.get,
                             key=f"{key}_target_{kind}")
    unit = left.text_input("Unit the system sends (optional)", key=f"{key}_unit",
                           help="Only when its own unit spelling is missing or local; "
                                "any UCUM unit is understood without it")
    return kind, target, unit.strip() or None


def _attempt(action, done: str) -> None:  # noqa: ANN001
    try:
        action()
    except (codemap.CodeMapRefused, NotAllowed, StorageFault) as exc:
        st.error(str(exc))
        return
    st.session_state["admin_flash"] = done
    st.rerun()


def built_in_frame() -> pd.DataFrame:
    rows = [{"LOINC": code, "Maps to": label("analyte", analyte)}
            for code, analyte in sorted(LOINC_TO_ANALYTE.items())]
    rows += [{"LOINC": code, "Maps to": label("observation", kind)}
             for code, kind in sorted(codemap.VITAL_SIGN_LOINC.items())]
    return pd.DataFrame(rows)


def section(engine, me) -> None:  # noqa: ANN001
    st.subheader("Code map")
    st.caption("Local codes your laboratory system or EHR sends, mapped to what CAR-T Watch "
               "monitors. The same map serves CSV, HL7 and FHIR; LOINC codes need no entry. "
               "A message with a code nobody mapped waits on the Held messages page. Entries "
               "are never deleted: a change replaces the old entry, and both stay in the "
               "audit trail with your reason.")
    entries = codemap.entries(engine)
    if entries:
        st.dataframe(pd.DataFrame([{
            "#": e.id, "System": e.system, "Code": e.code, "Description": e.display or "",
            "Maps to": label(e.target_kind, e.target), "Unit sent": e.unit or "",
            "By": e.created_by, "Since (UTC)": f"{pd.Timestamp(e.created_at):%Y-%m-%d %H:%M}",
        } for e in entries]), hide_index=True, width="stretch", key="codemap_table")
    else:
        st.info("No local codes mapped yet: only LOINC codes are recognised.")
    with st.expander("Built-in LOINC codes"):
        st.dataframe(built_in_frame(), hide_index=True, width="stretch")

    add, load = st.columns(2)
    with add.container(border=True):
        st.markdown("**Map a code**")
        left, right = st.columns(2)
        system = left.text_input("System", key="codemap_system", placeholder="e.g. LAB1",
                                 help="The coding system (HL7 OBX-3.3, FHIR coding.system) "
                                      "or * for any system")
        code = right.text_input("Local code", key="codemap_code", placeholder="e.g. FERR")
        kind, target, unit = target_inputs(left, right, "codemap")
        display = right.text_input("Description (optional)", key="codemap_display")
        reason = st.text_input("Reason (goes to the audit trail)", key="codemap_reason",
                               placeholder="e.g. lab code list 2026-11")
        if st.button("Save mapping", type="primary", key="codemap_save"):
            _attempt(lambda: codemap.map_code(
                engine, system=system or codemap.ANY_SYSTEM, code=code, target_kind=kind,
                target=target, unit=unit, display=display or None,
                user=me.username, reason=reason, role=me.role),
                f"{system or codemap.ANY_SYSTEM} {code} now maps to {label(kind, target)}. "
                "Held messages with this code can be released.")
    with load.container(border=True):
        st.markdown("**Load a map from CSV**")
        st.caption("Columns: system, code, target_kind (analyte, observation, drug), target, "
                   "and optionally unit, display. Every row or none is saved.")
        upload = st.file_uploader("Code map CSV", type=["csv"], key="codemap_upload")
        csv_reason = st.text_input("Reason", key="codemap_csv_reason")
        if st.button("Load map", key="codemap_load", disabled=upload is None):
            data = upload.getvalue() if upload is not None else b""
            _attempt(lambda: codemap.import_csv(engine, data, user=me.username,
                                                reason=csv_reason, role=me.role),
                     "Code map loaded.")
        if entries:
            st.markdown("**Remove a mapping**")
            ids = [e.id for e in entries]
            by_id = {e.id: e for e in entries}
            gone = st.selectbox(
                "Mapping", ids, key="codemap_remove_pick",
                format_func=lambda i: f"#{i} {by_id[i].system} {by_id[i].code} → "
                                      f"{label(by_id[i].target_kind, by_id[i].target)}")
            why = st.text_input("Reason for removing", key="codemap_remove_reason")
            if st.button("Remove mapping", key="codemap_remove"):
                _attempt(lambda: codemap.unmap(engine, int(gone), user=me.username, reason=why,
                                               role=me.role),
                         f"Mapping #{gone} removed (kept in the audit trail).")

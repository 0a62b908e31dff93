"""The Interfaces section of Users & settings (admin): what the laboratory feed (HL7) and the
EHR (FHIR) sent in the last day, and the site settings that decide how their results are
read. Settings go through core.capture.entry.save_site_setting (audited)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.access.permissions import NotAllowed
from core.capture import inbound
from core.capture.entry import save_site_setting, site_setting
from core.capture.fhir import options as fhir_options
from core.capture.fhir.drugs import RECORDED
from core.capture.hl7.receive import ID_TYPE_SETTING
from core.store.faults import StorageFault
from core.store.lab_reads import PRELIMINARY_SETTING
from core.vocabulary.observations import DRUGS

CHANNELS = {"hl7": "Laboratory feed (HL7 v2)", "fhir": "EHR (FHIR sync)"}


def _save(engine, key: str, value, me, done: str) -> None:  # noqa: ANN001
    try:
        save_site_setting(engine, key, value, me.username, role=me.role)
    except (NotAllowed, StorageFault) as exc:
        st.error(str(exc))
        return
    st.session_state["admin_flash"] = done
    st.rerun()


def traffic_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([{
        "Interface": CHANNELS.get(str(r["channel"]), str(r["channel"])),
        "Stored": r["stored"], "Held (last 24 h)": r["held"], "Refused": r["refused"],
        "Waiting on Held messages": r["waiting"],
        "Newest (UTC)": ("" if r["newest"] is None
                         else f"{pd.Timestamp(r['newest']):%Y-%m-%d %H:%M}"),
    } for r in rows])


def section(engine, me) -> None:  # noqa: ANN001
    st.subheader("Interfaces")
    st.caption("Results arriving by themselves: `python -m core listen-hl7` takes the "
               "laboratory's HL7 v2 feed, `python -m core fhir-sync` (or the monitor) pulls "
               "from the EHR. Nothing they send is dropped: it is stored, refused with a "
               "reason the sender sees, or held for a person on the Held messages page.")
    rows = inbound.summary(engine)
    if rows:
        st.dataframe(traffic_frame(rows), hide_index=True, width="stretch")
    else:
        st.info("Nothing received from another system in the last 24 hours.")

    preliminary = bool(site_setting(engine, PRELIMINARY_SETTING, False))
    if st.toggle("Rules read preliminary results (HL7 OBX-11 P, FHIR preliminary)",
                 value=preliminary, key="iface_preliminary",
                 help="Off: a preliminary result is stored and waits for the final one "
                      "before any rule reads it.") != preliminary:
        _save(engine, PRELIMINARY_SETTING, not preliminary, me,
              "Preliminary results are " + ("now" if not preliminary else "no longer")
              + " read by the rules.")
    day0 = bool(site_setting(engine, fhir_options.DAY0, False))
    if st.toggle("Day 0 from the CAR-T product's administration when an EHR patient has no "
                 "infusion date", value=day0, key="iface_day0") != day0:
        _save(engine, fhir_options.DAY0, not day0, me, "Day 0 setting saved.")

    left, right = st.columns(2)
    with left.form("iface_text_form", border=True):
        id_type = st.text_input(
            "HL7 PID-3 identifier type that names our patients", key="iface_id_type",
            value=str(site_setting(engine, ID_TYPE_SETTING, "") or ""),
            help="The CX-5 type code, e.g. MR or PI; blank: the first identifier")
        products = st.text_input(
            "The site's CAR-T product codes or names in the EHR (comma-separated)",
            key="iface_products",
            value=", ".join(fhir_options.as_strings(site_setting(engine,
                                                                fhir_options.PRODUCT_CODES,
                                                                []))))
        if st.form_submit_button("Save interface settings"):
            try:
                save_site_setting(engine, ID_TYPE_SETTING, id_type.strip() or None,
                                  me.username, role=me.role)
                save_site_setting(engine, fhir_options.PRODUCT_CODES,
                                  list(fhir_options.as_strings(products)), me.username,
                                  role=me.role)
            except (NotAllowed, StorageFault) as exc:
                st.error(str(exc))
            else:
                st.session_state["admin_flash"] = "Interface settings saved."
                st.rerun()
    with right.container(border=True):
        optional = [d for d in DRUGS if d not in RECORDED]
        current = [d for d in fhir_options.as_strings(site_setting(engine,
                                                                 fhir_options.EXTRA_DRUGS, []))
                   if d in optional]
        extra = st.multiselect("Also record these drugs from the EHR", optional,
                               default=current, format_func=lambda d: DRUGS[d][0],
                               key="iface_extra_drugs",
                               help="Anti-cytokine, corticosteroid and IEC-HS-directed drugs "
                                    "are always recorded")
        if st.button("Save drugs", key="iface_save_drugs", disabled=extra == current):
            _save(engine, fhir_options.EXTRA_DRUGS, extra, me, "Drugs recorded from the EHR "
                  "saved.")

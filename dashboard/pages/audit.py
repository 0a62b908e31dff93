"""Audit trail: every write with who, when, before, after and why; filter and export."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from core.store.audit_trail import audit_csv, audit_log, changes
from dashboard import resources

engine = resources.get_engine()
st.title("Audit trail")
st.caption("Every change to the data: who made it, when, what it was before and after, and "
           "why. Nothing is ever deleted.")
everything = audit_log(engine)
c1, c2, c3, c4 = st.columns(4)
actor = c1.selectbox("Who", sorted(everything["actor"].dropna().unique()), index=None,
                     placeholder="anyone", key="audit_actor")
table = c2.selectbox("Table", sorted(everything["table_name"].dropna().unique()), index=None,
                     placeholder="any", key="audit_table")
patient = c3.selectbox("Patient", sorted(everything["patient_id"].dropna().unique()),
                       index=None, placeholder="any", key="audit_patient")
span = c4.date_input("Dates", (date.today() - timedelta(days=30), date.today()),
                     key="audit_dates")
start, end = (span + (None, None))[:2] if isinstance(span, tuple) else (span, span)
log = audit_log(engine, actor=actor, table=table, patient_id=patient, start=start, end=end)
st.write(f"{len(log):,} change(s)")
shown = pd.DataFrame({
    "When": log["at"].map(lambda t: f"{t:%Y-%m-%d %H:%M:%S}"), "Who": log["actor"],
    "Action": log["action"], "Table": log["table_name"], "Record": log["record_id"],
    "Patient": log["patient_id"],
    "What changed": [changes(b, a) or ("new row" if a and not b else "")
                     for b, a in zip(log["before"], log["after"], strict=True)],
    "Why": log["reason"]})
st.dataframe(shown, hide_index=True, width="stretch",
             column_config={"What changed": st.column_config.TextColumn(width="large")})
if len(log):
    with st.expander("Full before / after of one change"):
        i = st.selectbox("Change", log.index, key="audit_pick",
                         format_func=lambda i: f"{shown.at[i, 'When']} · {shown.at[i, 'Who']} "
                                               f"· {shown.at[i, 'Action']} {shown.at[i, 'Table']}"
                                               f" {shown.at[i, 'Record']}")
        b1, b2 = st.columns(2)
        b1.markdown("**Before**")
        b1.json(log.at[i, "before"] or {})
        b2.markdown("**After**")
        b2.json(log.at[i, "after"] or {})
st.download_button("Export as CSV", audit_csv(log), "audit_trail.csv", "text/csv",
                   key="audit_export")

"""Audit trail: every write with who, when, before, after and why; filter and export."""

import json
from datetime import date, timedelta

import streamlit as st

from core.audit_trail import audit_csv, audit_log, changes
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
shown = log.assign(
    what_changed=[changes(b, a) for b, a in zip(log["before"], log["after"], strict=True)],
    before=log["before"].map(lambda v: "" if v is None else json.dumps(v, default=str)),
    after=log["after"].map(lambda v: "" if v is None else json.dumps(v, default=str)))
st.dataframe(shown[["at", "actor", "action", "table_name", "record_id", "patient_id",
                    "what_changed", "reason", "before", "after"]], hide_index=True,
             width="stretch",
             column_config={"at": st.column_config.DatetimeColumn("When",
                                                                  format="YYYY-MM-DD HH:mm:ss"),
                            "table_name": "Table", "record_id": "Record",
                            "what_changed": st.column_config.TextColumn("What changed",
                                                                        width="large")})
st.download_button("Export as CSV", audit_csv(log), "audit_trail.csv", "text/csv",
                   key="audit_export")

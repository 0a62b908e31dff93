"""Bulk import: upload a CSV or FHIR file, preview the row-by-row report, then commit all."""

import streamlit as st

from core.access.permissions import NotAllowed
from core.capture.fhir import import_fhir
from core.capture.importing import KINDS, import_file, template_csv
from core.store.faults import StorageFault
from dashboard import auth, resources

settings = resources.get_settings()
engine = resources.get_engine()
st.title("Bulk import")
st.caption("CSV (one file kind per file; see the templates) or FHIR R4 JSON / ndjson. Every "
           "row is checked first; the file is written completely or not at all, and importing "
           "the same file again adds nothing.")
me = auth.current()
user, role = me.username, me.role
with st.expander("Templates (header rows for each CSV kind)"):
    cols = st.columns(len(KINDS))
    for col, kind in zip(cols, KINDS, strict=True):
        col.download_button(f"{kind}.csv", template_csv(kind), f"{kind}_template.csv",
                            "text/csv", key=f"import_tpl_{kind}")
upload = st.file_uploader("File to import", type=["csv", "json", "ndjson"], key="import_file")
confirm = st.checkbox("Confirm unusual values (past the usual limits, still possible)",
                      key="import_confirm")


def run(data: bytes, name: str, dry_run: bool):  # noqa: ANN201
    bar = st.progress(0.0, text="starting")
    say = lambda f, m: bar.progress(min(1.0, f), text=m)  # noqa: E731
    if name.lower().endswith((".json", ".ndjson")):
        report = import_fhir(engine, data, name, user=user, dry_run=dry_run,
                             tz=settings.ward_tz, confirm_unusual=confirm, progress=say,
                             role=role)
        bar.empty()
        return report
    report = import_file(engine, data, name, user=user, dry_run=dry_run,
                         confirm_unusual=confirm, tz=settings.ward_tz, progress=say, role=role)
    bar.empty()
    return report


if upload is not None:
    data, name = upload.getvalue(), upload.name
    try:
        preview = run(data, name, dry_run=True)
    except (NotAllowed, StorageFault) as exc:  # e.g. an episodes file from a nurse
        st.error(str(exc))
        st.stop()
    st.subheader("Preview: nothing has been written yet")
    if preview.ok:
        st.success(preview.summary())
        if preview.rows_new and st.button(f"Commit all {preview.rows_new:,} new rows",
                                          type="primary", key="import_commit"):
            try:
                done = run(data, name, dry_run=False)
            except (NotAllowed, StorageFault) as exc:
                st.error(str(exc))
                st.stop()
            if done.ok:
                st.success(done.summary())
            else:
                st.error(done.summary())
    else:
        st.error(preview.summary() + " Fix these rows in the file and upload it again.")
        errors = preview.errors_frame()
        shown = errors.rename(columns={"row": "Row", "column": "Column", "value": "Value",
                                       "message": "Problem"})
        if len(shown) <= 50:  # a table wraps long sentences; a grid would cut them off
            st.table(shown.set_index("Row"))
        else:
            st.dataframe(shown, hide_index=True, width="stretch")
        st.download_button("Download the rejected rows (CSV)", errors.to_csv(index=False),
                           f"rejected_{name}.csv", "text/csv", key="import_rejected")

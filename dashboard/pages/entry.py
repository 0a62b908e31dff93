"""Enter data: one form for a day's panel, a grid to back-fill days, corrections with history."""

from datetime import date, datetime, timedelta

import pandas as pd
import streamlit as st

from core.access.permissions import NotAllowed
from core.capture.corrections import (
    REASONS,
    CorrectionRefused,
    correct,
    history,
    mark_entered_in_error,
    recent_values,
)
from core.capture.entry import ICE_ITEMS, enter_day, enter_grid, ice_score, usual_units
from core.store.faults import StorageFault
from core.store.models import EpisodeKind, EventKind
from core.vocabulary.observations import DRUGS, MISSING_REASONS
from core.vocabulary.units import ANALYTES
from dashboard import auth, resources
from dashboard import capture as ui

settings = resources.get_settings()
engine = resources.get_engine()
pid = st.session_state.get("patient_id")
st.title("Enter data")
if not pid:
    st.info("Pick a patient in the sidebar.")
    st.stop()
st.caption(f"Patient **{pid}** (change in the sidebar). Values are checked exactly like an "
           "import; nothing is saved until every value is acceptable.")
me = auth.current()
user, role = me.username, me.role
episodes_allowed = auth.may(me, "document_episode")
usual = usual_units(engine)
ss = st.session_state


def _show(result) -> None:  # noqa: ANN001
    ss["entry_result"] = result
    ss["entry_errors"] = {}
    for e in result.errors:
        ss["entry_errors"].setdefault(e.item, []).append(e.message)


def save_day() -> None:
    when = datetime.combine(ss["entry_date"], ss["entry_time"])
    labs = [(c, ss.get(f"entry_lab_{c}") or "", ss.get(f"entry_unit_{c}", usual[c]))
            for _t, codes in ui.LAB_COLUMNS for c in codes]
    obs = [(k, "" if ss.get(f"entry_obs_{k}") is None else str(ss[f"entry_obs_{k}"]))
           for k in ("temperature", "vasopressors", "vasopressin", "oxygen_device",
                     "oxygen_flow", "capd_score", "consciousness", "seizure", "organomegaly",
                     "hemophagocytosis", "pulmonary_edema", "oliguria", "bleeding",
                     "transfusion", "immunosuppression")]
    if ss.get("entry_ice_done"):
        obs.append(("ice_score", str(ice_score({k: ss.get(f"entry_ice_{k}", 0)
                                                for k, _l, _m in ICE_ITEMS}))))
    episodes = [{"kind": ss.get("entry_ep_kind"), "grade": ss.get("entry_ep_grade"),
                 "onset": ss.get("entry_ep_onset"), "resolved": ss.get("entry_ep_resolved")}
                ] if episodes_allowed else []
    treatments = [{"drug": ss.get("entry_tr_drug"), "dose": ss.get("entry_tr_dose"),
                   "dose_unit": ss.get("entry_tr_unit")}]
    events = [{"kind": ss.get("entry_ev_kind"), "note": ss.get("entry_ev_note")}]
    missing = [(a, ss.get("entry_miss_reason")) for a in ss.get("entry_miss_labs", [])]
    try:
        _show(enter_day(engine, pid, when, labs=labs, observations=obs, episodes=episodes,
                        treatments=treatments, events=events, missing=missing, user=user,
                        confirm_unusual=ss.get("entry_confirm", False), tz=settings.ward_tz,
                        role=role))
    except (NotAllowed, StorageFault) as exc:  # the form keeps what was typed
        ss["entry_errors"], ss["entry_result"] = {"Not saved": [str(exc)]}, None


def fix_value(action: str, table: str, rid: int) -> None:
    """Correct the picked value, or mark it entered in error (a button's callback, so the page
    then draws the list, the history and the message as they are after the change)."""
    other = ss.get("entry_fix_other") or ""
    why = f"{ss['entry_fix_reason']}: {other}" if other else ss["entry_fix_reason"]
    changes = {k: ss[f"entry_fix_{k}"] for k in ("value", "unit") if ss.get(f"entry_fix_{k}")}
    try:
        if action == "correct":
            new_id = correct(engine, table, rid, changes, why, user, tz=settings.ward_tz,
                             role=role)
            ss["entry_fix_flash"] = ("success", "Corrected; the old value is kept in the history.")
            ss["entry_fix_show"] = (table, new_id)  # the corrected row, with its history
        else:
            mark_entered_in_error(engine, table, rid, why, user, role=role)
            ss["entry_fix_flash"] = ("success",
                                     "Hidden from charts and rules; kept in the audit trail.")
            ss.pop("entry_fix_pick", None)
    except (CorrectionRefused, NotAllowed, StorageFault) as exc:  # the fields keep their text
        ss["entry_fix_flash"] = ("error", str(exc))
        return
    for k in ("value", "unit", "other"):
        ss[f"entry_fix_{k}"] = ""


errors: dict[str, list[str]] = ss.get("entry_errors", {})
day_tab, grid_tab, fix_tab = st.tabs(["Day panel", "Back-fill several days", "Correct a value"])

with day_tab:
    result = ss.get("entry_result")
    if result is not None and result.ok:
        st.success(result.summary())
    elif result is not None:
        st.error(result.summary() + (" Tick 'These unusual values are right' if they are."
                                     if result.needs_confirmation else ""))
    with st.expander("Units (preset to this site's usual units)"):
        ucols = st.columns(6)
        for i, code in enumerate(ANALYTES):
            ucols[i % 6].selectbox(ANALYTES[code].name, ui.unit_options(code),
                                   index=ui.unit_options(code).index(usual[code])
                                   if usual[code] in ui.unit_options(code) else 0,
                                   key=f"entry_unit_{code}")
    with st.form("entry_form", enter_to_submit=True, border=False):
        c1, c2 = st.columns(2)
        c1.date_input("Date", value=date.today(), key="entry_date", format="YYYY-MM-DD")
        c2.time_input("Time drawn / observed", value=datetime.now().time().replace(
            second=0, microsecond=0), key="entry_time", step=timedelta(minutes=5))
        st.subheader("Labs", anchor=False)
        for col, (title, codes) in zip(st.columns(len(ui.LAB_COLUMNS)), ui.LAB_COLUMNS,
                                       strict=True):
            with col:
                st.markdown(f"**{title}**")
                for code in codes:
                    unit = ss.get(f"entry_unit_{code}", usual[code])
                    st.text_input(f"{ANALYTES[code].name} ({unit})", key=f"entry_lab_{code}")
                    ui.field_errors(errors, ANALYTES[code].name)
        st.subheader("Bedside observations", anchor=False)
        o1, o2, o3, o4 = st.columns(4)
        with o1:
            st.number_input(ui.obs_label("temperature"), 25.0, 45.0, value=None, step=0.1,
                            key="entry_obs_temperature")
            st.number_input("Vasopressors (number, excl. vasopressin)", 0, 6, value=None,
                            key="entry_obs_vasopressors")
            ui.choice("vasopressin", "entry_obs_vasopressin", ui.YES_NO)
            ui.choice("oxygen_device", "entry_obs_oxygen_device")
            st.number_input(ui.obs_label("oxygen_flow"), 0.0, 80.0, value=None, step=0.5,
                            key="entry_obs_oxygen_flow")
        with o2:
            ui.choice("consciousness", "entry_obs_consciousness")
            ui.choice("seizure", "entry_obs_seizure")
            st.number_input("CAPD score (children under 12)", 0, 32, value=None,
                            key="entry_obs_capd_score")
            ui.choice("organomegaly", "entry_obs_organomegaly")
        with o3:
            ui.choice("hemophagocytosis", "entry_obs_hemophagocytosis", ui.YES_NO)
            st.number_input("Pulmonary oedema (CTCAE grade)", 0, 5, value=None,
                            key="entry_obs_pulmonary_edema")
            st.number_input("Oliguria (CTCAE grade)", 0, 5, value=None,
                            key="entry_obs_oliguria")
            ui.choice("bleeding", "entry_obs_bleeding", ui.YES_NO)
        with o4:
            ui.choice("transfusion", "entry_obs_transfusion")
            ui.choice("immunosuppression", "entry_obs_immunosuppression", ui.YES_NO)
        with st.expander("ICE score (ages 12 and up): tick what the patient managed; "
                         "the score is summed for you"):
            st.checkbox("ICE was assessed", key="entry_ice_done")
            ic = st.columns(4)
            for i, (key, label, most) in enumerate(ICE_ITEMS):
                if most == 1:
                    ic[i % 4].checkbox(label, key=f"entry_ice_{key}")
                else:
                    ic[i % 4].number_input(label, 0, most, 0, key=f"entry_ice_{key}")
        st.subheader("Episodes, treatments, events, missing labs", anchor=False)
        e1, e2, e3, e4 = st.columns(4)
        with e1:
            if episodes_allowed:
                st.selectbox("Episode", [k.value for k in EpisodeKind], index=None,
                             key="entry_ep_kind", placeholder="none")
                st.number_input("Grade", 0, 5, value=None, key="entry_ep_grade")
                st.date_input("Onset", value=None, key="entry_ep_onset")
                st.date_input("Resolved", value=None, key="entry_ep_resolved")
            else:
                st.caption("CRS, ICANS and IEC-HS episodes are documented by a clinician.")
        with e2:
            st.selectbox("Treatment", list(DRUGS), index=None, key="entry_tr_drug",
                         format_func=lambda d: DRUGS[d][0], placeholder="none")
            st.number_input("Dose", 0.0, value=None, key="entry_tr_dose")
            st.text_input("Dose unit", key="entry_tr_unit", placeholder="mg/kg")
        with e3:
            st.selectbox("Course event", [k.value for k in EventKind], index=None,
                         key="entry_ev_kind", placeholder="none",
                         format_func=lambda v: v.replace("_", " "))
            st.text_input("Event note", key="entry_ev_note")
        with e4:
            st.multiselect("Labs not available today", [*ANALYTES, "cbc"],
                           key="entry_miss_labs",
                           format_func=lambda a: ANALYTES[a].name if a in ANALYTES else "CBC")
            st.selectbox("Why", MISSING_REASONS, index=None, key="entry_miss_reason",
                         format_func=lambda r: r.replace("_", " "))
        for item in [k for k in errors if k not in {a.name for a in ANALYTES.values()}]:
            for msg in errors[item]:
                st.error(f"**{item}**: {msg}")
        st.checkbox("These unusual values are right (saves values past the usual limits)",
                    key="entry_confirm")
        st.form_submit_button("Save day", type="primary", on_click=save_day)

with grid_tab:
    st.caption("One row per day; leave a cell empty when there is no value. Units are the "
               "ones chosen under 'Units' on the day panel. Times are recorded as 06:00.")
    ss.setdefault("entry_grid_frame", pd.DataFrame(
        {"date": [date.today() - timedelta(days=d) for d in (2, 1, 0)],
         **{c: ["", "", ""] for c in ANALYTES}}))
    units = {c: ss.get(f"entry_unit_{c}", usual[c]) for c in ANALYTES}
    grid = st.data_editor(
        ss["entry_grid_frame"], num_rows="dynamic", key="entry_grid", hide_index=True,
        column_config={"date": st.column_config.DateColumn("Date", required=True),
                       **{c: st.column_config.TextColumn(f"{a.name} ({units[c]})")
                          for c, a in ANALYTES.items()}})
    if st.button("Save these days", key="entry_grid_save"):
        try:
            res = enter_grid(engine, pid, grid, units, user=user, tz=settings.ward_tz,
                             confirm_unusual=ss.get("entry_confirm", False), role=role)
        except (NotAllowed, StorageFault) as exc:  # the grid keeps what was typed
            res = None
            st.error(str(exc))
        if res is not None and res.ok:
            st.success(res.summary())
        elif res is not None:
            st.error(res.summary())
            st.dataframe(pd.DataFrame([{"cell": e.item, "value": e.value,
                                        "problem": e.message} for e in res.errors]),
                         hide_index=True)


with fix_tab:
    values = recent_values(engine, pid)
    if values.empty:
        st.info("No values stored for this patient yet.")
    else:
        if shown := ss.pop("entry_fix_show", None):
            hit = values.index[(values["table"] == shown[0]) & (values["id"] == shown[1])]
            if len(hit):
                ss["entry_fix_pick"] = hit[0]
        if ss.get("entry_fix_pick") not in values.index:
            ss.pop("entry_fix_pick", None)
        pick = st.selectbox(
            "Value", values.index, key="entry_fix_pick",
            format_func=lambda i: f"{values.at[i, 'when']:%Y-%m-%d %H:%M} · "
                                  f"{values.at[i, 'item']} · {values.at[i, 'shown']}")
        table, rid = values.at[pick, "table"], int(values.at[pick, "id"])
        f1, f2, f3 = st.columns(3)
        f1.text_input("Corrected value", key="entry_fix_value")
        f2.text_input("Unit (labs; empty = unchanged)", key="entry_fix_unit")
        f3.selectbox("Reason", list(REASONS), format_func=REASONS.get, key="entry_fix_reason")
        st.text_input("Explain (required for 'other')", key="entry_fix_other")
        b1, b2 = st.columns(2)
        b1.button("Save correction", key="entry_fix_save", type="primary", on_click=fix_value,
                  args=("correct", table, rid))
        b2.button("Mark entered in error", key="entry_fix_eie", on_click=fix_value,
                  args=("entered_in_error", table, rid))
        if flash := ss.pop("entry_fix_flash", None):
            (st.success if flash[0] == "success" else st.error)(flash[1])
        # below the fields: the keyboard goes from the value picked straight to its correction,
        # not through the history's data grid
        with st.expander("History of this value", expanded=True):
            st.dataframe(pd.DataFrame(history(engine, table, rid))[
                ["id", "status", "entered_by", "entered_at", "correction_reason",
                 *(["original_value", "original_unit"] if table == "labs"
                   else ["value_num", "value_text"])]], hide_index=True)

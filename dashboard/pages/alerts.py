"""Alert inbox: every alert with its evidence, citation, history, acknowledge and snooze."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from core.access.permissions import NotAllowed
from core.monitoring.alerts import OPEN_STATES, SCREENING_NOTE
from core.store.faults import StorageFault
from core.store.models import utcnow
from core.views.inbox import INBOX_STATES
from core.views.ward import short_name
from dashboard import auth, resources

settings = resources.get_settings()
engine = resources.get_engine()
url, tz = settings.database_url, settings.tz
COLOURS = {"severe": "red", "warning": "orange", "info": "blue"}

st.title("Alert inbox")
st.warning(SCREENING_NOTE, icon=":material/info:")
if flash := st.session_state.pop("alerts_flash", None):
    st.success(flash)
me = auth.current()
who = me.username
version = resources.data_version(engine)
every = resources.patients_frame(engine, url, version)
c = st.columns(4)
states = c[0].multiselect("State", INBOX_STATES, default=[s.value for s in OPEN_STATES],
                          key="alerts_state")
patients = c[1].multiselect("Patient", list(every["patient_id"]), key="alerts_patient")
severities = c[2].multiselect("Severity", ["severe", "warning", "info"], key="alerts_severity")
all_rules = resources.alert_inbox(engine, url, version, (), (), (), ())["rule_id"].unique()
rules = c[3].multiselect("Rule", sorted(all_rules), key="alerts_rule", format_func=short_name)
inbox = resources.alert_inbox(engine, url, version, tuple(states), tuple(patients),
                              tuple(rules), tuple(severities))
st.caption(f"{len(inbox)} alerts: escalated first, then most severe, then newest.")
if inbox.empty:
    st.info("No alert matches.")
    st.stop()

table = pd.DataFrame({
    "Id": inbox["id"], "Severity": inbox["severity"].str.upper(),
    "State": inbox["state"], "Patient": inbox["patient_id"], "Bed": inbox["bed"],
    "Rule": inbox["rule_id"].map(short_name), "Grade": inbox["grade"],
    "Last seen": inbox["last_seen_at"].dt.tz_convert(tz).dt.strftime("%d %b %H:%M"),
    "Message": inbox["message"]})
st.dataframe(table, hide_index=True, width="stretch", height=320, key="alerts_table")

labels = {int(r.id): f"#{r.id} · {r.severity} · {r.patient_id} · {short_name(r.rule_id)} · "
          f"{r.state}" for r in inbox.itertuples()}
chosen = st.selectbox("Alert", list(labels), format_func=labels.get, key="alerts_selected")
a = inbox.set_index("id").loc[chosen]
st.subheader(f":{COLOURS.get(a.severity, 'gray')}[{a.severity.upper()}] {a.title}" + (
    "" if pd.isna(a.grade) else f" · grade {int(a.grade)}"))
st.markdown(f"**{a.patient_id}** · bed {a.bed or '–'} · **{a.state}**"
            + ("" if pd.isna(a.since_day) else f" · since day {int(a.since_day // 1)}"))
st.info(f"{a.message}\n\n**{SCREENING_NOTE}**")
for when, text in ((a.escalated_at, "Escalated"), (a.acknowledged_at, f"Acknowledged by "
                   f"{a.acknowledged_by}: {a.ack_note or 'no note'}"),
                   (a.snoozed_until, f"Snoozed ({a.snooze_reason}), until"),
                   (a.resolved_at, "Resolved")):
    if not pd.isna(when):
        st.markdown(f"**{text}** · {when.tz_convert(tz):%d %b %H:%M}")
left, right = st.columns(2)
left.markdown("**Evidence**")
left.dataframe(pd.DataFrame(a.evidence), hide_index=True, width="stretch")
if a.missing:
    left.caption("Missing inputs: " + ", ".join(a.missing))
right.markdown(f"**Rule** `{a.rule_id}` · **Citation:** {a.citation}")
right.markdown("**History**")
right.dataframe(resources.alert_history(engine, int(chosen)), hide_index=True, width="stretch")

if a.state not in {s.value for s in OPEN_STATES}:
    st.stop()
can_ack, can_snooze = auth.may(me, "acknowledge_alert"), auth.may(me, "snooze_alert")
if not (can_ack or can_snooze):
    st.caption("Only a clinician or an admin can acknowledge or snooze alerts.")
    st.stop()


def act(action: str, done: str, **kw) -> None:  # noqa: ANN003
    """Acknowledge or snooze as the signed-in user; core checks the role."""
    try:
        resources.act_on_alert(engine, action, int(chosen), who, me.role, **kw)
    except (ValueError, LookupError, NotAllowed, StorageFault) as err:
        st.error(str(err))
        return
    st.session_state["alerts_flash"] = done
    for key in ("alerts_ack_note", "alerts_snooze_reason"):  # a fresh form for the next one
        st.session_state.pop(key, None)
    st.rerun()


ack, sn = st.columns(2)
if can_ack:
    with ack.form("alerts_ack_form"):
        note = st.text_area("Acknowledge: note (optional)", key="alerts_ack_note")
        if st.form_submit_button("Acknowledge", type="primary"):
            act("acknowledge", f"Alert #{chosen} acknowledged by {who}.", note=note)
if can_snooze:
    with sn.form("alerts_snooze_form"):
        reason = st.text_input("Snooze: reason (required)", key="alerts_snooze_reason")
        hours = st.number_input("Snooze for (hours)", 1, 168, 4, key="alerts_snooze_hours")
        if st.form_submit_button("Snooze"):
            until = utcnow() + timedelta(hours=int(hours))
            act("snooze", f"Alert #{chosen} snoozed by {who} until "
                f"{until.astimezone(tz):%d %b %H:%M}.", reason=reason, until=until)

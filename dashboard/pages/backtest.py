"""Backtesting: replay the rules over the cohort; alert burden; try a threshold first."""

from __future__ import annotations

import streamlit as st

from core.rules.catalog import all_rules
from core.site_config import SiteConfigError, site_overrides
from core.views.rule_tables import thresholds_frame
from dashboard import backtesting, resources

engine, settings = resources.get_engine(), resources.get_settings()
st.title("Backtesting")
st.caption("The rules replayed as of the end of every day of every patient's course, "
           "without touching alerts. One alert = one met episode of a rule for a patient, "
           "as the inbox would have opened it. " + resources.SCREENING_NOTE)

try:
    site = site_overrides(settings)
except SiteConfigError as exc:
    st.error(f"The site configuration cannot be used: {exc}")
    st.stop()
if st.button("Re-run with the latest data", key="backtest_refresh", icon=":material/refresh:"):
    backtesting.clear()
now = backtesting.run_backtest(engine, settings)
if now.patients == 0:
    st.info("No patients in the database yet: nothing to replay.")
    st.stop()

a, b, c, d = st.columns(4)
a.metric("Patients", now.patients)
b.metric("Patient-days replayed", f"{now.patient_days:,}")
c.metric("Alerts", f"{now.alerts:,}")
d.metric("Alerts per 100 patient-days", f"{now.per_100_patient_days:.1f}")

st.subheader("Alert burden per rule")
burden = backtesting.burden_display(now)
st.dataframe(burden, hide_index=True, width="stretch", key="backtest_burden",
             height=35 * (len(burden) + 1) + 3,
             column_config={"Per 100 patient-days": st.column_config.ProgressColumn(
                 format="%.2f", min_value=0.0,
                 max_value=float(burden["Per 100 patient-days"].max() or 1.0))})
st.plotly_chart(backtesting.first_fire_figure(now), key="backtest_first_fire")

st.subheader("Try a threshold before it goes live")
st.caption("Re-runs the replay with one threshold changed, beside the thresholds in force. "
           "Nothing is written to the site configuration.")
numbers = thresholds_frame(site)
left, mid, right = st.columns([2, 3, 2], vertical_alignment="bottom")
rule_id = left.selectbox("Rule", [r.id for r in all_rules() if r.thresholds],
                         key="backtest_rule")
rows = numbers[numbers["rule_id"] == rule_id].set_index("key")
key = mid.selectbox("Threshold", list(rows.index), key="backtest_key",
                    format_func=lambda k: f"{k} — {rows.at[k, 'in_force']}")
value = right.number_input(f"New value ({rows.at[key, 'unit']})",
                           key=f"backtest_value_{rule_id}_{key}",
                           value=float(rows.at[key, "value"]), format="%g")
if st.button("Run what-if", key="backtest_run", type="primary"):
    st.session_state["backtest_whatif"] = (rule_id, key, float(value))

whatif = st.session_state.get("backtest_whatif")
if whatif:
    w_rule, w_key, w_value = whatif
    was = numbers[(numbers["rule_id"] == w_rule) & (numbers["key"] == w_key)].iloc[0]
    after = backtesting.run_backtest(engine, settings, {(w_rule, w_key): w_value})
    st.markdown(f"**What-if: {w_rule} · {w_key} {was['value']:g} → {w_value:g} "
                f"{was['unit']}**")
    mine = {r.rule_id: r for r in after.burden.itertuples()}[w_rule]
    old = {r.rule_id: r for r in now.burden.itertuples()}[w_rule]
    a, b, c = st.columns(3)
    a.metric(f"{w_rule} alerts", mine.alerts, delta=int(mine.alerts - old.alerts),
             delta_color="off")
    b.metric(f"{w_rule} patients flagged", mine.patients_flagged,
             delta=int(mine.patients_flagged - old.patients_flagged), delta_color="off")
    c.metric("All alerts", after.alerts, delta=after.alerts - now.alerts, delta_color="off")
    st.dataframe(backtesting.comparison_display(now, after, w_rule), hide_index=True,
                 width="stretch", key="backtest_compare")

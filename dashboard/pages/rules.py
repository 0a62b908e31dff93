"""Rules in force: the catalogue the engine runs, with this site's thresholds."""

from __future__ import annotations

import streamlit as st

from core.site_config import SiteConfigError, site_overrides
from core.views.rule_tables import catalogue_frame, filter_catalogue, thresholds_frame
from dashboard import resources

settings = resources.get_settings()
st.title("Rules in force")
st.caption(resources.SCREENING_NOTE + " These are the rules and numbers the engine runs "
           "now; *provisional* numbers rest on an [UNCONFIRMED] recollection or a [DESIGN] "
           "choice of ours, not on a checked source.")

try:
    overrides = site_overrides(settings)
except SiteConfigError as exc:
    st.error(f"The site configuration cannot be used, so the rules cannot run: {exc}")
    st.stop()
if settings.site_config is None:
    st.info("No site configuration: every threshold is the default in code.")
else:
    n = sum(len(v) for v in overrides.values())
    st.info(f"Site configuration `{settings.site_config}`: {n} threshold(s) overridden.")

PROVISIONAL = "background-color: #fff1de; color: #9a4b00"
SITE = "background-color: #efe6ff; color: #4b1fa3; font-weight: 600"


def marked(rows):  # noqa: ANN001, ANN201
    """Provisional evidence in orange, site values in violet, at a glance."""
    style = rows.style.map(lambda e: PROVISIONAL if str(e).startswith(("UNCONF", "DESIGN"))
                           else "", subset=["evidence"])
    style = style.format("{:g}", subset=[c for c in ("value", "default") if c in rows])
    site_col, value_col = ("status", "in_force") if "status" in rows else ("overridden", "value")
    return style.apply(lambda col: [SITE if v in (True, "SITE") else "" for v in
                                    rows[site_col]], subset=[site_col, value_col])


catalogue, thresholds = catalogue_frame(overrides), thresholds_frame(overrides)
left, mid, right = st.columns([3, 2, 1], vertical_alignment="bottom")
text = left.text_input("Search", key="rules_text",
                       placeholder="rule id, analyte, threshold, source…")
tags = mid.multiselect("Evidence", ["C", "C2", "UNCONFIRMED", "DESIGN"], key="rules_evidence")
only_prov = right.toggle("Provisional only", key="rules_provisional")
shown = filter_catalogue(catalogue, thresholds, text, tags, only_prov)
st.caption(f"{len(shown)} of {len(catalogue)} rules")
by_rule, all_numbers = st.tabs(["Rules", "All thresholds in force"])

by_rule.dataframe(
    shown[["rule_id", "title", "evidence", "provisional", "severity", "output", "version",
           "overridden"]],
    hide_index=True, width="stretch", key="rules_table", height=35 * (len(shown) + 1) + 3,
    column_config={"rule_id": "Rule", "title": "What", "evidence": "Evidence",
                   "provisional": st.column_config.CheckboxColumn("Provisional ⚠"),
                   "severity": "Severity", "output": "Gives", "version": "Version",
                   "overridden": st.column_config.NumberColumn("Site overrides")})

for rule in shown.itertuples():
    box = by_rule.expander(f"**{rule.rule_id}** · {rule.title} · v{rule.version}")
    badges = f":blue-badge[{rule.evidence}] :gray-badge[{rule.severity}] " \
             f":gray-badge[{rule.output}]"
    if rule.provisional:
        badges += " :orange-badge[provisional]"
    if rule.overridden:
        badges += f" :violet-badge[{rule.overridden} site override(s)]"
    with box:
        st.markdown(badges)
        st.markdown(f"**Source:** {rule.source}  \n**Section:** {rule.section}"
                    + (f"  \n**DOI:** {rule.doi}" if rule.doi else ""))
        if rule.description:
            st.markdown(rule.description)
        needs = [f"**{label}:** {v}" for label, v in (
            ("Labs", rule.labs), ("Observations", rule.observations),
            ("Other", rule.other_inputs)) if v]
        st.markdown("  \n".join(needs) or "No inputs declared.")
        if rule.choices:
            st.markdown("**Choices we made where criteria.md left one open**\n\n"
                        + "\n".join(f"- {c}" for c in rule.choices))
        rows = thresholds[thresholds["rule_id"] == rule.rule_id].copy()
        rows["status"] = rows["overridden"].map({True: "SITE", False: "default"})
        rows["evidence"] = rows["evidence"] + rows["provisional"].map(
            {True: " · provisional", False: ""})
        st.dataframe(
            marked(rows[["key", "in_force", "status", "default", "unit", "op", "evidence",
                         "description"]]),
            hide_index=True, width="stretch", key=f"rules_thresholds_{rule.rule_id}",
            column_config={"key": "Threshold", "in_force": "In force", "status": "From",
                           "default": "Default", "unit": "Unit", "op": "Op",
                           "evidence": st.column_config.TextColumn("Evidence", width=170),
                           "description": "Meaning"})

numbers = thresholds[thresholds["rule_id"].isin(shown["rule_id"])]
all_numbers.dataframe(
    marked(numbers[["rule_id", "key", "value", "default", "unit", "op", "overridden",
                    "evidence", "provisional", "description"]]),
    height=600,
    hide_index=True, width="stretch", key="rules_all_thresholds",
    column_config={"rule_id": "Rule", "key": "Threshold", "value": "In force",
                   "default": "Default", "unit": "Unit", "op": "Op",
                   "overridden": st.column_config.CheckboxColumn("Site value"),
                   "evidence": st.column_config.TextColumn("Evidence", width=110),
                   "provisional": st.column_config.CheckboxColumn("Provisional"),
                   "description": "Meaning"})

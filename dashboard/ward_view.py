"""Display helpers for the ward pages: the overview table, the severity level both pages show,
and the system notices (monitor, notifications, stale data).

Formatting only: every value shown comes from core.views.ward and core.views.changes. The huddle
wall's HTML is dashboard.huddle_wall.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

import pandas as pd
import streamlit as st

from core.monitoring.monitor import MonitorStatus
from core.views.changes import Freshness
from core.vocabulary.units import fmt

# --- overview ------------------------------------------------------------------------------


def _grade(g: object) -> str:
    return "–" if g is None or g is pd.NA or (isinstance(g, float) and math.isnan(g)) \
        else str(int(g))  # type: ignore[call-overload]


def _value(v: object, arrow: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{fmt(round(float(v), 2))} {arrow}".strip()  # type: ignore[arg-type]


def _age(hours: object, none_today: bool) -> str:
    if hours is None or (isinstance(hours, float) and math.isnan(hours)):
        return "⚠ no labs at all"
    text = f"{hours:.0f} h ago" if hours < 48 else f"{hours / 24:.0f} d ago"
    return f"⚠ none today ({text})" if none_today else text


def overview_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The ward summary as the overview shows it (one row per patient, display text)."""
    out = pd.DataFrame({
        "Open": "/patient?patient=" + summary["patient_id"].astype(str),
        "Bed": summary["bed"].replace("", "–"),
        "Product": summary["product"],
        "Day": summary["day"].map(lambda d: f"D{d:+d}"),
        "Concern": summary["concern"],
        "Level": [severity_label(r) for r in summary[
            ["escalated", "unack_severe", "unack_warning", "unack_info"]].to_dict("records")],
        "CRS": summary["crs_grade"].map(_grade),
        "ICANS": summary["icans_grade"].map(_grade),
        "IEC-HS screen": [
            f"met since D{math.floor(d)}" if s == "met" and d == d and d is not None else
            ("met" if s == "met" else "–")
            for s, d in zip(summary["iec_hs"], summary["iec_hs_since_day"], strict=True)],
        "ICAHT": summary["icaht_grade"].map(_grade),
        "Severe": summary["unack_severe"], "Warning": summary["unack_warning"],
        "Info": summary["unack_info"],
        "Newest lab": [_age(h, n) for h, n in
                       zip(summary["lab_age_h"], summary["no_labs_today"], strict=True)],
    })
    for analyte, label in (("ferritin", "Ferritin"), ("fibrinogen", "Fibrinogen"),
                           ("anc", "ANC"), ("platelets", "Platelets")):
        out[label] = [_value(v, a) for v, a in
                      zip(summary[analyte], summary[f"{analyte}_trend"], strict=True)]
        out[f"{label} 14 d"] = summary[f"{analyte}_series"]
    out["_no_labs_today"] = summary["no_labs_today"].astype(bool)
    return out


def overview_column_config(max_concern: float) -> dict:
    cc = st.column_config
    units = {"Ferritin": "ng/mL", "Fibrinogen": "mg/dL", "ANC": "10^9/L", "Platelets": "10^9/L"}
    config: dict = {
        "Open": cc.LinkColumn("Patient", display_text=r"patient=(.*)",
                              help="Open the patient timeline"),
        "Concern": cc.ProgressColumn(
            "Concern", min_value=0, max_value=max(max_concern, 1.0), format="%.0f", width=90,
            help="Sort order only (escalations, unacknowledged severity, syndromes, no labs "
                 "today); not a clinical score"),
        "Level": cc.TextColumn(
            "Level", width=128, help="Worst unacknowledged alert: ▲ severe (or escalated), "
            "◆ warning, ● info, ○ all seen (nothing unacknowledged)"),
        "Severe": cc.NumberColumn("Sev", help="Unacknowledged severe alerts", width=44),
        "Warning": cc.NumberColumn("Warn", help="Unacknowledged warnings", width=48),
        "Info": cc.NumberColumn("Info", help="Unacknowledged informational alerts", width=44),
        "Bed": cc.TextColumn("Bed", width=56), "Day": cc.TextColumn("Day", width=48),
        "Product": cc.TextColumn("Product", width=80),
        "CRS": cc.TextColumn("CRS", width=44, help="ASTCT grade from the open crs_grade alert"),
        "ICANS": cc.TextColumn("ICANS", width=52),
        "IEC-HS screen": cc.TextColumn("IEC-HS", width=96),
        "ICAHT": cc.TextColumn("ICAHT", width=52),
        "Newest lab": cc.TextColumn("Newest lab", width=150),
        "_no_labs_today": None,
    }
    for label, unit in units.items():
        config[label] = cc.TextColumn(label, width=78, help=f"Latest value ({unit}), arrow "
                                      "vs the previous value")
        config[f"{label} 14 d"] = cc.LineChartColumn("14 d", width=64,
                                                     help=f"{label}, last 14 days")
    return config


def highlight_no_labs(table: pd.DataFrame):  # noqa: ANN201
    """A Styler that tints every row of a patient without labs today."""
    def row_style(row: pd.Series) -> list[str]:
        tint = "background-color: #FFE9A8; font-weight: 600" if row["_no_labs_today"] else ""
        return [tint] * len(row)

    return table.style.apply(row_style, axis=1)


# --- severity, shown by the overview and the wall ------------------------------------------

SEVERITY_COLOURS = {"severe": "#D7263D", "warning": "#E8A317", "info": "#5B8DEF", "none": "#3BA55C"}
# Colour is never the only signal: each level also has a shape, a word and (on the wall) a
# border pattern. (symbol, word, CSS border style of the tile's left edge)
SEVERITY_SIGNS = {
    "severe": ("▲", "SEVERE", "double"),
    "warning": ("◆", "WARNING", "dashed"),
    "info": ("●", "INFO", "dotted"),
    "none": ("○", "ALL SEEN", "solid"),  # nothing unacknowledged
}


def severity_level(f: Mapping) -> str:
    """The worst unacknowledged alert of a patient (an escalation counts as severe):
    "severe", "warning", "info" or "none"."""
    if f["escalated"] or f["unack_severe"]:
        return "severe"
    if f["unack_warning"]:
        return "warning"
    return "info" if f["unack_info"] else "none"


def severity_label(f: Mapping) -> str:
    """The level as a shape and a word: "▲ SEVERE" (or "▲ ESCALATED"), "◆ WARNING",
    "● INFO", "○ ALL SEEN"."""
    level = severity_level(f)
    symbol, word, _ = SEVERITY_SIGNS[level]
    return f"{symbol} {'ESCALATED' if f['escalated'] else word}"


# --- notices: problems with the system, not with a patient ---------------------------------

@dataclass(frozen=True)
class Notice:
    """One problem with the system (not with a patient), for a banner.

    headline: a few words a nurse reads from across the room ("MONITOR NOT RUNNING since
    14:05"); detail: what it means and what to do.
    """

    headline: str
    detail: str
    where: str = ""  # the page that has more (the overview shows it; the wall has no links)
    level: str = "warning"  # "error" when someone may not have been told of an alert


ASK_ADMIN = "Tell the CAR-T Watch administrator."


def _when(at: datetime, now: datetime, tz: tzinfo) -> str:
    """14:05 today (ward time), else "Tue 17 Nov 14:05"."""
    local, today = at.astimezone(tz), now.astimezone(tz)
    return f"{local:%H:%M}" if local.date() == today.date() else f"{local:%a %d %b %H:%M}"


def ward_notices(monitor: MonitorStatus, tz: tzinfo, fresh: Freshness | None = None,
                 ) -> list[Notice]:
    """What the huddle and the overview say about the monitor, notifications and (with
    `fresh`) the data's age; empty when all is well. Times in the ward's zone."""
    out = []
    not_raised = "Overdue labs and escalations are not being raised. " + ASK_ADMIN
    if monitor.last_cycle_at is None:
        out.append(Notice("MONITOR NOT RUNNING (never started)", not_raised))
    elif not monitor.is_running:
        out.append(Notice(
            f"MONITOR NOT RUNNING since {_when(monitor.last_cycle_at, monitor.now, tz)}",
            not_raised))
    if monitor.failed_deliveries:
        n = monitor.failed_deliveries
        out.append(Notice(
            f"{n} ALERT NOTIFICATION{'S' if n > 1 else ''} NOT DELIVERED",
            "On-call may not have been paged: check the severe alerts. " + ASK_ADMIN,
            where="Users & settings → Notifications", level="error"))
    if monitor.evaluation_failures:
        n = monitor.evaluation_failures
        out.append(Notice(
            "SOME ALERTS MAY BE OUT OF DATE",
            f"The rules failed {n}× after data was saved (retrying). " + ASK_ADMIN))
    if fresh is not None and fresh.is_data_stale:
        since = ("ever" if fresh.newest_data_at is None
                 else _when(fresh.newest_data_at, fresh.now, tz))
        out.append(Notice("DATA MAY BE OUT OF DATE",
                          f"No new labs or observations since {since}."))
    return out


def show_notices(notices: Sequence[Notice]) -> None:
    """The notices as Streamlit banners (the overview)."""
    for n in notices:
        show = st.error if n.level == "error" else st.warning
        where = f" ({n.where})" if n.where else ""
        show(f"**{n.headline}**. {n.detail}{where}", icon=":material/warning:")

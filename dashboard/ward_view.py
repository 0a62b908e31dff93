"""Display helpers for the ward pages: the overview table and the huddle wall's HTML.

Formatting only: every value shown comes from core.views.ward and core.views.huddle. The
huddle HTML is built from `HuddleTile`s, which carry bed, initials, day and clinical state but
never an identifier.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo

import pandas as pd
import streamlit as st

from core.monitoring.monitor import MonitorStatus
from core.views.huddle import HuddleTile
from core.views.ward import Freshness
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


# --- huddle --------------------------------------------------------------------------------

THEMES = {
    "dark": {"bg": "#0E1117", "tile": "#1B2230", "fg": "#F5F7FA", "muted": "#AEB8C6",
             "line": "#7CC4FF", "line2": "#FFC857", "border": "#33415C"},
    "light": {"bg": "#F4F6F9", "tile": "#FFFFFF", "fg": "#111827", "muted": "#4B5563",
              "line": "#0B5CAD", "line2": "#B45309", "border": "#CBD5E1"},
}
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


@dataclass(frozen=True)
class HuddleParams:
    ward: str | None = None
    theme: str = "dark"
    interval: int = 60
    page_size: int = 8
    stale_hours: float = 24.0


def huddle_params(query: Mapping[str, str]) -> HuddleParams:
    """Read ward, theme, interval (s), page_size and stale_hours from the URL, with bounds."""
    def number(key: str, default: float, lo: float, hi: float) -> float:
        try:
            return min(max(float(query.get(key, default)), lo), hi)
        except (TypeError, ValueError):
            return default

    theme = query.get("theme", "dark")
    return HuddleParams(
        ward=query.get("ward") or None,
        theme=theme if theme in THEMES else "dark",
        interval=int(number("interval", 60, 2, 3600)),
        page_size=int(number("page_size", 8, 1, 24)),
        stale_hours=number("stale_hours", 24.0, 0.01, 24 * 14),
    )


def page_css(theme: str) -> str:
    t = THEMES[theme]
    return f"""<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stSidebarNav"], header[data-testid="stHeader"], [data-testid="stToolbar"],
[data-testid="stDecoration"], [data-testid="stStatusWidget"] {{display: none !important;}}
[data-testid="stApp"], [data-testid="stAppViewContainer"], [data-testid="stMain"] {{
  background: {t['bg']}; color: {t['fg']};}}
[data-testid="stMainBlockContainer"], .block-container {{
  padding: 8px 20px 0 20px !important; max-width: 100% !important;}}
[data-testid="stMainBlockContainer"] [data-testid="stVerticalBlock"] {{gap: 0 !important;}}
.hud {{font-family: "Source Sans Pro", "Segoe UI", Arial, sans-serif; color: {t['fg']};
  display: flex; flex-direction: column; height: calc(100vh - 12px);}}
.hud-head {{display: flex; justify-content: space-between; align-items: baseline;
  font-size: 34px; font-weight: 700; margin-bottom: 6px; line-height: 1.15;}}
.hud-head .sub {{font-size: 28px; color: {t['muted']}; font-weight: 600;}}
.hud-notice {{display: flex; align-items: baseline; column-gap: 20px; flex-wrap: wrap;
  background: #FFC400; color: #111; border-radius: 8px; margin-bottom: 6px;
  padding: 2px 16px 2px 34px; border: 3px solid #111; line-height: 1.15;
  background-image: repeating-linear-gradient(135deg, #111 0 9px, #FFC400 9px 18px);
  background-size: 20px 100%; background-repeat: no-repeat;}}
.hud-notice .what {{font-size: 34px; font-weight: 900; white-space: nowrap;}}
.hud-notice .why {{font-size: 23px; font-weight: 700;}}
.hud-grid {{display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: 12px;
  flex: 1 1 auto; min-height: 0;}}
.tile {{background: {t['tile']}; border: 2px solid {t['border']}; border-left-width: 14px;
  border-radius: 12px; padding: 8px 14px; overflow: hidden; min-height: 0;
  container: tile / size;}}
/* a short tile (more per page, or a banner above) drops whole sections from the bottom
   instead of cutting a line in half */
@container tile (max-height: 455px) {{.sec-changes {{display: none;}}}}
@container tile (max-height: 365px) {{.sec-alerts {{display: none;}}}}
@container tile (max-height: 285px) {{.labs {{display: none;}}}}
.tile .top {{display: flex; justify-content: space-between; align-items: baseline;
  column-gap: 8px; flex-wrap: wrap;}}
.tile .top > span {{white-space: nowrap;}}
.tile .sev {{font-size: 20px; font-weight: 800; border-radius: 6px; padding: 0 7px;
  white-space: nowrap; align-self: center; border: 2px solid transparent;}}
.tile .sev-severe {{background: {SEVERITY_COLOURS['severe']}; color: #fff;}}
.tile .sev-warning {{background: {SEVERITY_COLOURS['warning']}; color: #111;}}
.tile .sev-info {{background: {SEVERITY_COLOURS['info']}; color: #111;}}
.tile .sev-none {{color: {t['muted']}; border-color: {t['border']}; font-weight: 700;}}
.tile .bed {{font-size: 44px; font-weight: 800; line-height: 1.0;}}
.tile .who {{font-size: 34px; font-weight: 700; color: {t['muted']};}}
.tile .day {{font-size: 34px; font-weight: 800;}}
.tile .status {{font-size: 25px; font-weight: 700; margin: 2px 0;}}
.tile .chip {{display: inline-block; padding: 0 6px; border-radius: 7px; margin: 2px 4px 2px 0;
  color: {t['muted']}; font-weight: 600;}}
.tile .chip.on {{background: #D7263D; color: #fff; font-weight: 800;}}
.tile .chip.warn {{background: #E8A317; color: #111; font-weight: 800;}}
.tile .labs {{display: grid; grid-template-columns: auto 1fr; column-gap: 8px;
  align-items: center; font-size: 24px; font-weight: 600; line-height: 1.2;}}
.tile .counts {{font-size: 24px; font-weight: 700; margin: 2px 0;}}
.tile .lines {{font-size: 23px; line-height: 1.18; margin: 0; padding-left: 0;
  list-style: none;}}
.tile .lines li {{margin: 0; padding: 0;}}
.tile .lines li {{white-space: nowrap; overflow: hidden; text-overflow: ellipsis;}}
.tile .label {{font-size: 18px; color: {t['muted']}; text-transform: uppercase;
  letter-spacing: .05em; margin-top: 2px; font-weight: 700;}}
.tile .nolabs {{background: #E8A317; color: #111; font-size: 22px; font-weight: 800;
  border-radius: 6px; padding: 0 8px; display: inline-block;}}
.hud-foot {{font-size: 20px; color: {t['muted']}; margin-top: 4px;}}
</style>"""


def sparkline(values: Sequence[float], colour: str, width: int = 190, height: int = 34) -> str:
    """An inline SVG polyline of the values (own scale); empty when fewer than two."""
    if len(values) < 2:
        return f'<svg width="{width}" height="{height}"></svg>'
    lo, hi = min(values), max(values)
    span = hi - lo or 1.0
    step = (width - 8) / (len(values) - 1)
    pts = " ".join(f"{4 + i * step:.1f},{height - 4 - (v - lo) / span * (height - 8):.1f}"
                   for i, v in enumerate(values))
    last = pts.rsplit(" ", 1)[-1].split(",")
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{last[0]}" cy="{last[1]}" r="5" fill="{colour}"/></svg>')


def _tile_colour(f: Mapping) -> str:
    return SEVERITY_COLOURS[severity_level(f)]


def _chip(label: str, grade: object, *, met: bool = False) -> str:
    g = _grade(grade)
    if met:
        return f'<span class="chip on">{label}</span>'
    if g in ("–", "0"):
        return f'<span class="chip">{label} –</span>'
    cls = "on" if int(g) >= 2 else "warn"
    return f'<span class="chip {cls}">{label} {g}</span>'


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def tile_html(tile: HuddleTile, theme: str) -> str:
    f, t = tile.fields, THEMES[theme]
    iec = "IEC-HS screen met" if f["iec_hs"] == "met" else "IEC-HS –"
    status = (_chip("CRS", f["crs_grade"]) + _chip("ICANS", f["icans_grade"])
              + (_chip(iec, None, met=True) if f["iec_hs"] == "met"
                 else f'<span class="chip">{iec}</span>')
              + _chip("ICAHT", f["icaht_grade"]))
    if f["hlh"]:
        status += _chip(_esc(f["hlh"]), None, met=True)
    labs = ""
    for key, label, colour in (("ferritin", "Ferritin", t["line"]),
                               ("fibrinogen", "Fibrinogen", t["line2"])):
        labs += (f"<div>{label} {_value(f[key], f[f'{key}_trend'])}</div>"
                 f"<div>{sparkline(f[f'{key}_series'], colour)}</div>")
    severe = (f'<span style="color:{SEVERITY_COLOURS["severe"]}">{f["unack_severe"]} severe</span>'
              if f["unack_severe"] else "0 severe")  # red only when there is one
    counts = (severe + f' · {f["unack_warning"]} warn · {f["unack_info"]} info'
              + (f' · <b>{f["escalated"]} ESCALATED</b>' if f["escalated"] else ""))
    nolabs = ('<div class="nolabs">NO LABS TODAY</div>' if f["no_labs_today"] else "")
    level = severity_level(f)
    alerts, more_alerts = _lines(tile.alerts, "no open alerts")
    changes, more_changes = _lines(tile.changes, "no change")
    return (
        f'<div class="tile" data-level="{level}" style="border-left-color:{_tile_colour(f)};'
        f'border-left-style:{SEVERITY_SIGNS[level][2]}">'
        f'<div class="top"><span class="bed">{_esc(f["bed"])}</span>'
        f'<span class="sev sev-{level}">{_esc(severity_label(f))}</span>'
        f'<span class="who">{_esc(f["initials"])}</span>'
        f'<span class="day">D{f["day"]:+d}</span></div>'
        f'<div class="status">{status}</div>'
        # the counts before the detail: a short tile (16 a page, a banner) still shows them
        f'<div class="counts">{counts}</div>{nolabs}'
        f'<div class="labs">{labs}</div>'
        f'<div class="sec-alerts"><div class="label">Top alerts{more_alerts}</div>'
        f'<ul class="lines">{alerts}</ul></div>'
        f'<div class="sec-changes"><div class="label">Since yesterday{more_changes}</div>'
        f'<ul class="lines">{changes}</ul></div></div>')


def _lines(lines: Sequence[str], empty: str) -> tuple[str, str]:
    """The list items, and a "(+N more)" note for the label taken from a trailing line."""
    more = ""
    if lines and lines[-1].startswith("+"):
        more, lines = f" ({lines[-1]})", lines[:-1]
    items = "".join(f"<li>{_esc(x)}</li>" for x in lines) or f"<li>{_esc(empty)}</li>"
    return items, _esc(more)


def notices_html(notices: Sequence[Notice]) -> str:
    """The wall's system banners: black on amber with a striped edge (a system problem, not
    a patient's severity), the headline in words."""
    return "".join(f'<div class="hud-notice" role="alert"><span class="what">⚠ '
                   f'{_esc(n.headline)}</span><span class="why">{_esc(n.detail)}</span></div>'
                   for n in notices)


def wall_html(tiles: Sequence[HuddleTile], theme: str, header: str, sub: str,
              notices: Sequence[Notice], footer: str, page_size: int = 8) -> str:
    rows = max(1, math.ceil(page_size / 4))
    return (f'<div class="hud"><div class="hud-head"><span>{_esc(header)}</span>'
            f'<span class="sub">{_esc(sub)}</span></div>{notices_html(notices)}'
            f'<div class="hud-grid" style="grid-template-rows: repeat({rows}, minmax(0, 1fr))">'
            f'{"".join(tile_html(t, theme) for t in tiles)}</div>'
            f'<div class="hud-foot">{_esc(footer)}</div></div>')


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

"""The huddle wall's HTML: masked tiles, the system banners and the page's CSS.

Built from `HuddleTile`s (core.views.huddle), which carry bed, initials, day and clinical state
but never an identifier. The severity signs and the notices are dashboard.ward_view's.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.views.huddle import HuddleTile
from dashboard.ward_view import (
    SEVERITY_COLOURS,
    SEVERITY_SIGNS,
    Notice,
    _grade,
    _value,
    severity_label,
    severity_level,
)

THEMES = {
    "dark": {"bg": "#0E1117", "tile": "#1B2230", "fg": "#F5F7FA", "muted": "#AEB8C6",
             "line": "#7CC4FF", "line2": "#FFC857", "border": "#33415C"},
    "light": {"bg": "#F4F6F9", "tile": "#FFFFFF", "fg": "#111827", "muted": "#4B5563",
              "line": "#0B5CAD", "line2": "#B45309", "border": "#CBD5E1"},
}


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

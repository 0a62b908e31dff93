"""The patient timeline figure: lab panels on one "days after infusion" axis.

Used by the patient page and by `python -m core export patient` (PNG/PDF snapshot), so it lives
in core (plotly is fine here, streamlit is not). What is shown (panels, threshold lines,
windows, treatments) is core.views.timeline_content; this module draws it.

What is drawn, and where the numbers come from:
- each result's own reference range (ref_low/ref_high of that row) as a light band;
- the thresholds that drive the rules as labelled horizontal lines, read from the rules'
  `Threshold` rows (`THRESHOLD_LINES` names rule id and key, never the number), marked
  "provisional" when the evidence tag is UNCONFIRMED or DESIGN;
- CRS / ICANS / IEC-HS windows as bands labelled with their grade: documented ones filled,
  suggested ones (core.views.suggested_episodes.suggest_episodes) lighter with a dotted edge;
- treatments as markers in a bottom strip, drug and dose on hover;
- censored results (">" / "<") as triangles labelled with the qualifier, unverified results
  as hollow markers, corrected results as diamonds; a value entered in another unit shows the
  original on hover.
Colours are Okabe-Ito (colour-blind safe) and never carry meaning alone: every line has its
own dash, every band and line a text label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.views.timeline_content import (
    DEFAULT_ANALYTES,
    DEFAULT_RANGE,
    ThresholdLine,
    episode_rows,
    format_value,
    grade_text,
    panels_for,
    threshold_lines,
    treatment_rows,
)
from core.vocabulary.course import Course, at_day
from core.vocabulary.units import ANALYTES

# Okabe-Ito colours with a line dash per analyte: no two traces of the figure share both,
# and within a panel they differ in colour and dash (colour is never the only cue).
STYLE: dict[str, tuple[str, str]] = {
    "ferritin": ("#0072B2", "solid"),
    "fibrinogen": ("#D55E00", "solid"),
    "ast": ("#009E73", "solid"),
    "alt": ("#CC79A7", "dash"),
    "bilirubin": ("#E69F00", "solid"),
    "ldh": ("#000000", "dot"),
    "anc": ("#0072B2", "dash"),
    "wbc": ("#56B4E9", "dot"),
    "alc": ("#000000", "dashdot"),
    "platelets": ("#009E73", "dash"),
    "hemoglobin": ("#CC79A7", "solid"),
    "crp": ("#000000", "solid"),
    "il6": ("#E69F00", "dash"),
}
EPISODE_FILL = {"CRS": "#E69F00", "ICANS": "#56B4E9", "IEC-HS": "#CC79A7"}
THRESHOLD_COLOUR = "#444444"
_DRUG_SYMBOLS = ("diamond", "square", "star", "triangle-up", "cross", "x", "pentagon",
                 "hexagon", "circle")
_DRUG_COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                 "#000000")


def _hover(s: pd.DataFrame, code: str, tz: ZoneInfo, corrected: Mapping[int, str]) -> list[str]:
    a = ANALYTES[code]
    when = pd.to_datetime(s["collected_at"], utc=True).dt.tz_convert(tz).dt.strftime(
        f"%a %d %b %Y %H:%M ({tz.key})")
    unit = a.unit.replace(" ", "").lower()
    out = []
    for value, qualifier, original, original_unit, lo, hi, day, at, lab_id, verified in zip(
            s["value"], s["qualifier"], s["original_value"], s["original_unit"], s["ref_low"],
            s["ref_high"], s["day"], when, s["lab_id"], s["verified"], strict=True):
        q = qualifier if isinstance(qualifier, str) else ""
        text = f"<b>{a.name} {q}{format_value(value)} {a.unit}</b>"
        ou = original_unit if isinstance(original_unit, str) else a.unit
        if ou.replace(" ", "").lower() != unit:
            text += f"<br>entered as {original} {ou}"
        if q:
            text += f"<br>censored: the lab reported {q}{original}"
        if not (pd.isna(lo) and pd.isna(hi)):
            lo_s = "" if pd.isna(lo) else format_value(lo)
            hi_s = "" if pd.isna(hi) else format_value(hi)
            text += f"<br>reference {lo_s}–{hi_s}"
        text += f"<br>day {math.floor(day):+d} · {at}"
        if int(lab_id) in corrected:
            text += f"<br>CORRECTED: {corrected[int(lab_id)]}"
        if not verified:
            text += "<br>not yet verified"
        out.append(text)
    return out


def _symbols(s: pd.DataFrame, corrected: Mapping[int, str]) -> list[str]:
    out = []
    for lab_id, verified in zip(s["lab_id"], s["verified"], strict=True):
        base = "diamond" if int(lab_id) in corrected else "circle"
        out.append(base if bool(verified) else f"{base}-open")
    return out


def _band(s: pd.DataFrame, code: str, colour: str) -> dict | None:
    """The results' own reference ranges as one closed band following the results."""
    high = pd.to_numeric(s["ref_high"], errors="coerce").to_numpy(dtype=float)
    keep = ~np.isnan(high)  # plain arrays: a frame copy per analyte cost ~10 ms
    if not keep.any():
        return None
    low = pd.to_numeric(s["ref_low"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    days = s["day"].to_numpy(dtype=float)[keep]
    xs = days.tolist() + days[::-1].tolist()
    ys = high[keep].tolist() + low[keep][::-1].tolist()
    return {"type": "scatter", "x": xs, "y": ys, "fill": "toself",
            "fillcolor": _rgba(colour, 0.10), "line": {"width": 0}, "mode": "lines",
            "hoverinfo": "skip", "name": f"{ANALYTES[code].name} reference range",
            "meta": {"analyte": code, "role": "reference-range"}}


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _axis_id(n: int | None) -> str:
    assert n is not None  # a panel's second y axis exists when it has a secondary analyte
    return "" if n == 1 else str(n)


def timeline_figure(
    course: Course,
    day_range: tuple[float, float] = DEFAULT_RANGE,
    analytes: Iterable[str] | None = None,
    suggested: Sequence[Mapping] | None = None,
    today_day: float | None = None,
    corrected: Mapping[int, str] | None = None,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    title: str | None = None,
) -> go.Figure:
    """The timeline: one row per panel on a shared day axis, then the treatment strip.

    Parameters
    ----------
    day_range: (first, last) day after infusion shown; the axis can still be zoomed.
    analytes: the analytes switched on (default: all but WBC and ALC).
    suggested: suggested episode windows (core.views.suggested_episodes.suggest_episodes).
    today_day: the ward day now, drawn as a line.
    corrected: lab_id -> correction reason, for results that replaced an earlier row.
    overrides: site threshold overrides, so the lines show what runs.

    The figure is assembled as plain dicts and validated once: plotly's add_* helpers
    re-validate the whole layout on every call, which cost ~1 s for this many shapes.
    """
    chosen = set(DEFAULT_ANALYTES if analytes is None else analytes)
    corrected = corrected or {}
    tz = ZoneInfo(course.tz)
    panels = panels_for(course, chosen)
    treatments = treatment_rows(course)
    drugs = list(dict.fromkeys(treatments.sort_values("day")["name"])) if len(treatments) else []

    # --- geometry: panel rows of equal height, then a strip sized to its drug rows
    panel_px, strip_px, gap_px = 180, 40 + 22 * max(1, len(drugs)), 48
    top_px, bottom_px = 130 if title is None else 230, 60
    height = top_px + bottom_px + panel_px * len(panels) + strip_px + gap_px * len(panels)
    plot_px = height - top_px - bottom_px
    # Margins are set here, not grown by plotly ("autoexpand"): a legend or a drug name that
    # pushed a margin made plotly draw the whole figure a second time (half the browser's
    # drawing time). The left margin fits the longest drug name of the treatment strip.
    left_px = max(70, 14 + math.ceil(6.2 * max((len(d) for d in drugs), default=0)))
    layout: dict = {
        "height": height, "margin": {"l": left_px, "r": 260, "t": top_px, "b": bottom_px,
                                     "autoexpand": False},
        "hovermode": "closest", "plot_bgcolor": "white", "paper_bgcolor": "white",
        "font": {"size": 13, "family": "Arial, sans-serif"}, "shapes": [], "annotations": [],
    }
    data: list[dict] = []
    cursor = 1.0
    y_next = 1
    rows: list[tuple[int, int, int | None, tuple[float, float]]] = []  # (x, y, y2, domain)
    for r, _p in enumerate([*panels, None], start=1):
        h = (panel_px if _p is not None else strip_px) / plot_px
        domain = (max(0.0, cursor - h), cursor)
        cursor = domain[0] - gap_px / plot_px
        y1 = y_next
        y2 = y_next + 1 if _p is not None and _p.secondary else None
        y_next += 2 if y2 else 1
        rows.append((r, y1, y2, domain))
        layout[f"xaxis{_axis_id(r)}"] = {
            "anchor": f"y{_axis_id(y1)}", "domain": [0, 1], "showticklabels": True,
            "gridcolor": "#e5e5e5", "zeroline": False, "range": list(day_range),
            "dtick": _dtick(day_range[1] - day_range[0]),
            **({"matches": "x"} if r > 1 else {}),
        }
        layout[f"yaxis{_axis_id(y1)}"] = {"anchor": f"x{_axis_id(r)}", "domain": list(domain),
                                          "gridcolor": "#eeeeee", "zeroline": False}
        if y2:
            layout[f"yaxis{y2}"] = {"anchor": f"x{_axis_id(r)}", "overlaying": f"y{_axis_id(y1)}",
                                    "side": "right", "showgrid": False, "zeroline": False}
        name = _p.title if _p is not None else "Treatments (hover for drug and dose)"
        layout["annotations"].append({
            "text": f"<b>{name}</b>", "x": 0, "xref": "paper", "xanchor": "left",
            "y": domain[1], "yref": "paper", "yanchor": "bottom", "showarrow": False,
            "font": {"size": 14}})
    n = len(rows)
    layout[f"xaxis{_axis_id(n)}"]["title"] = {"text": "Day after infusion (day 0 = infusion)"}

    labs = course.labs
    by_analyte = ({code: g.sort_values("day") for code, g in labs.groupby("analyte")}
                  if len(labs) else {})
    lines = threshold_lines(course, chosen, overrides)
    for (r, y1, y2, domain), p in zip(rows, panels, strict=False):
        legend = "legend" if r == 1 else f"legend{r}"
        layout[legend] = {"x": 1.06 if p.secondary else 1.005, "xanchor": "left",
                          "y": domain[1], "yanchor": "top",
                          "font": {"size": 11}, "bgcolor": "rgba(255,255,255,0.85)",
                          "tracegroupgap": 2}
        for code in p.analytes:
            s = by_analyte.get(code)
            if code not in chosen or s is None or s.empty:
                continue
            colour, dash = STYLE[code]
            axes = {"xaxis": f"x{_axis_id(r)}",
                    "yaxis": f"y{_axis_id(y2 if code == p.secondary else y1)}",
                    "legend": legend, "legendgroup": code}
            band = _band(s, code, colour)
            if band is not None:
                data.append({**band, **axes})
            data.append({
                "type": "scatter", "x": list(s["day"]), "y": list(s["value"]),
                "mode": "lines+markers", "name": ANALYTES[code].name,
                "line": {"color": colour, "dash": dash, "width": 2},
                "marker": {"color": colour, "size": 7, "symbol": _symbols(s, corrected),
                           "line": {"color": colour, "width": 1.5}},
                "hovertext": _hover(s, code, tz, corrected), "hoverinfo": "text",
                "meta": {"analyte": code, "role": "values"}, **axes})
            cens = s[s["qualifier"].isin([">", "<"])]
            if len(cens):
                data.append({
                    "type": "scatter", "x": list(cens["day"]), "y": list(cens["value"]),
                    "mode": "markers+text", "name": f"{ANALYTES[code].name} censored (>, <)",
                    "marker": {"symbol": ["triangle-up" if q == ">" else "triangle-down"
                                          for q in cens["qualifier"]],
                               "size": 16, "color": colour,
                               "line": {"color": "#000", "width": 1}},
                    "text": [f"{q}{format_value(v)}"
                             for q, v in zip(cens["qualifier"], cens["value"], strict=True)],
                    "textposition": "middle right", "textfont": {"size": 12, "color": "#000"},
                    "hoverinfo": "skip", "meta": {"analyte": code, "role": "censored"},
                    **axes})
        panel_lines = [ln for ln in lines if ln.analyte in p.analytes]
        for j, line in enumerate(sorted(panel_lines, key=lambda ln: -ln.y)):
            yref = f"y{_axis_id(y2 if line.analyte == p.secondary else y1)}"
            layout["shapes"].append({
                "type": "line", "xref": f"x{_axis_id(r)} domain", "x0": 0, "x1": 1,
                "yref": yref, "y0": line.y, "y1": line.y, "name": f"threshold:{line.rule_id}."
                f"{line.key}:{line.analyte}",
                "line": {"color": THRESHOLD_COLOUR, "width": 1.3,
                         "dash": "dot" if line.provisional else "dash"},
                "label": {"text": line.label,
                          "textposition": "end" if j % 2 == 0 else "start",
                          "yanchor": "bottom",
                          "font": {"size": 11, "color": THRESHOLD_COLOUR}}})
        # every axis range is set here and holds the panel's threshold lines (an invisible
        # point per line, as before, was a trace each for the browser to draw)
        if p.log:
            layout[f"yaxis{_axis_id(y1)}"]["type"] = "log"
            span = _log_span(by_analyte, p.analytes, chosen, panel_lines)
            if span:  # one tick per power of ten, as autorange drew them
                layout[f"yaxis{_axis_id(y1)}"].update({"range": list(span), "dtick": 1})
        else:
            for axis, codes in ((y1, [a for a in p.analytes if a != p.secondary]),
                                (y2, [p.secondary] if p.secondary else [])):
                top = _top(by_analyte, codes, chosen, panel_lines)
                if axis and top:
                    layout[f"yaxis{_axis_id(axis)}"]["range"] = [0, top * 1.12]

    r, y1, _, domain = rows[-1]
    for i, drug in enumerate(drugs):
        t = treatments[treatments["name"] == drug]
        hover = [
            f"<b>{drug}</b>"
            + (f" {format_value(d)} {u if isinstance(u, str) else ''}" if not pd.isna(d) else "")
            + (f" {rt}" if isinstance(rt, str) else "")
            + f"<br>day {math.floor(day):+d} · {at:%a %d %b %H:%M} ({tz.key})"
            for d, u, rt, day, at in zip(t["dose"], t["dose_unit"], t["route"], t["day"],
                                         _given_at(t, course), strict=True)
        ]
        data.append({
            "type": "scatter", "x": list(t["day"]), "y": [drug] * len(t), "mode": "markers",
            "name": drug, "xaxis": f"x{_axis_id(r)}", "yaxis": f"y{_axis_id(y1)}",
            "marker": {"symbol": _DRUG_SYMBOLS[i % len(_DRUG_SYMBOLS)], "size": 12,
                       "color": _DRUG_COLOURS[i % len(_DRUG_COLOURS)],
                       "line": {"color": "#000", "width": 0.8}},
            "hovertext": hover, "hoverinfo": "text", "showlegend": False,
            "meta": {"drug": str(t["drug"].iloc[0]), "role": "treatment"}})
    strip_axis = layout[f"yaxis{_axis_id(y1)}"]
    strip_axis.update({"type": "category", "categoryorder": "array",
                       "categoryarray": drugs[::-1]})
    if not drugs:
        strip_axis.update({"type": "linear", "showticklabels": False, "range": [0, 1]})
        # plotly leaves out a subplot no trace uses, with its day axis and title, and then
        # placed the note below on the first panel: an invisible point keeps the strip
        data.append({"type": "scatter", "x": [day_range[0]], "y": [0.5], "mode": "markers",
                     "marker": {"opacity": 0}, "hoverinfo": "skip", "showlegend": False,
                     "xaxis": f"x{_axis_id(r)}", "yaxis": f"y{_axis_id(y1)}",
                     "meta": {"role": "empty-strip"}})
        layout["annotations"].append({
            "text": "no treatments recorded", "showarrow": False, "x": 0.5, "y": 0.5,
            "xref": f"x{_axis_id(r)} domain", "yref": f"y{_axis_id(y1)} domain",
            "font": {"color": "#666"}})

    _episode_bands(layout, episode_rows(course, suggested))
    _day_lines(layout, today_day)
    if title:
        layout["title"] = {"text": title, "x": 0, "xanchor": "left", "y": 0.995,
                           "yanchor": "top", "font": {"size": 15}}
    return go.Figure({"data": data, "layout": layout})


def _given_at(t: pd.DataFrame, course: Course) -> list[pd.Timestamp]:
    tz = ZoneInfo(course.tz)
    return [pd.Timestamp(at_day(float(d), course.patient.infusion_date, tz)).tz_convert(tz)
            for d in t["day"]]


def _top(by_analyte: Mapping[str, pd.DataFrame], codes: Sequence[str], chosen: set[str],
         lines: Sequence[ThresholdLine]) -> float | None:
    """Upper end of a linear axis: highest value or threshold (reference band may clip)."""
    tops = [float(by_analyte[c]["value"].max()) for c in codes
            if c in chosen and c in by_analyte and len(by_analyte[c])]
    tops += [ln.y for ln in lines if ln.analyte in codes]
    tops = [t for t in tops if math.isfinite(t) and t > 0]
    return max(tops) if tops else None


def _log_span(by_analyte: Mapping[str, pd.DataFrame], codes: Sequence[str], chosen: set[str],
              lines: Sequence[ThresholdLine]) -> tuple[float, float] | None:
    """A log axis range (log10 units) holding the values, their reference ranges and the
    threshold lines, with a margin below and room above for a line's label."""
    seen: list[float] = [ln.y for ln in lines if ln.analyte in codes]
    for c in codes:
        s = by_analyte.get(c)
        if c in chosen and s is not None and len(s):
            for col in ("value", "ref_low", "ref_high"):
                seen += pd.to_numeric(s[col], errors="coerce").dropna().tolist()
    logs = [math.log10(v) for v in seen if math.isfinite(v) and v > 0]
    if not logs:
        return None
    lo, hi = min(logs), max(logs)
    # more room on top: a threshold line there keeps its label above it inside the panel
    return lo - max(0.05 * (hi - lo), 0.1), hi + max(0.1 * (hi - lo), 0.3)


def _dtick(span: float) -> float:
    return 1 if span <= 21 else 2 if span <= 45 else 5 if span <= 100 else 10


def _episode_bands(layout: dict, rows: list[dict]) -> None:
    """One band per episode over the whole plot; label at the top with kind and grade."""
    for i, ep in enumerate(rows):
        documented = ep["origin"] == "documented"
        colour = EPISODE_FILL.get(ep["kind"], "#999999")
        label = f"{ep['kind']} {grade_text(ep['grade'])}".strip()
        label += "" if documented else " (suggested by rules)"
        label += ", ongoing" if ep["ongoing"] else ""
        layout["shapes"].append({
            "type": "rect", "xref": "x", "yref": "paper", "x0": ep["onset_day"],
            "x1": ep["end_day"], "y0": 0, "y1": 1, "layer": "below",
            "fillcolor": _rgba(colour, 0.22 if documented else 0.07),
            "line": {"color": colour, "width": 0 if documented else 2,
                     "dash": "solid" if documented else "dot"},
            "name": f"episode:{ep['kind']}:{ep['origin']}"})
        layout["annotations"].append({
            "x": ep["onset_day"], "xref": "x", "y": 1.0, "yref": "paper",
            "yshift": 44 + 22 * (i % 3), "yanchor": "bottom", "xanchor": "left",
            "showarrow": False,
            "text": f"<b>{label}</b>" if documented else label,
            "font": {"size": 12, "color": "#000"},
            "bgcolor": _rgba(colour, 0.45 if documented else 0.12), "bordercolor": colour,
            "borderwidth": 1, "name": f"episode-label:{ep['kind']}:{ep['origin']}"})


def _day_lines(layout: dict, today_day: float | None) -> None:
    marks = [(0.0, "infusion", "dash", 1.5)]
    if today_day is not None:
        marks.append((today_day, f"today, day {math.floor(today_day):+d}", "solid", 2.5))
    for x, text, dash, width in marks:
        layout["shapes"].append({
            "type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": "#000", "width": width, "dash": dash},
            "name": text.split(",")[0]})
        layout["annotations"].append({
            "x": x, "xref": "x", "y": 1.0, "yref": "paper", "yanchor": "bottom", "yshift": 20,
            "xanchor": "center", "showarrow": False, "text": f"<b>{text}</b>",
            "font": {"size": 12}, "bgcolor": "white", "name": text.split(",")[0]})

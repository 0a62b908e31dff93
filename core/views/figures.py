"""The patient timeline figure: lab panels on one "days after infusion" axis.

Used by the patient page and by `python -m core export patient` (PNG/PDF snapshot), so it lives
in core (plotly is fine here, streamlit is not).

What is drawn, and where the numbers come from:
- each result's own reference range (ref_low/ref_high of that row) as a light band;
- the thresholds that drive the rules as labelled horizontal lines, read from the rules'
  `Threshold` rows (`THRESHOLD_LINES` names rule id and key, never the number), marked
  "provisional" when the evidence tag is UNCONFIRMED or DESIGN;
- CRS / ICANS / IEC-HS windows as bands labelled with their grade: documented ones filled,
  suggested ones (core.rules.episodes.suggest_episodes) lighter with a dotted edge;
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
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from core.vocabulary.course import Course
from core.vocabulary.observations import DRUGS, DrugClass
from core.vocabulary.units import ANALYTES

DEFAULT_RANGE = (-7.0, 30.0)
MAX_DAY = 100.0


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    analytes: tuple[str, ...]
    log: bool = False
    secondary: str | None = None  # analyte drawn on a right-hand axis (other unit)
    optional: bool = False  # shown only when the patient has results for it


PANELS: tuple[Panel, ...] = (
    Panel("ferritin", "Ferritin (ng/mL, log scale)", ("ferritin",), log=True),
    Panel("fibrinogen", "Fibrinogen (mg/dL)", ("fibrinogen",)),
    Panel("transaminases", "AST and ALT (U/L)", ("ast", "alt")),
    Panel("liver", "Bilirubin (mg/dL, left) and LDH (U/L, right)", ("bilirubin", "ldh"),
          secondary="ldh"),
    Panel("neutrophils", "ANC, WBC, ALC (×10⁹/L)", ("anc", "wbc", "alc")),
    Panel("platelets", "Platelets (×10⁹/L)", ("platelets",)),
    Panel("hemoglobin", "Haemoglobin (g/dL)", ("hemoglobin",)),
    Panel("inflammation", "CRP (mg/L, left) and IL-6 (pg/mL, right)", ("crp", "il6"),
          secondary="il6", optional=True),
)
ON_DEMAND = frozenset({"wbc", "alc"})  # off unless asked for
TIMELINE_ANALYTES: tuple[str, ...] = tuple(a for p in PANELS for a in p.analytes)
DEFAULT_ANALYTES: frozenset[str] = frozenset(TIMELINE_ANALYTES) - ON_DEMAND

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


@dataclass(frozen=True)
class LineSpec:
    """A rule threshold drawn on an analyte's panel: which rule row, and how to read it."""

    analyte: str
    rule_id: str
    key: str
    label: str
    per_uln: bool = False  # the value is a multiple of the result's upper reference limit


THRESHOLD_LINES: tuple[LineSpec, ...] = (
    LineSpec("ferritin", "cartox_hlh", "entry_ferritin", "Neelapu HLH/MAS entry"),
    LineSpec("fibrinogen", "iec_hs", "fibrinogen_low", "IEC-HS low fibrinogen"),
    LineSpec("ast", "iec_hs", "transaminase_x_uln", "IEC-HS AST", per_uln=True),
    LineSpec("alt", "iec_hs", "transaminase_x_uln", "IEC-HS ALT", per_uln=True),
    LineSpec("anc", "icaht_early", "cut", "ICAHT neutropenic day"),
    LineSpec("anc", "icaht_early", "deep_cut", "ICAHT profound"),
    LineSpec("platelets", "ticaht_early", "cut", "T-ICAHT"),
    LineSpec("platelets", "ticaht_early", "deep_cut", "T-ICAHT severe"),
    LineSpec("hemoglobin", "supportive_thresholds", "hemoglobin_min", "IEC-HS supportive"),
)
# Drug classes shown in the treatment strip (antipyretics are charted daily and would hide
# the rest); order = top to bottom.
TREATMENT_CLASSES = (DrugClass.ANTI_CYTOKINE, DrugClass.STEROID, DrugClass.HLH_DIRECTED,
                     DrugClass.TRANSFUSION, DrugClass.OTHER)
_COUNT_UNIT = "10^9/L"


@dataclass(frozen=True)
class ThresholdLine:
    analyte: str
    y: float
    label: str
    rule_id: str
    key: str
    provisional: bool


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _uln(course: Course, analyte: str) -> float | None:
    """The upper reference limit of the patient's latest result (the analyte's default)."""
    s = course.labs[course.labs["analyte"] == analyte]
    highs = pd.to_numeric(s.sort_values("day")["ref_high"], errors="coerce").dropna()
    if len(highs):
        return float(highs.iloc[-1])
    return ANALYTES[analyte].ref_high


def threshold_lines(course: Course, analytes: Iterable[str] | None = None,
                    overrides: Mapping[str, Mapping[str, float]] | None = None,
                    ) -> list[ThresholdLine]:
    """The rule thresholds to draw, with values from the catalogue's Threshold rows.

    `overrides` are the site's threshold overrides (rule id -> key -> value), so the lines
    show what actually runs.
    """
    from core.rules.catalog import spec_by_id

    wanted = set(TIMELINE_ANALYTES if analytes is None else analytes)
    out = []
    for ls in THRESHOLD_LINES:
        if ls.analyte not in wanted:
            continue
        rule = spec_by_id(ls.rule_id).rule
        t = next(t for t in rule.thresholds if t.key == ls.key)
        value = float((overrides or {}).get(ls.rule_id, {}).get(ls.key, t.value))
        unit = ANALYTES[ls.analyte].unit
        if ls.per_uln:
            uln = _uln(course, ls.analyte)
            if uln is None:
                continue
            y = value * uln
            text = f"{ls.label} {value:g} × ULN ({_fmt(y)} {unit})"
        else:
            y = value
            text = f"{ls.label} {t.op} {_fmt(value)}".replace("  ", " ")
            text += f" {unit}" if unit != _COUNT_UNIT else f" ×10⁹/L ({_fmt(value * 1000)}/µL)"
        if t.is_provisional:
            text += " · provisional"
        out.append(ThresholdLine(ls.analyte, y, text, ls.rule_id, ls.key, t.is_provisional))
    return out


def _hover(s: pd.DataFrame, code: str, tz: ZoneInfo, corrected: Mapping[int, str]) -> list[str]:
    a = ANALYTES[code]
    times = pd.to_datetime(s["collected_at"], utc=True).dt.tz_convert(tz)
    out = []
    for row, when in zip(s.itertuples(), times, strict=True):
        q = row.qualifier if isinstance(row.qualifier, str) else ""
        text = f"<b>{a.name} {q}{_fmt(row.value)} {a.unit}</b>"
        ou = row.original_unit if isinstance(row.original_unit, str) else a.unit
        if ou.replace(" ", "").lower() != a.unit.replace(" ", "").lower():
            text += f"<br>entered as {row.original_value} {ou}"
        if q:
            text += f"<br>censored: the lab reported {q}{row.original_value}"
        lo, hi = row.ref_low, row.ref_high
        if not (pd.isna(lo) and pd.isna(hi)):
            lo_s = "" if pd.isna(lo) else _fmt(lo)
            hi_s = "" if pd.isna(hi) else _fmt(hi)
            text += f"<br>reference {lo_s}–{hi_s}"
        text += f"<br>day {math.floor(row.day):+d} · {when:%a %d %b %Y %H:%M} ({tz.key})"
        if int(row.lab_id) in corrected:
            text += f"<br>CORRECTED: {corrected[int(row.lab_id)]}"
        if not row.verified:
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


def _episode_end(onset: float, resolved: float | None, last_day: float) -> tuple[float, bool]:
    if resolved is not None and not pd.isna(resolved):
        return float(resolved), False
    return max(onset + 1.0, last_day), True


def episode_rows(course: Course, suggested: Sequence[Mapping] | None = None) -> list[dict]:
    """Documented episodes, then suggested ones: kind, grade, onset, end, origin, ongoing."""
    rows = []
    labs_last = float(course.labs["day"].max()) if len(course.labs) else 0.0
    last = labs_last if math.isfinite(labs_last) else 0.0
    for ep in course.episodes.itertuples():
        end, ongoing = _episode_end(ep.onset_day, ep.resolved_day, last)
        rows.append({"kind": ep.kind, "grade": ep.grade, "onset_day": float(ep.onset_day),
                     "end_day": end, "ongoing": ongoing,
                     "origin": ep.origin or "documented"})
    for s in suggested or ():
        end, ongoing = _episode_end(s["onset_day"], s.get("resolved_day"), last)
        rows.append({"kind": s["kind"], "grade": s.get("grade"),
                     "onset_day": float(s["onset_day"]), "end_day": end, "ongoing": ongoing,
                     "origin": "suggested"})
    return rows


def _grade_text(grade: float | None) -> str:
    if grade is None or (isinstance(grade, float) and math.isnan(grade)):
        return ""  # a screen without a grade (IEC-HS suggested by its rule)
    return f"grade {int(grade)}"


def treatment_rows(course: Course) -> pd.DataFrame:
    """Treatments shown in the strip, with a display name (antipyretics left out)."""
    tr = course.treatments
    if tr.empty:
        return tr.assign(name=pd.Series(dtype="object"))
    keep = [d for d, (_, classes) in DRUGS.items() if classes & set(TREATMENT_CLASSES)]
    tr = tr[tr["drug"].isin(keep)].copy()
    tr["name"] = [DRUGS[d][0] for d in tr["drug"]]
    return tr


def _panels_for(course: Course, analytes: set[str]) -> list[Panel]:
    present = set(course.labs["analyte"].unique()) if len(course.labs) else set()
    out = []
    for p in PANELS:
        shown = [a for a in p.analytes if a in analytes]
        if not shown or (p.optional and not present & set(shown)):
            continue
        out.append(p)
    return out


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
    suggested: suggested episode windows (core.rules.episodes.suggest_episodes).
    today_day: the ward day now, drawn as a line.
    corrected: lab_id -> correction reason, for results that replaced an earlier row.
    overrides: site threshold overrides, so the lines show what runs.

    The figure is assembled as plain dicts and validated once: plotly's add_* helpers
    re-validate the whole layout on every call, which cost ~1 s for this many shapes.
    """
    chosen = set(DEFAULT_ANALYTES if analytes is None else analytes)
    corrected = corrected or {}
    tz = ZoneInfo(course.tz)
    panels = _panels_for(course, chosen)
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
                    "text": [f"{q}{_fmt(v)}" for q, v in zip(cens["qualifier"], cens["value"],
                                                             strict=True)],
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
            + (f" {_fmt(d)} {u if isinstance(u, str) else ''}" if not pd.isna(d) else "")
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


_DRUG_SYMBOLS = ("diamond", "square", "star", "triangle-up", "cross", "x", "pentagon",
                 "hexagon", "circle")
_DRUG_COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7", "#E69F00", "#56B4E9",
                 "#000000")


def _given_at(t: pd.DataFrame, course: Course) -> list[pd.Timestamp]:
    from core.vocabulary.course import at_day

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
        label = f"{ep['kind']} {_grade_text(ep['grade'])}".strip()
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

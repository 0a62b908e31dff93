"""The patient timeline figure: lab panels on one "days after infusion" axis, episode bands."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.course import Course
from core.units import ANALYTES

# (panel title, analytes, log scale). Colours: Okabe-Ito, safe for colour-blind readers.
PANELS: list[tuple[str, tuple[str, ...], bool]] = [
    ("Ferritin (ng/mL)", ("ferritin",), True),
    ("Fibrinogen (mg/dL)", ("fibrinogen",), False),
    ("AST / ALT (U/L)", ("ast", "alt"), False),
    ("ANC / WBC (10^9/L)", ("anc", "wbc"), False),
    ("Platelets (10^9/L)", ("platelets",), False),
]
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"]
EPISODE_FILL = {"CRS": "#E69F00", "ICANS": "#56B4E9", "IEC-HS": "#CC79A7"}


def timeline_figure(course: Course, day_range: tuple[float, float] = (-7, 30)) -> go.Figure:
    fig = make_subplots(rows=len(PANELS), cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        subplot_titles=[p[0] for p in PANELS])
    labs = course.labs
    for row, (_title, analytes, log) in enumerate(PANELS, start=1):
        for i, code in enumerate(analytes):
            s = labs[labs["analyte"] == code].sort_values("day")
            if s.empty:
                continue
            hover = [
                f"{ANALYTES[code].name} {q or ''}{v:g} {ANALYTES[code].unit}"
                + (f" (entered {ov} {ou})" if ou != ANALYTES[code].unit else "")
                + f"<br>day {d:.1f} · {t:%Y-%m-%d %H:%M} UTC"
                for v, q, ov, ou, d, t in zip(s["value"], s["qualifier"].fillna(""),
                                              s["original_value"], s["original_unit"],
                                              s["day"], pd.to_datetime(s["collected_at"]),
                                              strict=True)
            ]
            fig.add_trace(go.Scatter(
                x=s["day"], y=s["value"], mode="lines+markers", name=ANALYTES[code].name,
                line={"color": COLOURS[i]}, hovertext=hover, hoverinfo="text",
                legendgroup=code), row=row, col=1)
        if log:
            fig.update_yaxes(type="log", row=row, col=1)
    for ep in course.episodes.itertuples():
        end = ep.resolved_day if not pd.isna(ep.resolved_day) else max(
            ep.onset_day + 1, course.labs["day"].max() if len(course.labs) else ep.onset_day + 1)
        documented = ep.origin == "documented"
        label = f"{ep.kind} gr {ep.grade}" + ("" if documented else " (suggested)")
        fig.add_vrect(x0=ep.onset_day, x1=end, fillcolor=EPISODE_FILL.get(ep.kind, "#999"),
                      opacity=0.18 if documented else 0.08, line_width=0 if documented else 1,
                      line_dash="dot", annotation_text=label, annotation_position="top left",
                      row="all", col=1)
    fig.add_vline(x=0, line_dash="dash", line_color="#555", row="all", col=1)
    lo, hi = day_range
    if len(labs) and not math.isnan(labs["day"].max()):
        hi = max(hi, min(100, float(labs["day"].max()) + 1)) if hi < 30 else hi
    fig.update_xaxes(range=[lo, hi], row=len(PANELS), col=1, title_text="Day after infusion")
    fig.update_layout(height=220 * len(PANELS), margin={"l": 60, "r": 20, "t": 40, "b": 40},
                      legend={"orientation": "h", "y": 1.02, "x": 0}, hovermode="closest")
    return fig

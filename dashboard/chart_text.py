"""The patient chart as text (WCAG 1.1.1): the sentence that names the chart, and the
"Values as a table" expander right below it, with what the chart draws by day after
infusion. Kept beside dashboard/timeline.py so the timeline stays the chart's own screen."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import timedelta

import pandas as pd
import streamlit as st

from core.views.timeline_content import (
    TIMELINE_ANALYTES,
    episode_rows,
    threshold_lines,
    treatment_rows,
)
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES, fmt

TABLE_LABEL = "Values as a table"
TABLE_STATE = "patient_values_table"  # session_state key: True while the expander is open
UNVERIFIED_MARK, CORRECTED_MARK = "○", "◆"  # the chart's hollow marker and diamond
TABLE_KEY = (f"{UNVERIFIED_MARK} not yet verified · {CORRECTED_MARK} corrected · \\> or \\< "
             "censored (above or below the lab's range) · values in the units shown")


def _in_range(frame: pd.DataFrame, day_range: tuple[float, float]) -> pd.DataFrame:
    return frame[frame["day"].between(*day_range)] if len(frame) else frame


def _window_text(ep: dict) -> str:
    grade = ep["grade"]
    text = ep["kind"] + ("" if grade is None or pd.isna(grade) else f" grade {int(grade)}")
    return text + ("" if ep["origin"] == "documented" else " (suggested)")


def values_table(course: Course, day_range: tuple[float, float], analytes: tuple[str, ...],
                 suggested: list[dict] | None = None,
                 corrected: dict[int, str] | None = None) -> pd.DataFrame:
    """What the chart draws, one row per day after infusion, then its date: each shown
    analyte's results in the chart's units (">"/"<" censored, TABLE_KEY's marks for not yet
    verified and corrected), the CRS / ICANS / IEC-HS windows covering the day and the
    treatments given."""
    corrected = corrected or {}
    labs = _in_range(course.labs, day_range)
    labs = labs[labs["analyte"].isin(analytes)] if len(labs) else labs
    given = _in_range(treatment_rows(course), day_range)
    lab_day = [math.floor(d) for d in labs["day"]]
    give_day = [math.floor(d) for d in given["day"]]
    days = sorted({*lab_day, *give_day})
    if not days:
        return pd.DataFrame()
    codes = [a for a in TIMELINE_ANALYTES if a in set(labs["analyte"])]
    # every result's cell text in one pass, then one group-and-pivot (day x analyte), the
    # results of a day in time order
    cells = [f"{q if isinstance(q, str) else ''}{fmt(v)}"
             + (f"\u00a0{CORRECTED_MARK}" if int(lab_id) in corrected else "")
             + ("" if verified else f"\u00a0{UNVERIFIED_MARK}")
             for q, v, lab_id, verified in zip(labs["qualifier"], labs["value"],
                                               labs["lab_id"], labs["verified"], strict=True)]
    by_day = (labs.assign(_day=lab_day, _cell=cells).sort_values("day", kind="stable")
              .groupby(["_day", "analyte"], sort=False)["_cell"].agg(" · ".join)
              .unstack("analyte") if len(labs) else pd.DataFrame())
    table = by_day.reindex(index=days, columns=codes).fillna("")
    table.columns = [f"{ANALYTES[c].name} ({ANALYTES[c].unit})" for c in codes]
    windows = episode_rows(course, suggested)
    doses: dict[int, Counter[str]] = {}
    for d, t in zip(give_day, given.itertuples(), strict=True):
        doses.setdefault(d, Counter())[
            f"{t.name}" + ("" if pd.isna(t.dose) else f" {fmt(t.dose)}")
            + (f" {t.dose_unit}" if isinstance(t.dose_unit, str) else "")] += 1
    table.insert(0, "Date", [f"{course.patient.infusion_date + timedelta(days=d):%a %d %b}"
                             .replace(" ", "\u00a0") for d in days])
    table["Windows"] = ["; ".join(_window_text(ep) for ep in windows
                                  if ep["onset_day"] < d + 1 and ep["end_day"] > d)
                        for d in days]
    table["Treatments"] = ["; ".join(f"{dose} ×{n}" if n > 1 else dose
                                     for dose, n in doses.get(d, Counter()).items())
                           for d in days]
    table.index = pd.Index([f"{d:+d}" for d in days], name="Day")
    return table


def chart_summary(course: Course, day_range: tuple[float, float], analytes: tuple[str, ...],
                  day_now: float) -> str:
    """One sentence for the chart's accessible name and caption: what it shows, and where the
    same values are as text."""
    names = [ANALYTES[a].name for a in analytes]
    labs = _in_range(course.labs, day_range)
    n = int(labs["analyte"].isin(analytes).sum()) if len(labs) else 0
    doses = len(_in_range(treatment_rows(course), day_range))
    lo, hi = day_range
    return (f"Timeline chart of {', '.join(names) or 'no analyte'} by day after infusion, "
            f"days {lo:+d} to {hi:+d} (today is day {math.floor(day_now):+d}): {n} results, "
            f"{len(course.episodes)} documented CRS, ICANS or IEC-HS windows, {doses} "
            "treatment doses and the rules' threshold lines. The same values are listed "
            f"under '{TABLE_LABEL}' right below the chart.")


def render_values_table(course: Course, day_range: tuple[float, float],
                        analytes: tuple[str, ...], suggested: list[dict] | None,
                        corrected: dict[int, str], overrides: dict | None) -> None:
    """The chart as text, in an expander right below it (its summary is a keyboard stop).

    Built when it is opened (the expander reruns the page then), not on every view: a
    folded table of a few hundred cells, each drawn as Markdown, cost the browser about a
    third of a second per patient. Opened once, it stays open from patient to patient."""
    box = st.expander(TABLE_LABEL, icon=":material/table:", key=TABLE_STATE, on_change="rerun")
    with box:
        if not box.open:
            st.caption("The values load when this opens.")
            return
        table = values_table(course, day_range, analytes, suggested, corrected)
        lines = threshold_lines(course, analytes, overrides)
        if lines:
            st.markdown("**Threshold lines on the chart** (dashed; dotted = provisional): "
                        + "; ".join(ln.label for ln in lines) + ".")
        if table.empty:
            st.info("No results or treatments in the days shown.")
            return
        lo, hi = day_range
        st.caption(TABLE_KEY)
        # st.table renders each cell as Markdown (">100,000" would become a quote); the
        # columns narrow and wrap to the page, so nothing hides behind a sideways scroll
        shown = table.map(_md_escape).rename(columns=_md_escape)
        context = shown[(shown["Windows"] != "") | (shown["Treatments"] != "")]
        with st.container(key="patient_values_box"):
            st.markdown(TABLE_CSS, unsafe_allow_html=True)  # a constant: no user text
            st.table(shown.drop(columns=["Windows", "Treatments"]),
                     alt=f"Results by day after infusion, days {lo:+d} to {hi:+d}: one row "
                     "per day, one column per analyte.")
            if len(context):
                st.markdown("**CRS, ICANS and IEC-HS windows and treatments by day**")
                st.table(context[["Date", "Windows", "Treatments"]],
                         alt="Episode windows and treatments by day after infusion.")


TABLE_CSS = """<style>
.st-key-patient_values_box [data-testid="stTable"] table {width: 100%;}
.st-key-patient_values_box [data-testid="stTable"] :is(th, td) * {overflow-wrap: anywhere;}
.st-key-patient_values_box [data-testid="stTable"] tr > :nth-child(-n+2) * {
  overflow-wrap: normal; white-space: nowrap;}
</style>"""


def _md_escape(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>#|~])", r"\\\1", text)



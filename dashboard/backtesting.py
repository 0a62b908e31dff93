"""Loaders and figures of the backtesting page (the page itself stays thin)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.config import Settings
from core.monitoring.backtest import BacktestResult, backtest


def _site_stamp(settings: Settings) -> tuple[str, float]:
    """The site configuration file and its modification time (a cache key: edits re-run)."""
    if settings.site_config is None:
        return ("", 0.0)
    try:
        return (str(settings.site_config), os.path.getmtime(settings.site_config))
    except OSError:
        return (str(settings.site_config), -1.0)


@st.cache_data(ttl=600, show_spinner=False, max_entries=20)
def _run(_engine, url: str, tz: str, site: tuple[str, float],  # noqa: ANN001
         whatif: tuple[tuple[str, str, float], ...]) -> BacktestResult:
    settings = Settings.from_env(database_url=url, ward_tz=tz)
    overrides: dict[str, dict[str, float]] = {}
    for rule_id, key, value in whatif:
        overrides.setdefault(rule_id, {})[key] = value
    # The bar lives inside the cached function, so a cache hit replays it (and its removal)
    # without reaching outside; it is only updated ~40 times however large the cohort.
    slot = st.empty()
    bar = slot.progress(0.0, text="Replaying the cohort…")
    shown = [-1]

    def progress(done: int, total: int) -> None:
        step = math.floor(40 * done / total) if total else 40
        if step != shown[0]:
            shown[0] = step
            bar.progress(done / total if total else 1.0,
                         text=f"Replaying the cohort… {done} of {total} patients")

    result = backtest(_engine, settings, overrides or None, progress)
    slot.empty()
    return result


def run_backtest(engine, settings: Settings,  # noqa: ANN001
                 whatif: Mapping[tuple[str, str], float] | None = None) -> BacktestResult:
    """The cohort replay with the site's thresholds, plus any what-if values (cached)."""
    items = tuple(sorted((r, k, float(v)) for (r, k), v in (whatif or {}).items()))
    return _run(engine, settings.database_url, settings.ward_tz, _site_stamp(settings), items)


def clear() -> None:
    _run.clear()


def burden_display(result: BacktestResult) -> pd.DataFrame:
    """The burden table with readable headers, busiest rules first."""
    b = result.burden.sort_values(["per_100_patient_days", "rule_id"],
                                  ascending=[False, True])
    return pd.DataFrame({
        "Rule": b["rule_id"], "What": b["title"], "Alerts": b["alerts"],
        "Per 100 patient-days": b["per_100_patient_days"].round(2),
        "Patients flagged": b["patients_flagged"],
        "% of patients": b["patients_flagged_pct"].round(0),
        "Median first day": b["median_first_day"],
        "Days met": b["met_days"],
    })


def first_fire_figure(result: BacktestResult) -> go.Figure:
    """First-fire day per rule: one dot per patient over a box, busiest rules on top."""
    ff = result.first_fire
    order = (result.burden[result.burden["patients_flagged"] > 0]
             .sort_values("patients_flagged")["rule_id"].tolist())
    fig = go.Figure()
    for rule_id in order:
        days = ff.loc[ff["rule_id"] == rule_id, "first_day"]
        fig.add_trace(go.Box(
            x=days, name=rule_id, orientation="h", boxpoints="all", jitter=0.4, pointpos=0,
            marker={"size": 6, "color": "#1f77b4", "opacity": 0.7},
            line={"color": "#7f7f7f", "width": 1}, fillcolor="rgba(0,0,0,0)",
            hovertemplate=f"{rule_id}: first fired day %{{x}}<extra></extra>",
        ))
    fig.update_layout(
        showlegend=False, height=max(260, 24 * len(order) + 90),
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        title={"text": "Day after infusion each rule first fired (one dot per patient)",
               "font": {"size": 14}},
        xaxis={"title": "day after infusion", "zeroline": True, "dtick": 7},
    )
    return fig


def comparison_display(before: BacktestResult, after: BacktestResult,
                       rule_id: str) -> pd.DataFrame:
    """Before/after rows for the changed rule and every rule whose burden moved."""
    from core.monitoring.backtest import compare_burden

    c = compare_burden(before, after)
    keep = (c["rule_id"] == rule_id) | (c["alerts_change"] != 0) | (
        c["patients_flagged_before"] != c["patients_flagged_after"])
    c = c[keep].copy()
    c["_first"] = c["rule_id"] != rule_id
    c = c.sort_values(["_first", "rule_id"])
    return pd.DataFrame({
        "Rule": c["rule_id"],
        "Alerts before": c["alerts_before"], "Alerts after": c["alerts_after"],
        "Change": c["alerts_change"].map(lambda n: f"{n:+d}"),
        "Per 100 pt-days before": c["per_100_patient_days_before"].round(2),
        "Per 100 pt-days after": c["per_100_patient_days_after"].round(2),
        "Patients before": c["patients_flagged_before"],
        "Patients after": c["patients_flagged_after"],
    })

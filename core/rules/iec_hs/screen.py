"""The IEC-HS screen judged over a ward (criteria.md §1.2 [DESIGN screening logic]).

Fire when the ferritin key feature AND the timing key feature are met AND at least one lab
manifestation (transaminases, fibrinogen, new cytopenia) is met; not met when a key feature
is not met or every lab manifestation is not met; else not evaluable. Screened from
window_start_day to window_end_day, later only while ferritin is above the x ULN limit.
Every value is the latest known at the course-day's end; baselines as criteria.md §0.2.
"""

from __future__ import annotations

import numpy as np

from core.rules.base import Inputs, Thresholds, status_where
from core.rules.ctcae import ctcae_grades
from core.rules.frames import Columns, Ward
from core.rules.iec_hs.rule import CYTOPENIA_LINEAGES, KEY_FEATURES, LAB_FEATURES
from core.rules.iec_hs.timing import MET, NOT_EVALUABLE, NOT_MET, timing_feature
from core.rules.series import Series, first_max, take
from core.rules.tables import NONE

# the rules whose rows the screen reads, and those whose thresholds alone it reads
READS = ("crs_grade", "ferritin_kinetics")
THRESHOLDS_OF = tuple(f"ctcae_{a}" for a in CYTOPENIA_LINEAGES)
BEFORE_WINDOW, AFTER_WINDOW = 1, 2  # `outside`: why a course-day is not screened (0: it is)


def any_met(*statuses: np.ndarray) -> np.ndarray:
    """Per row: met where any of the statuses is met, not met where all are not met."""
    return status_where(np.any([s == MET for s in statuses], axis=0),
                        np.all([s == NOT_MET for s in statuses], axis=0))


def ferritin_key_feature(ward: Ward, t: Thresholds) -> Columns:
    """Latest ferritin > ferritin_x_uln x ULN, or > ferritin_x_baseline x the baseline (when
    the latest is not the baseline itself). Not met needs the ULN and a positive baseline."""
    f, b = ward.latest("ferritin"), ward.baseline("ferritin")
    value, uln = ward.labs["value"], ward.lab_limits[1]
    # NaN where there is no latest value, ULN or baseline: a comparison with it is false
    v, u, base = take(value, f, np.nan), take(uln, f, np.nan), take(value, b, np.nan)
    above_uln = v > t["ferritin_x_uln"] * u
    base_ok = base > 0
    above_base = base_ok & (b != f) & (v > t["ferritin_x_baseline"] * base)
    met = above_uln | above_base
    known = ~np.isnan(u) & base_ok
    return {"ferritin": status_where(met, known), "ferritin_latest": f, "ferritin_base": b,
            "ferritin_above_uln": above_uln, "ferritin_above_base": above_base}


def transaminase_feature(ward: Ward, t: Thresholds) -> Columns:
    """AST or ALT > transaminase_x_uln x ULN (baseline normal or unknown), or
    > transaminase_x_baseline x the baseline (baseline above its ULN). Met when either is;
    not met when both are known and neither is."""
    value, uln = ward.labs["value"], ward.lab_limits[1]
    out: Columns = {}
    statuses = []
    for a in ("ast", "alt"):
        v, b = ward.latest(a), ward.baseline(a)
        u, base = take(uln, v, np.nan), take(value, b, np.nan)
        known = ~np.isnan(u)
        abnormal = (b != v) & (base > take(uln, b, np.nan))  # no baseline or its ULN: normal
        limit = np.where(abnormal, t["transaminase_x_baseline"] * base,
                         t["transaminase_x_uln"] * u)
        met = known & (take(value, v, np.nan) > limit)
        statuses.append(status_where(met, known))
        out |= {f"{a}_latest": np.where(known, v, NONE), f"{a}_base": np.where(abnormal, b, NONE),
                f"{a}_met": met}
    out["transaminase"] = any_met(*statuses)
    return out


def fibrinogen_feature(ward: Ward, t: Thresholds) -> Columns:
    """Latest fibrinogen < fibrinogen_low (mg/dL) or < the lab's LLN."""
    f = ward.latest("fibrinogen")
    v, lln = take(ward.labs["value"], f, np.nan), take(ward.lab_limits[0], f, np.nan)
    below = v < t["fibrinogen_low"]  # NaN without a latest value: never below
    below_lln = ~below & (v < lln)
    return {"fibrinogen": status_where(below | below_lln, f != NONE), "fibrinogen_latest": f,
            "fibrinogen_below_lln": below_lln}


def new_cytopenia(ward: Ward, analyte: str, t: Thresholds, ctcae_t: Thresholds) -> Columns:
    """One lineage [DESIGN]: the latest count's CTCAE grade (the ctcae_<analyte> rule's, no
    baseline for counts) is >= cytopenia_min_grade and at least cytopenia_grade_drop grades
    worse than the best grade of the earlier values within cytopenia_lookback_days before it,
    counting values from cytopenia_reference_day on. No such earlier value: not met (the
    post-lymphodepletion nadir is expected). Latest count not gradable: not evaluable."""
    s = Series.lab(ward, analyte)
    low, high, _ = ward.lab_limits
    g = ctcae_grades(analyte, s.value, high[s.pos], low[s.pos], t=ctcae_t)
    cut = np.maximum(t["cytopenia_reference_day"], s.day - t["cytopenia_lookback_days"])
    lo = s.first_from(cut, s.key)  # the first value in the window
    lowest = take(g, first_max(-g, lo, np.arange(len(g)) - 1), np.nan)  # its best grade
    fell = ((g >= t["cytopenia_min_grade"])
            & (g - lowest >= t["cytopenia_grade_drop"]))  # never without an earlier value
    judged = status_where(fell, ~np.isnan(g))
    i = s.latest(ward.days["end"])  # the latest count
    return {f"{analyte}_cytopenia": take(judged, i, NOT_EVALUABLE),
            f"{analyte}_latest": s.frame_pos(i), f"{analyte}_grade": take(g, i, np.nan),
            f"{analyte}_best": take(lowest, i, np.nan)}


def cytopenia_feature(ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """New or worsening cytopenia in any lineage (ANC, platelets, haemoglobin)."""
    out: Columns = {}
    for a in CYTOPENIA_LINEAGES:
        out |= new_cytopenia(ward, a, t, inputs.thresholds[f"ctcae_{a}"])
    out["cytopenia"] = any_met(*(out[f"{a}_cytopenia"] for a in CYTOPENIA_LINEAGES))
    return out


def screen_window(ward: Ward, t: Thresholds, ferritin_above_uln: np.ndarray) -> np.ndarray:
    """Days window_start_day to window_end_day (§10.3 [DESIGN]); after it only while ferritin
    is above the x ULN limit. Per grid row: 0 (screened), BEFORE_WINDOW or AFTER_WINDOW."""
    day = ward.days["day"]
    return np.where(day < t["window_start_day"], BEFORE_WINDOW, np.where(
        (day > t["window_end_day"]) & ~ferritin_above_uln, AFTER_WINDOW, 0)).astype(np.int8)


def judge(ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """The IEC-HS screen of every course-day of the ward, as of each day's end."""
    cols = ferritin_key_feature(ward, t)
    cols |= timing_feature(ward, np.asarray(inputs.frames["crs_grade"]["grade"], dtype=float))
    cols |= transaminase_feature(ward, t)
    cols |= fibrinogen_feature(ward, t)
    cols |= cytopenia_feature(ward, t, inputs)
    features = [cols[k] for k in KEY_FEATURES] + [any_met(*(cols[k] for k in LAB_FEATURES))]
    met = np.all([f == MET for f in features], axis=0)
    not_met = np.any([f == NOT_MET for f in features], axis=0)
    cols["outside"] = screen_window(ward, t, cols["ferritin_above_uln"])
    cols["status"] = np.where(cols["outside"] > 0, NOT_MET, status_where(met, not_met))
    kinetics = inputs.frames["ferritin_kinetics"]
    cols["rapid"] = kinetics["rapid"]  # 1 rapid, 0 not, -1 unknown
    cols["rapid_ref"] = kinetics["rapid_ref"]
    cols["hemophagocytosis"] = ward.latest_observation("hemophagocytosis")
    return cols

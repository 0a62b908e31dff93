"""Ferritin kinetics (criteria.md §11).

No published numeric definition of a "rapidly rising" ferritin exists (§11): the flags here are
the dashboard's configurable engineering defaults [DESIGN], never a criterion in anyone's name.

Kinetics belong to the latest ferritin known at a course-day's end (criteria.md §11 "Computed
features"), compared with:
- the baseline (§0.2), the previous value, and the values nearest 24 h and 48 h before
  (within the match tolerance): fold changes, log slope and doubling time (extra fields);
- "rising": fold change over 48 h >= rising_fold (extra field only);
- "rapidly rising" (met): above rapid_min_x_uln x ULN, and either the lowest value drawn
  within the window (plus the tolerance) is at least rapid_fold lower, or, with none drawn
  there, the rise from the last value before it has an average doubling time at or below the
  window's (rapid_over_interval). Not met needs a value within the window, or a latest value
  not above the ULN multiple; otherwise not evaluable.
Every ferritin value is judged once as "the latest", by searches over the ward's ferritin
rows sorted by (course, day); each course-day then takes the judgement of its latest value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
    status_where,
)
from core.rules.frames import Columns, Ward
from core.rules.series import Series, take
from core.rules.tables import NONE, asof, count_until
from core.vocabulary.units import Evidence

D = Evidence.DESIGN

RULE = Rule(
    id="ferritin_kinetics",
    title="Ferritin kinetics: fold change, doubling time, rapid rise",
    version="1.1",  # 1.1: a rise over any interval (issue 16)
    citation=Citation(
        source="CAR-T Watch engineering defaults (no published numeric definition); "
               "magnitudes from the tisa-cel B-ALL HLH-like toxicity cohort",
        section="criteria.md §11 'Computed features' and 'Proposed default flags'",
    ),
    evidence=D,
    severity=Severity.WARNING,
    short_name="Ferritin kinetics", syndrome="listed",
    thresholds=(
        Threshold("rising_fold", 1.5, "fold", D,
                  "'rising': fold change over 48 h at or above", ">="),
        Threshold("rapid_fold", 2.0, "fold", D,
                  "'rapidly rising': fold change within the window at or above "
                  "(doubling time <= window)", ">="),
        Threshold("rapid_window_hours", 48, "hours", D,
                  "window for the rapid-rise fold change", "<="),
        Threshold("rapid_min_x_uln", 2.0, "x ULN", D,
                  "'rapidly rising' also needs the value above this multiple of ULN", ">"),
        Threshold("match_tolerance_hours", 6, "hours", D,
                  "a sample counts as '24 h / 48 h before' within this tolerance", "<="),
    ),
    inputs=("ferritin",),
    choices=(
        "Kinetics are computed for the latest ferritin; references: baseline (§0.2), the "
        "previous value, and the samples nearest 24 h and 48 h before (within the tolerance).",
        "Rapid rise compares the latest value with every earlier value drawn within the window "
        "(plus the tolerance) and reports the largest fold change.",
        "A rise over any longer interval also counts: when no earlier value lies within the "
        "window (plus the tolerance), the latest value is compared with the previous one, "
        "however far back, and the rise is rapid when the "
        "average doubling time over that interval is at or below the one the window and fold "
        "imply (48 h for a 2-fold rise: 2 days). The average doubling time over an interval is "
        "an upper bound on the fastest doubling time within it, so such a rise was at least "
        "that fast somewhere in the gap (weekly sampling).",
        "Met = rapid rise; 'rising' (1.5-fold over 48 h) is reported in the extra fields only.",
        "Not met (no rapid rise) needs an earlier value within the window (plus the tolerance): "
        "a slower average rise over a longer gap cannot exclude a rapid rise inside the gap, "
        "so it is not evaluable, as is a latest value above 2 x ULN with no earlier value.",
    ),
    description="Screening flag for a rapidly rising ferritin; context for the IEC-HS screen.",
)

MISSING_FERRITIN = "log a ferritin result"
MISSING_PAIR = "draw another ferritin within 48 h of the last one to judge its rise"
_REL = 1e-9  # relative slack so a rise exactly at the doubling-time limit counts as rapid
RAPID, NOT_RAPID, UNKNOWN = 1, 0, -1  # the rapid-rise judgement of a value


def limit_doubling_days(t: Mapping[str, float]) -> float:
    """The doubling time (days) the window and fold imply: 48 h for 2-fold -> 2 days."""
    if t["rapid_fold"] <= 1:
        return math.inf
    return t["rapid_window_hours"] / 24.0 * math.log(2) / math.log(t["rapid_fold"])


def doubling_days(ref: float, ref_day: float, value: float, day: float) -> float | None:
    """Average doubling time (days) from ref to value; None unless ferritin rose."""
    dt = day - ref_day
    if ref <= 0 or value <= ref or dt <= 0:
        return None
    return dt * math.log(2) / math.log(value / ref)


def rapid_over_interval(ref: np.ndarray, ref_day: np.ndarray, value: np.ndarray,
                        day: np.ndarray, t: Mapping[str, float]) -> np.ndarray:
    """Whether each rise from ref to value, however far apart, is rapid (§11, [DESIGN]).

    The rise must reach the rapid fold change, at an average rate at least one such fold
    change per window: doubling time over the interval <= the window's doubling time (2 days
    by default). The average doubling time over an interval is an upper bound on the fastest
    doubling time within it: ferritin rose by ln(F2/F1) over dt days, so some stretch of the
    interval rose at least that steeply (had it dipped in between, the climb back was steeper
    still). A rise that is rapid on average was therefore rapid somewhere in the interval,
    whatever its length. The converse does not hold: a slow average over a long gap can hide a
    rapid rise inside it, so this decides "rapid" only, never "not rapid".
    """
    dt = day - ref_day
    ok = (ref > 0) & (value > 0) & (dt > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = np.where(ok, value / np.where(ok, ref, 1.0), 1.0)
        per_window = dt / (t["rapid_window_hours"] / 24.0)  # interval length in windows
        need = math.log(t["rapid_fold"]) * per_window if t["rapid_fold"] > 1 else (
            np.zeros(len(dt)))
        fast = np.log(fold) >= need - _REL * np.maximum(1.0, np.abs(need))
    return ok & (fold >= t["rapid_fold"] * (1 - _REL)) & fast


# --- each value judged as the latest --------------------------------------------------------


def _last_earlier(keys: np.ndarray, days: np.ndarray, at: np.ndarray, start: np.ndarray,
                  span: float) -> np.ndarray:
    """For each value `at`: the last earlier value of its course drawn more than `span` days
    before it (days[at] - day > span, as intervals are measured), else NONE."""
    p = asof(keys, days, keys[at], days[at] - span)
    p = np.where(p >= at, np.where(at - 1 >= start, at - 1, NONE), p)

    def older(q: np.ndarray) -> np.ndarray:
        return (q >= 0) & (days[at] - days[np.maximum(q, 0)] > span)

    while (bad := (p >= 0) & ~older(p)).any():  # rounding at the edge: step back
        p = np.where(bad, np.where(p - 1 >= start, p - 1, NONE), p)
    while True:  # or forward
        nxt = np.where(p >= 0, p + 1, start)
        good = older(np.where(nxt < at, nxt, NONE))
        if not good.any():
            return p
        p = np.where(good, nxt, p)


def rise(keys: np.ndarray, days: np.ndarray, values: np.ndarray, uln: np.ndarray,
         t: Mapping[str, float]) -> dict[str, np.ndarray]:
    """The kinetics of every value as the latest of its course (§11), for values sorted by
    (course `keys`, day) with their ULN (NaN: none): positions of the previous value, of the
    values nearest 24 h and 48 h before, of the value a rapid rise is judged against
    (rapid_ref) and of the last value before the window (gap_ref, when none is within it), and
    `rapid` (RAPID, NOT_RAPID, UNKNOWN)."""
    n = len(keys)
    at = np.arange(n)
    start = np.searchsorted(keys, keys, side="left")  # each course's first value
    window = t["rapid_window_hours"] / 24.0
    tol = t["match_tolerance_hours"] / 24.0
    out = {"previous": np.where(at > start, at - 1, NONE)}
    # the earlier values that can matter: back to the window (at least 48 h) + tolerance
    lo = count_until(keys, days, keys, days - (max(window, 2.0) + tol), strict=True)
    width = int((at - lo).max(initial=0))
    cand = at[:, None] - np.arange(width, 0, -1)[None, :]  # earlier values, oldest first
    recent = cand >= lo[:, None]
    cand = np.where(recent, cand, 0)
    c_day, c_value = days[cand], values[cand]

    def pick(ok: np.ndarray, by: np.ndarray) -> np.ndarray:
        """The first candidate with the smallest `by` among `ok`, else NONE."""
        if not width:
            return np.full(n, NONE)
        j = np.argmin(np.where(ok, by, np.inf), axis=1)
        return np.where(ok[at, j], cand[at, j], NONE)

    for name, hours in (("ref_24h", 24.0), ("ref_48h", 48.0)):  # nearest within tolerance
        dist = np.abs(c_day - (days - hours / 24.0)[:, None])
        out[name] = pick(recent & (dist <= tol), dist)
    since = days[:, None] - c_day
    in_window = recent & (since > 0) & (since <= window + tol) & (c_value > 0)
    lowest = pick(in_window, c_value)  # the lowest value within the window
    low = ~np.isnan(uln) & (values <= t["rapid_min_x_uln"] * uln)  # not above x ULN
    gap = np.where(low | (lowest >= 0), NONE, _last_earlier(keys, days, at, start,
                                                              window + tol))
    g = np.maximum(gap, 0)
    across = (gap >= 0) & rapid_over_interval(values[g], days[g], values, days, t)
    with np.errstate(divide="ignore"):
        fold = values / values[np.maximum(lowest, 0)]
    by_fold = np.where(fold >= t["rapid_fold"], RAPID, NOT_RAPID)
    # not above x ULN, else a rapid rise across the gap, else the fold from the lowest value
    out["rapid"] = np.select([low, across, lowest >= 0], [NOT_RAPID, RAPID, by_fold],
                             UNKNOWN).astype(np.int8)
    out["rapid_ref"] = np.where(across, gap, np.where(low, NONE, lowest))
    out["gap_ref"] = gap
    return out


# --- the rule over a ward -------------------------------------------------------------------

_REFS = ("previous", "ref_24h", "ref_48h", "rapid_ref", "gap_ref")


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per course-day: the kinetics of the latest ferritin known at its end (positions in
    ward.labs, NONE: none) and the status: met = rapid rise, not met = no rapid rise, not
    evaluable = no ferritin, or a rise that cannot be judged (MISSING_PAIR)."""
    s = Series.lab(ward, "ferritin")
    k = rise(s.key, s.day, s.value, ward.lab_limits[1][s.pos], t)
    at = s.latest(ward.days["end"])  # the latest value's place among the ferritins
    out: dict[str, Any] = {"latest": s.frame_pos(at), "baseline": ward.baseline("ferritin")}
    for name in _REFS:
        out[name] = s.frame_pos(take(k[name], at, NONE))
    rapid = take(k["rapid"], at, UNKNOWN)
    out["rapid"] = rapid
    out["status"] = status_where(rapid == RAPID, rapid == NOT_RAPID)
    return out


def _ng(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) and abs(v) < 1e15 else f"{v:,g}"


def _days(d: float) -> str:
    text = f"{d:.1f}"
    return f"{text} day" if text == "1.0" else f"{text} days"


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The finding of one course-day: fold changes, slope and doubling time (extra), and the
    values that decided the rapid-rise flag (evidence)."""
    F = int(row["latest"])
    if F == NONE:
        return Finding(RULE.id, Status.NOT_EVALUABLE, missing=[MISSING_FERRITIN])
    value, day = ward.labs["value"], ward.labs.day
    # the values compared with the latest (not itself: the baseline may be the latest)
    refs = {name: int(row[col]) for name, col in (
        ("baseline", "baseline"), ("previous", "previous"), ("24h", "ref_24h"),
        ("48h", "ref_48h")) if int(row[col]) not in (NONE, F)}
    latest = float(value[F])
    fold = {k: latest / float(value[r]) for k, r in refs.items() if value[r] > 0}
    slope = doubling = None
    prev = refs.get("previous")
    if prev is not None and value[prev] > 0 and latest > 0 and day[F] > day[prev]:
        slope = math.log(latest / float(value[prev])) / float(day[F] - day[prev])
        if slope > 0:
            doubling = math.log(2) / slope
    rapid = {RAPID: True, NOT_RAPID: False, UNKNOWN: None}[int(row["rapid"])]
    ref, gap = int(row["rapid_ref"]), int(row["gap_ref"])
    ev: list[EvidenceItem] = []
    if gap != NONE:  # none within the window: the rise from gap_ref, rapid or not judged
        ev += [_interval(ward, gap, F, t, rapid=bool(rapid)),
               ward.lab_evidence(gap, "comparison value")]
    elif ref != NONE:
        hours = (day[F] - day[ref]) * 24
        op = ">=" if rapid else "<"
        ev.append(ward.lab_evidence(F, f"{latest / value[ref]:.2f}-fold from {value[ref]:g} "
                                       f"ng/mL (day {day[ref]:g}) in {hours:.0f} h {op} "
                                       f"{t['rapid_fold']:g}-fold"))
        ev.append(ward.lab_evidence(ref, "comparison value"))
    uln = ward.lab_limits[1][F]
    if not math.isnan(uln):
        limit = t["rapid_min_x_uln"] * uln
        ev.append(ward.lab_evidence(F, f"{'>' if latest > limit else '<='} "
                                       f"{t['rapid_min_x_uln']:g} x ULN ({limit:g} ng/mL)"))
    if doubling is not None:
        ev.append(ward.lab_evidence(F, f"doubling time {doubling:.2f} days"))
    return Finding(RULE.id, Status(row["status"]), evidence=ev,
                   missing=[MISSING_PAIR] if rapid is None else [],
                   extra={"fold_change": {k: round(v, 3) for k, v in fold.items()},
                          "log_slope_per_day": None if slope is None else round(slope, 4),
                          "doubling_time_days": None if doubling is None
                          else round(doubling, 3),
                          "rising": None if "48h" not in fold else
                          fold["48h"] >= t["rising_fold"],
                          "rapid_rise": rapid})


def _interval(ward: Ward, ref: int, latest: int, t: Thresholds, rapid: bool) -> EvidenceItem:
    """'ferritin 450 -> 52,000 ng/mL over 7.0 days: doubling time <= 1.0 day' and the like."""
    r, v = float(ward.labs["value"][ref]), float(ward.labs["value"][latest])
    dt = float(ward.labs.day[latest] - ward.labs.day[ref])
    head = f"ferritin {_ng(r)} -> {_ng(v)} ng/mL over {_days(dt)}"
    dbl = doubling_days(r, float(ward.labs.day[ref]), v, float(ward.labs.day[latest]))
    limit = _days(limit_doubling_days(t))
    if rapid:
        assert dbl is not None
        return ward.lab_evidence(latest, f"{head}: doubling time <= {_days(dbl)} (rapid rise: "
                                         f"doubling time <= {limit})")
    slow = "no rise" if dbl is None else f"average doubling time {_days(dbl)} (> {limit})"
    return ward.lab_evidence(latest, f"{head}: {slow}; ferritin values {_days(dt)} apart: a "
                                     f"rapid rise between them cannot be excluded")


RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, judge=judge, explain=explain),)

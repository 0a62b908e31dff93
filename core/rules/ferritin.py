"""Ferritin kinetics (criteria.md §11).

No published numeric definition of a "rapidly rising" ferritin exists (§11): the flags here are
the dashboard's configurable engineering defaults [DESIGN], never a criterion in anyone's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

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
)
from core.rules.reading import (
    Value,
    end_of_day,
    lab_series,
    latest_until,
)
from core.rules.stretches import (
    DailyRule,
    baseline_settled_at,
    configured_thresholds,
    memo,
    settled_baseline,
    thresholds_key,
)
from core.vocabulary.course import Course
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


@dataclass
class Kinetics:
    latest: Value | None
    fold: dict[str, float] = field(default_factory=dict)
    refs: dict[str, Value] = field(default_factory=dict)
    log_slope_per_day: float | None = None
    doubling_time_days: float | None = None
    rising: bool | None = None
    rapid: bool | None = None
    rapid_ref: Value | None = None
    # the last value drawn before the window (plus tolerance), if any: the far side of a gap
    gap_ref: Value | None = None

    def extra(self) -> dict:
        return {
            "fold_change": {k: round(v, 3) for k, v in self.fold.items()},
            "log_slope_per_day": None if self.log_slope_per_day is None
            else round(self.log_slope_per_day, 4),
            "doubling_time_days": None if self.doubling_time_days is None
            else round(self.doubling_time_days, 3),
            "rising": self.rising,
            "rapid_rise": self.rapid,
        }


def _nearest(vals: list[Value], target: float, tol: float) -> Value | None:
    best = None
    for v in vals:
        if abs(v.day - target) <= tol and (best is None or
                                            abs(v.day - target) < abs(best.day - target)):
            best = v
    return best


def kinetics(course: Course, end: float, t: Thresholds | None = None) -> Kinetics:
    """Ferritin kinetics of the latest value with day <= end (§11).

    They depend only on which value is the latest (and the baseline), so once the baseline is
    settled they are cached per value: the rule and the IEC-HS screen share them, and a
    replay computes them once per new value rather than once per day. Do not mutate.
    """
    t = t if t is not None else configured_thresholds(course, RULE)
    s = lab_series(course, "ferritin")
    n = 0 if s is None else s.count(min(end, course.as_of_day))
    if n == 0:
        return Kinetics(None)
    if course.as_of_day < baseline_settled_at(course):
        return _kinetics(course, end, t)
    return memo(course, ("ferritin_kinetics_of", thresholds_key(t), n),
                lambda: _kinetics(course, end, t))


def _kinetics(course: Course, end: float, t: Thresholds) -> Kinetics:
    latest = latest_until(course, "ferritin", end)
    assert latest is not None
    window = t["rapid_window_hours"] / 24.0
    tol = t["match_tolerance_hours"] / 24.0
    # only the values that can matter: the last window + tolerance, and the previous one
    s = lab_series(course, "ferritin")
    assert s is not None
    n = s.count(min(end, course.as_of_day)) - 1  # index of the latest value
    horizon = latest.day - (max(window, 2.0) + tol)
    i = n
    while i > 0 and s.days[i - 1] >= horizon:
        i -= 1
    recent = [s.at(j) for j in range(i, n)]
    k = Kinetics(latest)
    base = settled_baseline(course, "ferritin")
    if base is not None and base is not latest and base.value > 0:
        k.refs["baseline"] = base
    if n > 0:
        k.refs["previous"] = s.at(n - 1)
    for name, hours in (("24h", 24.0), ("48h", 48.0)):
        ref = _nearest(recent, latest.day - hours / 24.0, tol)
        if ref is not None:
            k.refs[name] = ref
    for name, ref in k.refs.items():
        if ref.value > 0:
            k.fold[name] = latest.value / ref.value
    prev = k.refs.get("previous")
    if prev is not None and prev.value > 0 and latest.value > 0 and latest.day > prev.day:
        k.log_slope_per_day = math.log(latest.value / prev.value) / (latest.day - prev.day)
        if k.log_slope_per_day > 0:
            k.doubling_time_days = math.log(2) / k.log_slope_per_day
    if "48h" in k.fold:
        k.rising = k.fold["48h"] >= t["rising_fold"]
    uln = latest.ref_high
    if uln is not None and latest.value <= t["rapid_min_x_uln"] * uln:
        k.rapid = False
        return k
    in_window = [v for v in recent if 0 < latest.day - v.day <= window + tol and v.value > 0]
    if in_window:  # values close enough to judge the window itself, as before
        ref = min(in_window, key=lambda v: v.value)
        k.rapid_ref = ref
        k.rapid = latest.value / ref.value >= t["rapid_fold"]
        return k
    # Nothing drawn within the window: the rise across the gap from the last value before it
    # can still show a rapid rise (never its absence). Only then: with values in the window,
    # an older value would flag a climb the window shows is over (falling after a peak).
    j = n - 1
    while j >= 0 and latest.day - s.days[j] <= window + tol:
        j -= 1
    k.gap_ref = s.at(j) if j >= 0 else None
    if k.gap_ref is not None and rapid_over_interval(k.gap_ref, latest, t):
        k.rapid_ref, k.rapid = k.gap_ref, True
    return k


def limit_doubling_days(t: Thresholds) -> float:
    """The doubling time (days) the window and fold imply: 48 h for 2-fold -> 2 days."""
    if t["rapid_fold"] <= 1:
        return math.inf
    return t["rapid_window_hours"] / 24.0 * math.log(2) / math.log(t["rapid_fold"])


def doubling_days(ref: Value, latest: Value) -> float | None:
    """Average doubling time (days) from ref to latest; None unless ferritin rose."""
    dt = latest.day - ref.day
    if ref.value <= 0 or latest.value <= ref.value or dt <= 0:
        return None
    return dt * math.log(2) / math.log(latest.value / ref.value)


def rapid_over_interval(ref: Value, latest: Value, t: Thresholds) -> bool:
    """Whether the rise from ref to latest, however far apart, is rapid (§11, [DESIGN]).

    The rise must reach the rapid fold change, at an average rate at least one such fold
    change per window: doubling time over the interval <= the window's doubling time (2 days
    by default). The average doubling time over an interval is an upper bound on the fastest
    doubling time within it: ferritin rose by ln(F2/F1) over dt days, so some stretch of the
    interval rose at least that steeply (had it dipped in between, the climb back was steeper
    still). A rise that is rapid on average was therefore rapid somewhere in the interval,
    whatever its length. The converse does not hold: a slow average over a long gap can hide a
    rapid rise inside it, so this decides "rapid" only, never "not rapid".
    """
    dt = latest.day - ref.day
    if ref.value <= 0 or latest.value <= 0 or dt <= 0:
        return False
    fold = latest.value / ref.value
    if fold < t["rapid_fold"] * (1 - _REL):
        return False
    per_window = dt / (t["rapid_window_hours"] / 24.0)  # interval length in windows
    need = math.log(t["rapid_fold"]) * per_window if t["rapid_fold"] > 1 else 0.0
    return math.log(fold) >= need - _REL * max(1.0, abs(need))


def _ng(v: float) -> str:
    return f"{v:,.0f}" if v == int(v) and abs(v) < 1e15 else f"{v:,g}"


def _days(d: float) -> str:
    text = f"{d:.1f}"
    return f"{text} day" if text == "1.0" else f"{text} days"


def _interval_evidence(ref: Value, latest: Value, t: Thresholds, rapid: bool) -> EvidenceItem:
    """'ferritin 450 -> 52,000 ng/mL over 7.0 days: doubling time <= 1.0 day' and the like."""
    dt = latest.day - ref.day
    head = f"ferritin {_ng(ref.value)} -> {_ng(latest.value)} ng/mL over {_days(dt)}"
    dbl = doubling_days(ref, latest)
    limit = _days(limit_doubling_days(t))
    if rapid:
        assert dbl is not None
        return latest.evidence(f"{head}: doubling time <= {_days(dbl)} (rapid rise: doubling "
                               f"time <= {limit})")
    rise = "no rise" if dbl is None else f"average doubling time {_days(dbl)} (> {limit})"
    return latest.evidence(f"{head}: {rise}; ferritin values {_days(dt)} apart: a rapid rise "
                           f"between them cannot be excluded")


def _kinetics_finding(course: Course, day: int, t: Thresholds) -> Finding:
    end = min(end_of_day(day), course.as_of_day)
    k = kinetics(course, end, t)
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    if k.latest is None:
        return Finding(RULE.id, Status.NOT_EVALUABLE, missing=[MISSING_FERRITIN])
    F = k.latest
    uln = F.ref_high
    if k.rapid_ref is not None and k.rapid_ref is k.gap_ref:
        ev.append(_interval_evidence(k.gap_ref, F, t, rapid=True))
        ev.append(k.gap_ref.evidence("comparison value"))
    elif k.rapid_ref is not None:
        r = k.rapid_ref
        hours = (F.day - r.day) * 24
        fold = F.value / r.value
        op = ">=" if k.rapid else "<"
        ev.append(F.evidence(f"{fold:.2f}-fold from {r.value:g} ng/mL (day {r.day:g}) in "
                             f"{hours:.0f} h {op} {t['rapid_fold']:g}-fold"))
        ev.append(r.evidence("comparison value"))
    elif k.rapid is None and k.gap_ref is not None:
        ev.append(_interval_evidence(k.gap_ref, F, t, rapid=False))
        ev.append(k.gap_ref.evidence("comparison value"))
    if uln is not None:
        above = F.value > t["rapid_min_x_uln"] * uln
        ev.append(F.evidence(f"{'>' if above else '<='} {t['rapid_min_x_uln']:g} x ULN "
                             f"({t['rapid_min_x_uln'] * uln:g} ng/mL)"))
    if k.doubling_time_days is not None:
        ev.append(F.evidence(f"doubling time {k.doubling_time_days:.2f} days"))
    if k.rapid is None:
        missing.append(MISSING_PAIR)
        status = Status.NOT_EVALUABLE
    else:
        status = Status.MET if k.rapid else Status.NOT_MET
    return Finding(RULE.id, status, evidence=ev, missing=missing, extra=k.extra())


KINETICS = DailyRule(RULE, _kinetics_finding)
evaluate_kinetics = KINETICS.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (KINETICS.spec(),)

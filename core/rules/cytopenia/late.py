"""Late ICAHT / T-ICAHT grades (after day 30; criteria §6.1/§6.3): the deepest row of the
depth table reached by at least min_values results of the window; late T-ICAHT grade 4 by
the days counted below 20.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from core.rules.base import Finding, Rule, RuleSpec, Status, Thresholds, status_where
from core.rules.cytopenia.counting import carry_forward, count_windows, states_for
from core.rules.cytopenia.readers import censoring, daily_worst, transfusion_supported
from core.rules.frames import Columns, Ward
from core.rules.series import Series, take
from core.rules.tables import NONE
from core.vocabulary.units import ANALYTES


@dataclass(frozen=True)
class LateGrading:
    """A late rule's depth table: grade g when at least min_values results of the window are
    below row g's cut."""

    rule_id: str
    analyte: str
    end_key: str | None  # threshold key of the window's last day (None: no end day)
    cuts: tuple[tuple[str, bool], ...]  # per grade from 1: (threshold key, inclusive: <= or <)
    lists_results: bool  # a not evaluable finding shows the window's results as evidence
    # past the last row: grade 4 by the days counted below the last cut (late T-ICAHT)
    counts_deep_days: bool = False


def days_below_deep_cut(ward: Ward, t: Thresholds, rows: Series, keys: np.ndarray,
                        as_of: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Late T-ICAHT: days counted < deep_cut from late_start_day to `last` (per instant): a
    missing day takes the last value carry_forward_days long; sparse late sampling: unknown
    days between results below the cut count in ("bridge"); no recovery within
    transfusion_window_days after a platelet transfusion."""
    start = int(t["late_start_day"])
    ndays = int(t["late_end_day"]) - start + 1
    vals, pos = daily_worst(rows, keys, as_of, start - 1, ndays + 1)
    vals = carry_forward(vals, pos, int(t["carry_forward_days"]))
    supported = transfusion_supported(ward, keys, as_of, start, ndays,
                                      int(t["transfusion_window_days"]))
    states = states_for(vals[:, 1:], t["deep_cut"], False, supported)
    n = (last - start + 1).astype(np.int64)
    days, _first = count_windows(states, n, int(t["recovery_days"]), "bridge")
    return days


def judge(g: LateGrading, ward: Ward, t: Thresholds) -> Columns:
    """Per grid row: the window's results known at the row's end, and the deepest row of
    the table with at least min_values of them below its cut."""
    grid = ward.days
    key, as_of = grid["key"], grid["end"]
    now = ward.now()
    start = int(t["late_start_day"])
    end_limit = t[g.end_key] if g.end_key else np.inf
    cens, cens_event = censoring(ward, key, as_of)
    last = np.fmin(np.minimum(np.where(np.isfinite(now), np.floor(now), -np.inf), end_limit),
                   np.floor(cens))
    opened = last >= start
    rows = Series.lab(ward, g.analyte).dated()
    i0, i1 = rows.window(key, float(start), np.where(opened, last, start), as_of)
    need = int(t["min_values"])
    grade = np.zeros(len(key), dtype=np.int64)
    since_i = np.full(len(key), -1, dtype=np.int64)
    for row, (cut, inclusive) in enumerate(g.cuts, 1):
        hit = (rows.value <= t[cut]) if inclusive else (rows.value < t[cut])
        hits = np.r_[0, np.cumsum(hit)]
        enough = hits[i1] - hits[i0] >= need
        grade = np.where(enough, row, grade)
        # the first hit of the window (from i0 on): where the count of hits first rises
        first_hit = np.searchsorted(hits, hits[i0] + 1) - 1
        since_i = np.where(enough & (since_i < 0), first_hit, since_i)
    deep_days = np.full(len(key), -1, dtype=np.int64)
    deepen = opened & (grade == len(g.cuts)) if g.counts_deep_days else np.zeros_like(opened)
    if deepen.any():
        deep_days[deepen] = days_below_deep_cut(ward, t, rows, key[deepen], as_of[deepen],
                                                last[deepen])
        grade = np.where(deepen, np.where(deep_days >= t["g4_deep_days"], 4, 3), grade)
    results = i1 - i0
    status = status_where(opened & (grade > 0), opened & (results >= need))
    met = status == Status.MET.value
    return {
        "status": status, "grade": grade,
        "since_day": np.floor(take(rows.day, np.where(met, since_i, NONE), np.nan)),
        "last_day": last, "censored_day": cens, "censored_event": cens_event,
        # the window's results are contiguous in ward.labs from its first one
        "results": results, "first_result": rows.frame_pos(np.where(results > 0, i0, NONE)),
        "days_deep_cut": deep_days, "now": now,
    }


def explain(g: LateGrading, ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    name = ANALYTES[g.analyte].name
    start = int(t["late_start_day"])
    end_limit = t[g.end_key] if g.end_key else np.inf
    extra: dict[str, object] = {
        "window": f"days {start}-" + (f"{int(end_limit)}" if g.end_key else "")}
    if row["censored_event"]:
        extra["censored"] = {"event": str(row["censored_event"]),
                             "day": float(row["censored_day"])}
    elif g.end_key and (not np.isfinite(row["now"]) or row["now"] < end_limit):
        extra["provisional_until_day"] = int(end_limit)
    if row["last_day"] < start:
        extra["window_opens_day"] = start
        return Finding(rule=g.rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    n, p0 = int(row["results"]), int(row["first_result"])
    extra["results_in_window"] = n
    if row["days_deep_cut"] >= 0:
        extra["days_deep_cut"] = int(row["days_deep_cut"])
    values = ward.labs["value"][p0:p0 + n] if n else np.empty(0)
    need, grade = int(t["min_values"]), int(row["grade"])
    if row["status"] == Status.NOT_EVALUABLE.value:
        article = "an" if name[0] in "AEIOU" else "a"
        return Finding(rule=g.rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       evidence=[ward.lab_evidence(p0 + i, "result after day 30")
                                 for i in range(n)] if g.lists_results else [],
                       missing=[f"{'a repeat' if n else article} {name} result after "
                                f"day {start - 1}"])
    if grade == 0:
        return Finding(rule=g.rule_id, status=Status.NOT_MET, grade=0, extra=extra,
                       evidence=[ward.lab_evidence(p0 + int(np.argmin(values)),
                                                   "lowest after day 30")])
    cut, inclusive = g.cuts[min(grade, len(g.cuts)) - 1]
    why = f"{'<=' if inclusive else '<'} {t[cut]:g} x 10^9/L after day 30"
    hits = np.flatnonzero(values <= t[cut] if inclusive else values < t[cut])[:need]
    return Finding(rule=g.rule_id, status=Status.MET, grade=grade, extra=extra,
                   evidence=[ward.lab_evidence(p0 + int(i), why) for i in hits])


def spec(rule: Rule, g: LateGrading) -> RuleSpec:
    """The late rule `rule`, graded by `g`."""
    return RuleSpec(rule, judge=partial(judge, g), explain=partial(explain, g), by_instant=True)

"""Early ICAHT / T-ICAHT grades (days 0-30; criteria §6.1/§6.3): days counted below the
cuts, graded on the values there are, with the bounds the unmeasured days allow.

Per instant the rule reads the window as known then: the lowest result of each day up to
the window's last day (today left out while its result may not be back), bridged
(counting.bridge); the days are counted five ways (as bridged; every unmeasured day high /
low; the unmeasured inpatient days high / low) for each cut. Once the window has closed the
count no longer changes, so the instants of a course after day 31 read as day 31.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from core.rules.base import (
    EvidenceItem,
    Finding,
    Inputs,
    Rule,
    RuleSpec,
    Status,
    Thresholds,
)
from core.rules.cytopenia.counting import bridge, count_windows, states_for
from core.rules.cytopenia.readers import (
    censoring,
    daily_worst,
    first_event,
    transfusion_supported,
)
from core.rules.frames import Columns, Ward
from core.rules.lab_overdue import RULE as OVERDUE_RULE
from core.rules.lab_overdue import every
from core.rules.series import Series
from core.vocabulary.units import ANALYTES

START = 0  # the early window's first day


@dataclass(frozen=True)
class EarlyGrading:
    """An early rule's grading table and what it counts."""

    rule_id: str
    analyte: str
    # per row: (threshold key, inclusive, ((days key, grade), ...))
    rows: tuple[tuple[str, bool, tuple[tuple[str, int], ...]], ...]
    platelets: bool  # the transfusion rule applies to the deep cut


def _grade(g: EarlyGrading, t: Thresholds, counts: Mapping[str, np.ndarray]) -> np.ndarray:
    """The grading table: the highest grade whose days are reached."""
    return np.max([row_grade * (counts[key] >= t[days_key])
                   for key, _inclusive, grades in g.rows for days_key, row_grade in grades], axis=0)


def prompt_last_day(ward: Ward, analyte: str, keys: np.ndarray, as_of: np.ndarray,
                    overdue: Thresholds) -> np.ndarray:
    """The last day a missing result is worth a prompt to log it (or why not): the end of
    the inpatient monitoring phase, i.e. lab_overdue's schedule for the analyte (`overdue`:
    its thresholds in force), or the day of discharge if that comes first: the course's
    first last_followup event (the importer marks the patient discharged by it). -1: never
    prompted."""
    if every(overdue, analyte) <= 0:
        return np.full(len(keys), -1, dtype=np.int64)
    discharge, _ = first_event(ward, ("last_followup",))
    known = np.where(discharge[keys] <= as_of, discharge[keys], np.inf)
    return np.minimum(overdue["last_day"], np.floor(known)).astype(np.int64)


def _instants(ward: Ward, window_end: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The distinct (key, as_of, today) the grid rows read, and each row's one. After the
    window's last day every day reads the same (as of the start of day window_end + 1).
    Within a course both rise with the day, so equal ones are neighbours."""
    now = ward.now()
    today = np.where(np.isfinite(now), np.floor(now), -1)
    cols = {"key": ward.days["key"],
            "as_of": np.minimum(ward.days["end"].astype(float), window_end + 1.0),
            "today": np.minimum(today, window_end + 1).astype(np.int64)}
    new = np.ones(len(now), dtype=bool)  # a row reading another instant than the row before
    new[1:] = np.any([column[1:] != column[:-1] for column in cols.values()], axis=0)
    firsts = np.flatnonzero(new)
    return {c: v[firsts] for c, v in cols.items()}, np.cumsum(new) - 1


def judge(g: EarlyGrading, ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """Per grid row: the grade of the days counted in the window as known at the row's end,
    the bounds, and the rows of the evidence."""
    window_end = int(t["window_end_day"])
    inst, which = _instants(ward, window_end)
    key, as_of, today = (inst[c] for c in ("key", "as_of", "today"))
    cens, cens_event = censoring(ward, key, as_of)
    end = np.fmin(np.minimum(window_end, today), np.floor(cens)).astype(np.int64)
    # the lowest result of each day -1..window_end known then
    cols = np.arange(window_end + 2)  # column c = day c - 1
    raw, pos = daily_worst(Series.lab(ward, g.analyte).dated(), key, as_of, START - 1, len(cols))
    # today's sample may simply not be back yet: count up to yesterday
    today_open = (end == today) & (end >= START)
    today_open &= np.isnan(raw[np.arange(len(key)), np.clip(end + 1, 0, len(cols) - 1)])
    end = np.where(today_open, end - 1, end)
    n = end - START + 1
    raw[cols[None, :] > n[:, None]] = np.nan  # up to the window's last day
    filled = bridge(raw, int(t["bridge_days"]))[:, 1:]
    raw, pos = raw[:, 1:], pos[:, 1:]
    day = np.arange(window_end + 1)
    measured = ~np.isnan(raw)
    in_window = day[None, :] < n[:, None]
    asked = ~measured & in_window & (day[None, :] <= prompt_last_day(
        ward, g.analyte, key, as_of, inputs.thresholds[OVERDUE_RULE.id])[:, None])
    supported = (transfusion_supported(ward, key, as_of, START, len(day),
                                       int(t["transfusion_window_days"]))
                 if g.platelets else None)
    recovery, longest = int(t["recovery_days"]), bool(t["count_longest_run"])
    key0, incl0, _ = g.rows[0]
    # "low" = at the first cut (e.g. ANC 0.5), or as deep as bridged if deeper: never above
    # the bridged estimate, so the bounds hold the estimate between them
    low = np.fmin(filled, t[key0] if incl0 else np.nextafter(t[key0], -np.inf))
    variants = {  # daily values: as bridged; unmeasured days high / low; same in phase only
        "est": filled,
        "unmeasured_high": np.where(measured, raw, np.inf),
        "unmeasured_low": np.where(measured, raw, low),
        "phase_high": np.where(asked, np.inf, filled),
        "phase_low": np.where(asked, low, filled),
    }
    # every (cut, variant) counted in one pass of the machine, stacked as rows; a variant
    # is counted only for the windows where its days differ from the estimate's
    differs = {v: (((vals != filled) & ~(np.isnan(vals) & np.isnan(filled))) & in_window)
               .any(axis=1) for v, vals in variants.items()}
    parts, part_rows = [], []
    for cut, inclusive, _grades in g.rows:
        tx_rule = supported if g.platelets and cut == "deep_cut" else None
        for v, vals in variants.items():
            r = np.arange(len(key)) if v == "est" else np.flatnonzero(differs[v])
            parts.append(states_for(vals[r], t[cut], inclusive,
                                    None if tx_rule is None else tx_rule[r]))
            part_rows.append((cut, v, r))
    stacked = np.concatenate([r for _cut, _v, r in part_rows])  # each stacked row's window
    days, firsts = count_windows(np.concatenate(parts), n[stacked], recovery, "above", longest)
    bounds = np.cumsum([len(r) for _cut, _v, r in part_rows])[:-1]  # where each part ends
    counts: dict[str, dict[str, np.ndarray]] = {v: {} for v in variants}
    first_day = np.full(len(key), -1, dtype=np.int64)
    for (cut, v, r), part, first in zip(part_rows, np.split(days, bounds),
                                        np.split(firsts, bounds), strict=True):
        if v == "est":
            counts[v][cut] = part
            first_day = np.where((first >= 0) & ((first_day < 0) | (first < first_day)),
                                 first, first_day)
        else:
            counts[v][cut] = counts["est"][cut].copy()
            counts[v][cut][r] = part
    grade = _grade(g, t, counts["est"])
    # evidence: the first measured result below the first cut from the first counted day
    # on, and the lowest measured result of the window so far
    below = (raw <= t[key0]) if incl0 else (raw < t[key0])
    below &= (day[None, :] >= first_day[:, None]) & (first_day >= 0)[:, None]
    rows = np.arange(len(key))
    ev_first = np.where(below.any(axis=1), pos[rows, below.argmax(axis=1)], -1)
    ev_lowest = np.where(measured.any(axis=1),
                         pos[rows, np.where(measured, raw, np.inf).argmin(axis=1)], -1)
    n_measured = measured.sum(axis=1)
    phase_decides = _grade(g, t, counts["phase_high"]) != _grade(g, t, counts["phase_low"])
    prompts = asked.any(axis=1) & (phase_decides | (n_measured == 0))
    status = np.where((n <= 0) | (n_measured == 0), Status.NOT_EVALUABLE.value,
                      np.where(grade > 0, Status.MET.value, Status.NOT_MET.value))
    out: Columns = {
        "status": status, "grade": grade,
        "since_day": np.where(status == Status.MET.value,
                              (START + np.maximum(first_day, 0)).astype(float), np.nan),
        "censored_day": cens, "censored_event": cens_event,
        "through_day": end, "window_days": n, "measured_days": n_measured,
        # the inpatient days without a result, where a prompt names them
        "asked": np.fromiter((tuple(np.flatnonzero(a).tolist()) if p else () for a, p in zip(
            asked, prompts, strict=True)), dtype=object, count=len(prompts)),
        "grade_if_low": _grade(g, t, counts["unmeasured_low"]),
        "grade_if_high": _grade(g, t, counts["unmeasured_high"]),
        "phase_decides": phase_decides,
        "first_day": first_day, "ev_first": ev_first, "ev_lowest": ev_lowest,
        **{f"days_{cut}": counts["est"][cut] for cut, _i, _g in g.rows},
        **{f"days_{cut}_if_low": counts["unmeasured_low"][cut] for cut, _i, _g in g.rows},
    }
    return {name: np.asarray(column)[which] for name, column in out.items()}


def _day_ranges(days: list[int]) -> str:
    """'3, 5-7, 12' from sorted day numbers (at least one)."""
    runs = np.split(np.asarray(days), np.flatnonzero(np.diff(days) != 1) + 1)
    return ", ".join(f"{r[0]}" if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _prompt_days(name: str, days: list[int]) -> list[str]:
    if not days:
        return []
    label = "day" if len(days) == 1 else "days"
    return [f"{name} result for {label} {_day_ranges(days)} (or record why it was not drawn)"]


def explain(g: EarlyGrading, ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    name = ANALYTES[g.analyte].name
    window_end, end, n = int(t["window_end_day"]), int(row["through_day"]), row["window_days"]
    extra: dict[str, object] = {"window": f"days {START}-{window_end}"}
    cens = row["censored_day"]
    if row["censored_event"] and cens <= window_end:
        extra["censored"] = {"event": str(row["censored_event"]), "day": float(cens)}
    elif end < window_end:
        extra["provisional_until_day"] = window_end
        extra["so_far_through_day"] = end
    if n <= 0:
        extra["window_opens_day"] = START
        return Finding(rule=g.rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    asked = [START + d for d in row["asked"]]
    extra["measured_days"] = int(row["measured_days"])
    extra["window_days"] = int(n)
    if not row["measured_days"]:
        return Finding(rule=g.rule_id, status=Status.NOT_EVALUABLE, extra=extra,
                       missing=_prompt_days(name, asked)
                       or [f"an {name} result in days {START}-{end}"])
    grade, lo, hi = int(row["grade"]), int(row["grade_if_high"]), int(row["grade_if_low"])
    for key, _inclusive, _grades in g.rows:
        extra[f"days_{key}"] = int(row[f"days_{key}"])
        if row[f"days_{key}_if_low"] != row[f"days_{key}"]:
            extra[f"days_{key}_if_unmeasured_low"] = int(row[f"days_{key}_if_low"])
    extra["grade_if_unmeasured_low"] = hi
    extra["grade_if_unmeasured_high"] = lo
    key0, incl0, _ = g.rows[0]
    label = f"{name} {'<=' if incl0 else '<'} {t[key0]:g} x 10^9/L"
    summary = f"grade {grade} · {int(row['measured_days'])} of {n} days measured"
    if hi > grade:
        summary += f" · at most grade {hi} if the unmeasured days were low ({label})"
    if lo < grade:
        summary += f" · grade {lo} if the unmeasured days were not low"
    extra["summary"] = summary
    # prompts only for inpatient days that could change the grade
    missing = _prompt_days(name, asked) if row["phase_decides"] else []
    evidence: list[EvidenceItem] = []
    if row["ev_first"] >= 0:
        evidence.append(ward.lab_evidence(int(row["ev_first"]),
                                          f"{label} from day {START + row['first_day']}"))
    if row["ev_lowest"] >= 0 and row["ev_lowest"] != row["ev_first"]:
        evidence.append(ward.lab_evidence(int(row["ev_lowest"]),
                                          f"lowest {name} in the window so far"))
    status = Status.MET if grade else Status.NOT_MET
    return Finding(rule=g.rule_id, status=status, grade=grade, evidence=evidence,
                   missing=missing, extra=extra)


EARLY_CHOICES = (
    "Daily value = the lowest result of the calendar day (public grader, Liang/Fred Hutch "
    "automatedicahtgrading, criteria §6.1 third pass).",
    "Gaps between values (outpatient counts 2-3 times a week): up to bridge_days (7) "
    "unmeasured days between two results are filled by linear interpolation, and the last "
    "result is carried up to bridge_days after it (the grader's na.approx maxgap 7, rule 2); "
    "longer gaps stay unknown and count as not low. Only results of days up to the window's "
    "last day are used.",
    "Recovery = first of recovery_days (3) consecutive days above the threshold; shorter "
    "interruptions are counted into the period (grader: exceedances joined across gaps of "
    "<= 2 days; criteria §6.1).",
    "Cumulative vs longest run (site setting count_longest_run): 0 (default, criteria §6.1 / "
    "T-ICAHT footnote) counts the cumulative days of every period in the window; 1 counts "
    "only the longest period, as the public grader does.",
    "A grade is given whenever at least one day of the window is measured; missing days do "
    "not make it not_evaluable. extra: measured_days of window_days, "
    "grade_if_unmeasured_low (every unmeasured day at the first cut, e.g. ANC 0.5, or deeper "
    "where bridged) and grade_if_unmeasured_high (every unmeasured day above it) bound it; "
    "summary states them.",
    "Prompts to log a missing result (or why it was not drawn) only for unmeasured days of "
    "the inpatient monitoring phase (lab_overdue's schedule for the analyte, ended earlier "
    "by a discharge: the last_followup event) and only when those days could change the "
    "grade; never for outpatient days.",
    "Today without a result yet is left out of the count (results may not be back); grades "
    "before day 30 are 'so far' (extra provisional_until_day 30).",
    "Censoring: the window ends on the day of the first progression, next_therapy or death "
    "event (that day included). The grader also ends it at last follow-up and calls a "
    "never-recovered period from days 0-3 grade 4 at an early death; neither is done here.",
    "A trailing run above threshold shorter than recovery_days at the end of the window is "
    "not counted (recovery not yet shown to fail).",
    "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
)


def spec(rule: Rule, g: EarlyGrading) -> RuleSpec:
    """The early rule `rule`, graded by `g`."""
    return RuleSpec(rule, judge=partial(judge, g), explain=partial(explain, g), by_instant=True,
                    thresholds_of=(OVERDUE_RULE.id,))  # its schedule, for the prompts

"""lab_overdue: an expected monitoring lab is missing (design rule, criteria [DESIGN]).

Default schedule: daily CBC with differential (WBC, ANC, ALC, haemoglobin, platelets),
ferritin, fibrinogen, AST and ALT on days 0-14 (IEC-HS consensus monitoring, criteria §1.2
Table 4: daily CBC with differential and fibrinogen, frequent hepatic tests). A site changes
it through the rule's thresholds (site config `[lab_overdue]`): `first_day`, `last_day`,
`lookback_days` and `every_<analyte>_days` (0 = not expected, 1 = daily, 2 = every other
day, ...).

A scheduled day is checked once it is complete (as of the end of that day). An analyte is
overdue for a checked day when no result was collected in the `every` days ending that day,
no later result has arrived since, and no reason was recorded for the gap (course.missing,
e.g. "not drawn", "haemolysed"). Only the `lookback_days` most recent completed days are
checked, so an old gap does not keep the flag up for ever.
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
from core.rules.frames import END_OF_DAY, Columns, Ward
from core.rules.tables import NONE, asof
from core.vocabulary.units import ANALYTES, Evidence

CBC = ("wbc", "anc", "alc", "hemoglobin", "platelets")
DEFAULT_DAILY = CBC + ("ferritin", "fibrinogen", "ast", "alt")
# a reason logged for one of these words covers every analyte it names
PANELS: dict[str, tuple[str, ...]] = {"cbc": CBC, "all": tuple(ANALYTES), "*": tuple(ANALYTES),
                                      "lft": ("ast", "alt", "bilirubin")}


D = Evidence.DESIGN
THRESHOLDS = (
    Threshold("first_day", 0, "day", D, "monitoring starts on this day", ">="),
    Threshold("last_day", 14, "day", D, "monitoring ends on this day", "<="),
    Threshold("lookback_days", 1, "days", D,
              "how many of the most recent completed days are checked", "<="),
    *(Threshold(f"every_{a}_days", int(a in DEFAULT_DAILY), "days", D,
                f"{known.name}: expected every N days (0 = not expected)", "<=")
      for a, known in ANALYTES.items()),
)


def every(t: Mapping[str, float], analyte: str) -> int:
    """Every how many days the schedule `t` (the rule's thresholds) expects the analyte (0 or
    less: not expected)."""
    return int(t.get(f"every_{analyte}_days", 0))


# --- the rule over a ward -------------------------------------------------------------------


def _reasons(ward: Ward, analyte: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recorded reasons that cover `analyte` (its own, or a panel word's that names it,
    PANELS): their positions in ward.missing, courses and days, sorted by (course, day)."""
    words = [str(w).strip().lower() for w in ward.missing["analyte"]]
    rows = np.flatnonzero([analyte in PANELS.get(w, (w,)) for w in words])
    return rows, ward.missing.key[rows], ward.missing.day[rows]


def _scan(ward: Ward, analyte: str, every: int, now: np.ndarray, lo: np.ndarray,
          hi: np.ndarray, first_day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The overdue days of every course-day at once: the checked days (lo..hi) after the
    last day covered, by a result collected in the `every` days ending on it (or later) or
    by a reason recorded for one of those days.

    Returns per course-day: the number of overdue days (hi and the days before it), the
    recorded reason that covers the last covered day when no result does (position in
    ward.missing, NONE; of several for the same days, the last by time), and the day the gap
    began (the first due day after the last result or recorded reason).
    """
    keys = ward.days["key"]
    last = ward.latest(analyte, ends=now)
    last_day = np.floor(np.r_[ward.labs.day, np.nan][last])  # the last result's ward day
    rows, r_keys, r_days = _reasons(ward, analyte)
    # the last reason recorded by now for a ward day up to hi, and its ward day
    r = np.minimum(asof(r_keys, r_days, keys, now),
                   asof(r_keys, r_days, keys, hi + 1.0, strict=True))
    r_day = np.floor(np.r_[r_days, np.nan][r])  # NaN for NONE
    drawn_to = last_day + every - 1  # the last day a result covers (NaN: none)
    excused_to = np.minimum(hi, r_day + every - 1)  # the last checked day a reason covers
    checked = np.isfinite(now) & (hi >= lo)
    first_overdue = np.fmax(np.fmax(drawn_to, excused_to) + 1, lo)
    count = np.where(checked, np.maximum(hi - first_overdue + 1, 0), 0).astype(np.int64)
    # a reason is shown when it, not a result, covers the last covered day
    excused = checked & (excused_to >= lo) & ~(drawn_to >= excused_to)
    reason = np.where(excused, np.r_[rows, NONE][r], NONE)
    known = np.fmax(r_day, last_day)
    began = np.where(np.isnan(known), first_day, known + every)
    start = np.where(count > 0, np.maximum(first_day, np.minimum(began, first_overdue)), np.nan)
    return count, reason, start


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per course-day: the checked days (lo..hi: the lookback_days most recent completed days
    within the schedule), per expected analyte the overdue days and the reason that excused
    a gap, and the status: met = any expected lab overdue, not evaluable = no "now"."""
    first_day, last_day = int(t["first_day"]), int(t["last_day"])
    now = ward.now()  # the course's now: its as-of instant, else its latest data day
    whole = np.floor(np.where(np.isfinite(now), now, 0.0))
    last_complete = np.where(now >= whole + END_OF_DAY, whole, whole - 1)  # whole days done
    lo = np.maximum(first_day, last_complete - int(t["lookback_days"]) + 1)
    hi = np.minimum(last_day, last_complete)
    out: dict[str, Any] = {"now": now, "lo": lo, "hi": hi}
    since = np.full(len(now), np.inf)
    for analyte in ANALYTES:  # the expected ones, in the catalogue's order
        if every(t, analyte) <= 0:
            continue
        count, reason, start = _scan(ward, analyte, every(t, analyte), now, lo, hi, first_day)
        out[f"overdue_{analyte}"], out[f"reason_{analyte}"] = count, reason
        since = np.where(count > 0, np.minimum(since, start), since)
    met = np.isfinite(since)
    out["status"] = status_where(met & np.isfinite(now), np.isfinite(now))
    out["since_day"] = np.where(met, since, np.nan)  # stable while the same gap lasts
    return out


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The finding of one course-day: the overdue labs by day in nurse words, and the
    recorded reasons that excused a gap."""
    extra: dict[str, object] = {"schedule": f"days {int(t['first_day'])}-{int(t['last_day'])}"}
    if not math.isfinite(row["now"]):
        return Finding(rule=RULE.id, status=Status.NOT_EVALUABLE, extra=extra)
    lo, hi = int(row["lo"]), int(row["hi"])
    if hi < lo:
        extra["in_schedule"] = False
        return Finding(rule=RULE.id, status=Status.NOT_MET, extra=extra)
    overdue: dict[str, list[int]] = {}
    explained: list[EvidenceItem] = []
    expected = [c.removeprefix("overdue_") for c in row if c.startswith("overdue_")]
    for analyte in expected:  # in the schedule's order, as judged
        if row[f"overdue_{analyte}"]:
            overdue[analyte] = list(range(hi - int(row[f"overdue_{analyte}"]) + 1, hi + 1))
        r = int(row[f"reason_{analyte}"])
        if r != NONE:
            day = math.floor(float(ward.missing["day"][r]))
            why = str(ward.missing["reason"][r]).replace("_", " ")
            explained.append(EvidenceItem(
                why=f"{ANALYTES[analyte].name} for day {day} not available: {why} (recorded)",
                analyte=analyte, day=float(day)))
    extra["explained"] = len(explained)
    if not overdue:
        return Finding(rule=RULE.id, status=Status.NOT_MET, evidence=explained, extra=extra)
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    for d in sorted({d for days in overdue.values() for d in days}):
        due = [a for a, days in overdue.items() if d in days]
        evidence += [EvidenceItem(why=f"no {ANALYTES[a].name} result for day {d}", analyte=a,
                                  day=float(d)) for a in due]
        names = ", ".join(ANALYTES[a].name for a in due)
        missing.append(f"day {d}: {names} (enter the result, or record why it was not drawn)")
    extra["overdue"] = overdue
    return Finding(rule=RULE.id, status=Status.MET, evidence=evidence + explained,
                   missing=missing, extra=extra)


RULE = Rule(
    id="lab_overdue",
    title="Expected monitoring lab missing",
    version="1.0",
    citation=Citation("CAR-T Watch design rule (monitoring per ASTCT IEC-HS consensus Table 4)",
                      "design.md rule table; criteria.md §1.2 (Table 4 monitoring), §12.1"),
    evidence=Evidence.DESIGN,
    severity=Severity.INFO,
    short_name="Lab overdue",
    thresholds=THRESHOLDS,
    inputs=DEFAULT_DAILY,
    choices=(
        "Default schedule: CBC with differential (WBC, ANC, ALC, Hb, platelets), ferritin, "
        "fibrinogen, AST, ALT daily on days 0-14.",
        "A day is checked once complete (as of the end of that day); the day in progress is "
        "never overdue. Without a finite as-of time, 'now' is the latest day with any data.",
        "lookback_days = 1: only the most recent completed scheduled day is checked; a later "
        "result (e.g. this morning's) clears an older gap.",
        "A recorded reason (course.missing) for the analyte, or for a panel word 'cbc', "
        "'lft' or 'all', keeps the rule quiet for that gap and is shown as evidence.",
        "Severity info: a data-completeness prompt for nurses, not a clinical flag.",
    ),
    description="Flags expected labs with no result and no recorded reason.",
)

RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, judge=judge, explain=explain, by_instant=True),)

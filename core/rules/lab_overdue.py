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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

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
from core.rules.ctcae import current_day
from core.rules.reading import END_OF_DAY, lab_series
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES, Evidence

VERSION = "1.0"
RULE_ID = "lab_overdue"
CBC = ("wbc", "anc", "alc", "hemoglobin", "platelets")
DEFAULT_DAILY = CBC + ("ferritin", "fibrinogen", "ast", "alt")
# a reason logged for one of these words covers every analyte it names
PANELS: dict[str, tuple[str, ...]] = {"cbc": CBC, "all": tuple(ANALYTES), "*": tuple(ANALYTES),
                                      "lft": ("ast", "alt", "bilirubin")}


@dataclass(frozen=True)
class MonitoringSchedule:
    """Which labs are expected on which days after infusion."""

    first_day: int = 0
    last_day: int = 14
    lookback_days: int = 1
    every: Mapping[str, int] = field(
        default_factory=lambda: {a: (1 if a in DEFAULT_DAILY else 0) for a in ANALYTES})

    @classmethod
    def from_thresholds(cls, t: Mapping[str, float]) -> MonitoringSchedule:
        return cls(
            first_day=int(t["first_day"]), last_day=int(t["last_day"]),
            lookback_days=int(t["lookback_days"]),
            every={a: int(t[f"every_{a}_days"]) for a in ANALYTES
                   if f"every_{a}_days" in t},
        )

    def expected(self) -> dict[str, int]:
        return {a: n for a, n in self.every.items() if n > 0}


DEFAULT_SCHEDULE = MonitoringSchedule()


def _thresholds(s: MonitoringSchedule) -> tuple[Threshold, ...]:
    d = Evidence.DESIGN
    rows = [
        Threshold("first_day", s.first_day, "day", d, "monitoring starts on this day", ">="),
        Threshold("last_day", s.last_day, "day", d, "monitoring ends on this day", "<="),
        Threshold("lookback_days", s.lookback_days, "days", d,
                  "how many of the most recent completed days are checked", "<="),
    ]
    for a, n in s.every.items():
        rows.append(Threshold(f"every_{a}_days", n, "days", d,
                              f"{ANALYTES[a].name}: expected every N days (0 = not expected)",
                              "<="))
    return tuple(rows)


THRESHOLDS = _thresholds(DEFAULT_SCHEDULE)


def schedule_overrides(table: Mapping[str, Any]) -> dict[str, float]:
    """Threshold overrides for lab_overdue from a site `[lab_overdue]` TOML table.

    Accepts `first_day`, `last_day`, `lookback_days`, `every_<analyte>_days`, and two
    shorthands: `daily = ["anc", "crp", ...]` (exactly these daily, the others not expected)
    and `every = {ferritin = 2}`. Raises ValueError naming an unknown key or analyte.
    """
    out: dict[str, float] = {}
    known = {t.key for t in THRESHOLDS}

    def analyte(code: object) -> str:
        if str(code) not in ANALYTES:
            raise ValueError(f"[lab_overdue] names unknown analyte {code!r}; "
                             f"known: {', '.join(ANALYTES)}")
        return str(code)

    for key, value in table.items():
        if key == "daily":
            chosen = {analyte(a) for a in value}
            out.update({f"every_{a}_days": float(a in chosen) for a in ANALYTES})
        elif key == "every":
            out.update({f"every_{analyte(a)}_days": float(n) for a, n in value.items()})
        elif key in known:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"[lab_overdue] {key} must be a number, not {value!r}")
            out[key] = float(value)
        else:
            raise ValueError(f"[lab_overdue] has unknown key {key!r}; accepted: daily, every, "
                             f"{', '.join(sorted(known))}")
    return out


def _reasons(course: Course) -> dict[str, list[tuple[float, int, str]]]:
    """(day, ward day, reason) of recorded gaps per analyte, panels expanded, as of the
    course's as-of instant, in the order recorded."""
    out: dict[str, list[tuple[float, int, str]]] = {}
    m = course.missing
    if not len(m):
        return out
    for analyte, day, reason in zip(m["analyte"].astype(str), m["day"].astype(float),
                                    m["reason"].astype(str), strict=True):
        if day > course.as_of_day:
            continue
        key = analyte.strip().lower()
        for a in PANELS.get(key, (key,)):
            out.setdefault(a, []).append((day, math.floor(day), reason))
    return out


def _label(analyte: str) -> str:
    a = ANALYTES.get(analyte)
    return a.name if a else analyte


def _finding(sched: MonitoringSchedule, now: float,
             last_result: Callable[[str], float | None],
             reasons: Mapping[str, list[tuple[float, int, str]]]) -> Finding:
    """The finding as of `now`.

    `last_result(analyte)` is the ward day of the latest result collected by `now` (None:
    none yet); `reasons` may hold gaps recorded after `now`, which are ignored.
    """
    extra: dict[str, object] = {"schedule": f"days {sched.first_day}-{sched.last_day}"}
    if not math.isfinite(now):
        return Finding(rule=RULE_ID, status=Status.NOT_EVALUABLE, extra=extra)
    # completed days: the whole day lies at or before the as-of instant
    last_complete = math.floor(now) if now >= math.floor(now) + END_OF_DAY else \
        math.floor(now) - 1
    lo = max(sched.first_day, last_complete - sched.lookback_days + 1)
    hi = min(sched.last_day, last_complete)
    if hi < lo:
        extra["in_schedule"] = False
        return Finding(rule=RULE_ID, status=Status.NOT_MET, extra=extra)
    overdue: dict[str, list[int]] = {}
    gap_start: dict[str, int] = {}
    explained: list[EvidenceItem] = []
    for analyte, every in sched.expected().items():
        last = last_result(analyte)
        gaps = [(rd, r) for day, rd, r in reasons.get(analyte, ()) if day <= now]
        for d in range(hi, lo - 1, -1):
            if last is not None and last >= d - every + 1:  # a result in the window or later
                break
            why = [(rd, r) for rd, r in gaps if d - every + 1 <= rd <= d]
            if why:
                rd, r = why[-1]
                explained.append(EvidenceItem(
                    why=f"{_label(analyte)} for day {rd} not available: "
                        f"{r.replace('_', ' ')} (recorded)", analyte=analyte, day=float(rd)))
                break
            overdue.setdefault(analyte, []).append(d)
            # the gap began on the first due day after the last result or recorded reason
            known = [rd for rd, _ in gaps if rd <= d] + ([] if last is None else [last])
            start = int(max(known)) + every if known else sched.first_day
            gap_start[analyte] = max(sched.first_day, min(start, d))
    extra["explained"] = len(explained)
    if not overdue:
        return Finding(rule=RULE_ID, status=Status.NOT_MET, evidence=explained, extra=extra)
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    by_day: dict[int, list[str]] = {}
    for analyte, days_ in overdue.items():
        for d in days_:
            by_day.setdefault(d, []).append(analyte)
    for d in sorted(by_day):
        names = ", ".join(_label(a) for a in by_day[d])
        evidence += [EvidenceItem(why=f"no {_label(a)} result for day {d}", analyte=a,
                                  day=float(d)) for a in by_day[d]]
        missing.append(f"day {d}: {names} (enter the result, or record why it was not drawn)")
    since = float(min(gap_start.values()))  # stable while the same gap lasts
    extra["overdue"] = {a: sorted(ds) for a, ds in overdue.items()}
    return Finding(rule=RULE_ID, status=Status.MET, since_day=since, evidence=evidence + explained,
                   missing=missing, extra=extra, episode_key=f"since-day-{int(since)}")


def evaluate(course: Course, t: Thresholds) -> Finding:
    def last_result(analyte: str) -> float | None:
        src = lab_series(course, analyte)
        k = 0 if src is None else src.count(course.as_of_day)
        return None if src is None or k == 0 else math.floor(src.days[k - 1])

    return _finding(MonitoringSchedule.from_thresholds(t), current_day(course), last_result,
                    _reasons(course))


def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
    """`evaluate` as of the end of each of `days`, in one pass.

    The schedule and the recorded reasons are read once; one pointer per analyte walks its
    results as the days advance, so each day only looks at the latest result known.
    """
    sched = MonitoringSchedule.from_thresholds(t)
    reasons = _reasons(course)
    series = {a: lab_series(course, a) for a in sched.expected()}
    known = dict.fromkeys(series, 0)  # results of each analyte known so far
    now = -math.inf

    def last_result(analyte: str) -> float | None:
        src, k = series[analyte], known[analyte]
        if src is None:
            return None
        while k < len(src.days) and src.days[k] <= now:
            k += 1
        known[analyte] = k
        return None if k == 0 else math.floor(src.days[k - 1])

    out = []
    for day in days:
        now = min(day + END_OF_DAY, course.as_of_day)  # a day view's as-of instant
        out.append(_finding(sched, now, last_result, reasons))
    return out


RULE = Rule(
    id=RULE_ID,
    title="Expected monitoring lab missing",
    version=VERSION,
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

RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, evaluate, replay),)

"""What the HLH-type rules share: evidence and status shorthands, the criterion item, and
reading a course as of any instant (inputs located by bisection, findings cached by the
positions that decide them) with `daily_rule`, the spec every rule here uses; `ctcae_rule`
(the CTCAE rule of an analyte) serves cartox and iec_hs.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from core.rules.base import (
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Status,
    Thresholds,
)
from core.rules.reading import Obs, ObsSeries, Value, course_index, end_of_day
from core.rules.stretches import DailyRule, dated, day_series, memo
from core.vocabulary.course import Course
from core.vocabulary.units import Evidence

C2, U, D = Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
MET, NOT_MET, NE = Status.MET, Status.NOT_MET, Status.NOT_EVALUABLE
WORD = {s: str(s) for s in Status}  # str(status), without the enum machinery per call


@dataclass(slots=True)
class Item:
    status: Status
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: str | None = None


# --- Reading a course as of any instant ---------------------------------------------------------
# A replay asks for every rule as of the end of every day, and evaluate walks back over earlier
# days to find since_day. So each rule's finding is computed from the positions of the few
# values that decide it (the latest ferritin, the day's highest temperature, the worst grade...):
# an `Input` locates such a value as of an instant (bisection; vectorised over all days of a
# replay), and `DayFindings` caches findings, and items inside them, by those positions. A
# finding is rebuilt only when a value that decides it changes, an item only when its own do.
# Nothing here reads `course.as_of_day`: callers pass instants already cut at it, so one
# `DayFindings` (memoised on the course index) serves the full course and every day view of it.

R = TypeVar("R")


class Input:
    """One input of a rule: the days of a series and, for each count n of its values known at
    an instant, the position of the value that decides the rule (the latest, n - 1, unless
    `table` says otherwise); values after `cap` never count."""

    __slots__ = ("days", "table", "cap")

    def __init__(self, days: list[float] | None, table: list[int] | None = None,
                 cap: float = math.inf) -> None:
        self.days, self.table, self.cap = days or [], table, cap

    def at(self, end: float) -> int:
        n = bisect.bisect_right(self.days, min(end, self.cap))
        return n - 1 if self.table is None else self.table[n]

    def over(self, ends: np.ndarray) -> list[int]:
        """`at` for each of `ends`, in one vectorised step."""
        n = np.searchsorted(np.asarray(self.days, dtype=float), np.minimum(ends, self.cap),
                            side="right")
        return (n - 1 if self.table is None else np.asarray(self.table, dtype=np.int64)[n]
                ).tolist()


class Reader:
    """One course's lab and observation series for a rule's builder, and its item cache."""

    def __init__(self, course: Course) -> None:
        idx = course_index(course)
        self.labs, self.obs = idx.labs, idx.obs
        self.items: dict[tuple, Any] = {}

    def lab_input(self, analyte: str, table: list[int] | None = None,
                  cap: float = math.inf) -> Input:
        s = self.labs.get(analyte)
        return Input(None if s is None else s.days, table, cap)

    def obs_input(self, kind: str, table: list[int] | None = None) -> Input:
        s = self.obs.get(kind)
        return Input(None if s is None else s.days, table)

    def lab(self, analyte: str, i: int) -> Value | None:
        """Value number `i` of `analyte` (None for -1)."""
        return None if i < 0 else self.labs[analyte].at(i)

    def observation(self, kind: str, i: int) -> Obs | None:
        """Observation number `i` of `kind` (None for -1)."""
        if i < 0:
            return None
        s = self.obs[kind]
        num = s.nums[i]
        return Obs(kind, s.days[i], None if num != num else num, s.texts[i])

    def day_max_temperature(self, j: int) -> Obs | None:
        """The highest temperature of the day of temperature `j`, up to it (None for -1)."""
        return None if j < 0 else self.observation("temperature",
                                                   _day_max(self.obs["temperature"], j))

    def item(self, key: tuple, build: Callable[..., R], *args: Any) -> R:
        """build(*args): an item of a finding, cached by its name and the positions it reads."""
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = build(*args)
        return found


class Cells(Generic[R]):
    """build(j) for each position j of one input (-1: no value), built on first use."""

    __slots__ = ("build", "cells")

    def __init__(self, of: Input, build: Callable[[int], R]) -> None:
        self.build = build
        self.cells: list[R | None] = [None] * (len(of.days) + 1)

    def __call__(self, j: int) -> R:
        c = self.cells[j + 1]
        if c is None:
            c = self.cells[j + 1] = self.build(j)
        return c


# A rule's builder: its inputs, and its finding from the positions they give (in that order).
Builder = tuple[list[Input], Callable[..., Finding]]


class DayFindings:
    """A rule's finding on one course as of any instant, cached by the positions its inputs
    give (cached findings are shared, read-only: stretches.dated copies one to give it a met
    stretch)."""

    def __init__(self, builder: Builder) -> None:
        self.inputs, self.build = builder
        self.cache: dict[tuple, Finding] = {}

    def _get(self, key: tuple) -> Finding:
        f = self.cache.get(key)
        if f is None:
            f = self.cache[key] = self.build(*key)
        return f

    def at(self, end: float) -> Finding:
        return self._get(tuple(i.at(end) for i in self.inputs))

    def over(self, ends: Sequence[float]) -> list[Finding]:
        """`at` for each of `ends` (ascending): positions located for all at once, and a day
        whose positions equal the previous day's reuses its finding."""
        cols = [i.over(np.asarray(ends, dtype=float)) for i in self.inputs]
        out: list[Finding] = []
        last_key: tuple | None = None
        last: Finding | None = None
        for key in zip(*cols, strict=True):
            if key != last_key:
                last_key, last = key, self._get(key)
            assert last is not None  # set at the first key (last_key starts as None)
            out.append(last)
        return out


def day_findings(course: Course, key: tuple, builder: Callable[[Reader], Builder]
                 ) -> DayFindings:
    """The rule's `DayFindings` for this course (built once per course and key)."""
    return memo(course, ("hlh_findings", *key), lambda: DayFindings(builder(Reader(course))))


def running_max(keys: Sequence[float | None], start: int = 0) -> list[int]:
    """best[n] = index of the first maximum of keys[start:n] (None skipped; -1 if none), for
    every count n = 0..len(keys), as max() would pick it."""
    best, cur, cur_key = [-1], -1, 0.0
    for i, k in enumerate(keys):
        if i >= start and k is not None and (cur < 0 or k > cur_key):
            cur, cur_key = i, k
        best.append(cur)
    return best


def _day_max(s: ObsSeries, j: int) -> int:
    """The index of the highest temperature of the ward day of temperature `j`, among those
    logged up to it (the first of equals; an unrecorded number counts as lowest)."""
    def key(i: int) -> float:
        return s.nums[i] if s.nums[i] == s.nums[i] else -math.inf  # NaN = no number

    best = bisect.bisect_left(s.days, float(math.floor(s.days[j])))
    best_key = key(best)
    for i in range(best + 1, j + 1):
        if key(i) > best_key:
            best, best_key = i, key(i)
    return best


def daily_rule(rule: Rule, findings: Callable[[Course, Thresholds], DayFindings]
               ) -> RuleSpec:
    """The rule's spec: evaluate (a DailyRule) and a one-pass replay, both reading the course
    through `findings(course, t)`."""
    per_day = DailyRule(rule, lambda course, d, t: findings(course, t).at(
        min(end_of_day(d), course.as_of_day)))

    def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        over = findings(course, t).over
        return [dated(f, since)
                for _, f, since in day_series(course, days, lambda _, ends: over(ends))]

    return RuleSpec(rule, per_day.evaluate, replay)


_CTCAE_RULES: dict[str, Rule] = {}


def ctcae_rule(analyte: str) -> Rule:
    """The ctcae_<analyte> rule, whose thresholds in force grade the organ items."""
    rule = _CTCAE_RULES.get(analyte)
    if rule is None:
        from core.rules import ctcae

        rule = _CTCAE_RULES[analyte] = next(
            s.rule for s in ctcae.RULES if s.rule.id == f"ctcae_{analyte}")
    return rule

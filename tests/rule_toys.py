"""Toy rules for tests of the engine's callers (alerts, evaluation, backtest), written course
by course: `course_rule` judges a function of a Course on each course-day, on the course as
known at that day's end. Not clinical rules, and not how the catalogue's rules are written
(they judge a whole ward by columns, core/rules/frames.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from core.rules.base import Finding, Rule, RuleSpec, Thresholds
from core.rules.frames import Columns, Ward
from core.rules.tables import SORTED_BY
from core.vocabulary.course import Course


def course_of(ward: Ward, key: int) -> Course:
    """Course `key` of the ward, with frames of its own, made from the ward's tables."""
    return Course(patient=ward.patients[key], as_of_day=float(ward.as_of_days[key]),
                  tz=ward.tz, **{name: getattr(ward, name).frame_of(key) for name in SORTED_BY})


def course_rule(rule: Rule, evaluate: Callable[[Course, Thresholds], Finding]) -> RuleSpec:
    """`rule` judged by `evaluate(course as known at each day's end, t)`; its findings keep
    their own since_day (a course-level rule says when its condition began)."""

    def judge(ward: Ward, t: Thresholds) -> Columns:
        courses = [course_of(ward, k) for k in range(len(ward))]
        found = [evaluate(courses[k].until(end), t)
                 for k, end in zip(ward.days["key"].tolist(), ward.days["end"].tolist(),
                                   strict=True)]
        return {"status": [f.status.value for f in found],
                "since_day": np.array([np.nan if f.since_day is None else f.since_day
                                       for f in found], dtype=float),
                "finding": np.fromiter(found, dtype=object, count=len(found))}

    def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
        return row["finding"]

    return RuleSpec(rule, judge=judge, explain=explain)

"""The one-pass replay hook of supportive_thresholds equals
evaluating the rule on the course cut at the end of each day, on hand-made courses that
reach the corners the sample cohort may not: baselines that move before day 1, missing and
unusual reference ranges, recorded reasons for gaps, finite (and mid-day) as-of instants,
non-contiguous and negative replay days, and site overrides."""

from __future__ import annotations

import math
from datetime import date

import pytest

from core.rules import lab_overdue, supportive
from core.rules.catalog import all_specs
from core.rules.engine import _run, day_view, replay_days, thresholds_for
from core.rules.reading import END_OF_DAY
from core.vocabulary.course import Course, make_course

SPECS = [*supportive.RULES]
HOOKED = [s for s in SPECS if s.replay is not None]


def _fresh(course: Course) -> Course:
    return Course(patient=course.patient, labs=course.labs, observations=course.observations,
                  episodes=course.episodes, treatments=course.treatments,
                  events=course.events, missing=course.missing,
                  as_of_day=course.as_of_day, tz=course.tz)


def _key(f) -> tuple:  # noqa: ANN001
    return (f.to_json(), f.episode_key, f.since_day, f.grade)


def _hooked(spec, course, ts, days) -> list[tuple]:  # noqa: ANN001
    course = _fresh(course)
    object.__setattr__(course, "_cw_thresholds", ts)
    return [_key(f) for f in spec.replay(course, ts[spec.rule.id], days)]


def _per_day(spec, course, ts, days) -> list[tuple]:  # noqa: ANN001
    course = _fresh(course)
    out = []
    for day in days:
        view = day_view(course, day + END_OF_DAY)
        object.__setattr__(view, "_cw_thresholds", ts)
        out.append(_key(_run(spec, view, ts[spec.rule.id])))
    return out


LD = {"infusion_date": date(2026, 1, 6), "lymphodepletion_start": date(2026, 1, 1)}


def _labs(analyte: str, days: list[float], values: list[float], *ref) -> list[tuple]:
    return [(analyte, d, v, *ref) for d, v in zip(days, values, strict=True)]


COURSES = {
    # baseline moves: lymphodepletion day -5, values before and after it and before day 1
    "baseline-moves-before-day-1": make_course(
        labs=[*_labs("ast", [-7, -5.25, -3, 0.4, 0.9, 2.3, 2.6, 5.1, 9.2],
                     [30, 90, 45, 130, 260, 900, 40, 170, 35], 10, 40),
              *_labs("creatinine", [-6, -2, 0.5, 3.3, 6.1], [0.8, 1.0, 2.7, 3.4, 0.9]),
              *_labs("fibrinogen", [-6, -1, 1.5, 2.5, 4.5, 6.5], [350, 300, 140, 90, 40, 210]),
              *_labs("bilirubin", [-4, 0.2, 3.2], [1.6, 2.0, 5.0], 0.1, 1.2)],
        **LD),
    "no-lymphodepletion-day": make_course(
        labs=[*_labs("alt", [-2, 0.5, 0.95, 1.2, 4.4], [80, 200, 20, 300, 45], 5, 40),
              *_labs("anc", [-3, 1.1, 2.1, 3.1, 7.5, 12.2], [2.0, 0.4, 0.05, 0.6, 1.2, 3.1])]),
    # reference limits missing (NaN) on some rows: the catalogue default applies or the
    # value cannot be graded
    "ranges-missing": make_course(
        labs=[("alc", -1, 0.9, math.nan, math.nan), ("alc", 2.2, 0.3, math.nan, math.nan),
              ("platelets", -1, 150), ("platelets", 3.4, 40), ("platelets", 3.6, 60),
              ("hemoglobin", 1.1, 7.5), ("hemoglobin", 6.2, 9.9),
              ("triglycerides", 4.4, 420), ("triglycerides", 11.0, 120),
              ("wbc", 0.3, 0.8), ("wbc", 5.3, 4.4)]),
    "finite-mid-day-as-of": make_course(
        labs=[*_labs("anc", [-4, 0.2, 1.5, 2.5, 3.5, 4.5], [3.0, 1.1, 0.3, 0.2, 0.9, 2.0]),
              *_labs("ferritin", [0.2, 1.2, 2.2, 3.2, 4.2], [500, 800, 900, 1000, 950])],
        as_of_day=3.4),
    "lab-gaps-with-reasons": make_course(
        labs=[(a, d + 0.3, 1.0) for d in range(0, 12) for a in lab_overdue.DEFAULT_DAILY
              if not (a == "ferritin" and 3 <= d <= 6) and not (a == "anc" and d in (8, 9))
              and not (a in lab_overdue.CBC and d == 10) and (a, d) != ("fibrinogen", 6)],
        # the last reason is recorded after the end of day 6 (as the day view cuts it)
        missing=[("ferritin", 4, "haemolysed"), ("cbc", 10, "not_drawn"),
                 ("anc", 9.8, "not_drawn"), ("ferritin", 4.5, "lost"),
                 ("fibrinogen", 6.9999995, "clotted")],
        as_of_day=12.5),
    "iec-hs-episode": make_course(
        labs=[*_labs("hemoglobin", [1.2, 3.2, 5.2], [8.0, 6.5, 7.4]),
              *_labs("fibrinogen", [1.2, 3.2, 5.2], [200, 140, 90]),
              *_labs("platelets", [1.2, 3.2, 5.2], [80, 45, 30])],
        observations=[("bleeding", 3.5, 1), ("bleeding", 5.5, 0)],
        episodes=[("IEC-HS", None, 2.0, 6.0)]),
    "empty": make_course(),
}

DAY_LISTS = {
    "replay-days": None,
    "gaps-and-negative-days": [-6, -2, 0, 1, 3, 4, 7, 8, 13],
}


def _overrides(spec) -> list[dict | None]:  # noqa: ANN001
    t = spec.rule.thresholds[0]
    out: list[dict | None] = [None, {spec.rule.id: {t.key: t.value * 2 if t.value < 1
                                                     else t.value / 2}}]
    return out


@pytest.mark.parametrize("days_id", DAY_LISTS)
@pytest.mark.parametrize("course_id", COURSES)
@pytest.mark.parametrize("spec", HOOKED, ids=[s.rule.id for s in HOOKED])
def test_replay_hook_equals_evaluating_each_day(spec, course_id, days_id):
    course = COURSES[course_id]
    days = DAY_LISTS[days_id]
    days = list(replay_days(_fresh(course))) if days is None else days
    for overrides in _overrides(spec):
        ts = thresholds_for(all_specs(), overrides)
        assert _hooked(spec, course, ts, days) == _per_day(spec, course, ts, days), overrides


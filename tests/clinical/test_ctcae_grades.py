"""The ctcae_<analyte> rules over whole courses: each replayed day agrees with evaluating the
course as of that day, and since_day is the first result of the unbroken run."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import date

import pytest

from bench.replay_rules import build_courses
from core.rules import ctcae
from core.rules.base import Status
from core.rules.ctcae.grading import _KEYS
from core.rules.engine import evaluate_course, evaluate_courses, replay_course
from core.rules.frames import END_OF_DAY
from core.vocabulary.course import Course, make_course
from core.vocabulary.units import ANALYTES


def _messy(i: int, rng: random.Random) -> Course:
    """A course whose values sit near the cuts, with missing limits, ties and a baseline
    before or without a lymphodepletion day."""
    labs = []
    for a in ctcae.ANALYTES_GRADED:
        days = sorted(round(rng.uniform(-9, 20), 1) for _ in range(rng.randint(0, 10)))
        for d in days + days[-1:] * (rng.random() < 0.3):
            cat = ANALYTES[a]
            lo, hi = cat.ref_low or math.nan, cat.ref_high or math.nan
            r = rng.random()
            lo, hi = ((math.nan, math.nan) if r < 0.15 else (math.nan, hi) if r < 0.22
                      else (lo, math.nan) if r < 0.28 else (lo, hi))
            ref = next(x for x in (cat.ref_high, cat.ref_low, 100.0) if x)
            factor = rng.choice([0.1, 0.25, 0.5, 0.75, 1.0, 1.01, 1.5, 3, 5, 20, 21])
            labs.append((a, d, round(ref * factor * rng.uniform(0.97, 1.03), 3), lo, hi))
    ld = rng.choice([None, date(2026, 1, 1), date(2026, 1, 3)])
    return make_course(patient_id=f"M{i}", labs=labs, infusion_date=date(2026, 1, 6),
                       **({"lymphodepletion_start": ld} if ld else {}))


@pytest.fixture(scope="module")
def courses() -> list[Course]:
    rng = random.Random(15)
    return build_courses(8, 30, seed=4) + [_messy(i, rng) for i in range(40)]


def test_the_grade_keys_cover_every_threshold_the_rules_declare():
    keys = {k for ks in _KEYS.values() for _, k in ks}
    for analyte, rows in ctcae.CTCAE_THRESHOLDS.items():
        assert {t.key for t in rows} <= keys, analyte


@pytest.mark.parametrize("overrides", [None, {"ctcae_anc": {"abs_g3": 1.2},
                                              "ctcae_ast": {"base_g1": 1.2},
                                              "ctcae_fibrinogen": {"drop_g2": 10.0}}],
                         ids=["defaults", "overrides"])
def test_each_replayed_day_equals_evaluating_as_of_that_day(courses, overrides):
    """A day's row (results graded against the baseline known at its end) is the finding of
    the course evaluated as of that instant."""
    for course in courses[::3]:
        replayed = replay_course(course, ctcae.RULES, overrides)
        assert replayed
        cut = [replace(course, as_of_day=min(day + END_OF_DAY, course.as_of_day))
               for day, _ in replayed]
        evaluated = evaluate_courses(cut, ctcae.RULES, overrides)  # one ward of all the days
        for (day, found), then in zip(replayed, evaluated, strict=True):
            assert [(f.to_json(), f.episode_key) for f in found] == \
                   [(f.to_json(), f.episode_key) for f in then], (course.patient, day)


# (labs, as_of_day, status, grade, since_day, max_grade_in_run); labs (day, value, LLN, ULN)
RUNS = [
    pytest.param([(2, 40, 150, 400), (3, 60, 150, 400), (4, 30, 150, 400)], 9.5,
                 Status.MET, 3, 2.0, 3, id="run-of-three-since-the-first"),
    pytest.param([(2, 20, 150, 400), (3, 60, 150, 400)], 9.5,
                 Status.MET, 2, 2.0, 4, id="max-grade-is-the-worst-of-the-run"),
    pytest.param([(2, 40, 150, 400), (3, 120, math.nan, 400), (4, 30, 150, 400)], 9.5,
                 Status.MET, 3, 4.0, 3, id="a-result-not-gradable-ends-the-run"),
    pytest.param([(2, 40, 150, 400), (3, 120, math.nan, 400)], 9.5,
                 Status.NOT_EVALUABLE, None, None, None, id="latest-not-gradable"),
    pytest.param([(2.8, 40, 150, 400), (3.6, 30, 150, 400)], 3.5,
                 Status.MET, 3, 2.0, 3, id="as-of-before-the-second-result"),
    pytest.param([(-0.5, 40, 150, 400)], 9.5, Status.MET, 3, -1.0, 3,
                 id="since-is-the-floor-of-a-negative-day"),
]


@pytest.mark.parametrize("labs, as_of, status, grade, since, worst", RUNS)
def test_since_day_is_the_first_result_of_the_unbroken_run(labs, as_of, status, grade, since,
                                                           worst):
    spec = next(s for s in ctcae.RULES if s.rule.id == "ctcae_platelets")
    course = make_course(labs=[("platelets", *row) for row in labs], as_of_day=as_of)
    f = evaluate_course(course, [spec])[0]
    assert (f.status, f.grade, f.since_day, f.extra.get("max_grade_in_run")) == (
        status, grade, since, worst)
    assert type(f.since_day) is (float if since is not None else type(None))

"""The ward frames the columnar rules read: as-of mapping, baselines, grid, met stretch.

Each is checked against the course-by-course readers it replaces (core.rules.reading and
core.rules.stretches), on synthetic courses, at every grid row.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from bench.replay_rules import build_courses
from core.rules.base import Status
from core.rules.engine import replay_days
from core.rules.frames import NONE, Ward, asof, met_since
from core.rules.reading import baseline, course_index, latest_observation, latest_until
from core.rules.stretches import day_view, evaluated_day, met_since_days
from core.vocabulary.course import make_course


@pytest.fixture(scope="module")
def courses():
    made = build_courses(6, 12, seed=5)
    made[1] = replace(made[1], as_of_day=4.5)
    made[2] = replace(made[2], patient=replace(made[2].patient,
                                              lymphodepletion_start=date(2025, 12, 26)))
    made.append(make_course())  # no data at all
    made.append(make_course(events=[("discharge", 3.5)], as_of_day=9.0))  # events only
    made.append(make_course(labs=[("ferritin", -3.2, 400), ("ferritin", 0.5, 500),
                                  ("ferritin", 0.5, 650)], as_of_day=-1.0))
    return made


@pytest.mark.parametrize(("strict", "want"), [
    # rows (key, day): (0, 1), (0, 2), (1, 0.5); queries at those instants
    (False, [NONE, 0, 1, 1, NONE, 2, NONE]),
    (True, [NONE, NONE, 0, 1, NONE, NONE, NONE]),
])
def test_asof_finds_the_latest_row_of_the_same_key(strict, want):
    rows_k, rows_d = np.array([0, 0, 1]), np.array([1.0, 2.0, 0.5])
    keys = np.array([0, 0, 0, 0, 1, 1, 2])
    ends = np.array([0.5, 1.0, 2.0, 9.0, 0.0, 0.5, 5.0])
    assert asof(rows_k, rows_d, keys, ends, strict=strict).tolist() == want


@pytest.mark.parametrize("evaluating", [True, False])
def test_grid_runs_from_the_first_data_day_to_the_evaluated_day(courses, evaluating):
    ward = Ward.of(courses, evaluating=evaluating)
    g = ward.days
    for key, course in enumerate(courses):
        mine = g[g["key"] == key]
        assert mine["day"].iloc[-1] == evaluated_day(course)
        assert set(replay_days(course)) <= set(mine["day"])
        first = course_index(course).first_day()
        if math.isfinite(first):
            assert mine["day"].iloc[0] == min(math.floor(first), evaluated_day(course))
        if evaluating:
            assert mine["end"].iloc[-1] == course.as_of_day
    replayed = ward.days.iloc[ward.replay_rows()]
    for key, course in enumerate(courses):
        assert replayed[replayed["key"] == key]["day"].tolist() == list(replay_days(course))


def test_an_analyte_no_course_has_is_never_known(courses):
    ward = Ward.of(courses)
    assert (ward.latest("il6") == NONE).all() and (ward.baseline("il6") == NONE).all()
    assert (ward.latest_observation("no_such_kind") == NONE).all()


@pytest.mark.parametrize("analyte", ["ferritin", "anc", "crp"])
def test_latest_and_baseline_are_those_known_at_each_rows_end(courses, analyte):
    ward = Ward.of(courses, evaluating=False)
    latest, base = ward.latest(analyte), ward.baseline(analyte)
    seen_base = 0
    for i, (key, end) in enumerate(zip(ward.days["key"], ward.days["end"], strict=True)):
        course = courses[key]
        want = latest_until(course, analyte, end)
        got = latest[i]
        assert (got == NONE) == (want is None)
        if want is not None:
            assert ward.labs["key"].iat[got] == key
            assert (ward.lab_days[got], ward.lab_values[got]) == (want.day, want.value)
        want_b = baseline(day_view(course, end), analyte)
        assert (base[i] == NONE) == (want_b is None)
        if want_b is not None:
            seen_base += 1
            assert (ward.lab_days[base[i]], ward.lab_values[base[i]]) == (want_b.day,
                                                                          want_b.value)
            ev = ward.lab_evidence(int(base[i]), "baseline")
            assert ev == want_b.evidence("baseline")
    assert seen_base  # the table exercised baselines


def test_met_stretch_is_the_course_by_course_one(courses):
    rng = random.Random(3)
    ward = Ward.of(courses, evaluating=False)
    statuses = [rng.choice(list(Status)) for _ in range(len(ward.days))]
    since = met_since(ward.days, np.array([s.value for s in statuses], dtype=object))
    for key, course in enumerate(courses):
        rows = np.flatnonzero(ward.days["key"].to_numpy() == key)
        days = ward.days["day"].to_numpy()[rows].tolist()
        by_day = dict(zip(days, (statuses[r] for r in rows), strict=True))
        want = met_since_days(course, days, lambda d, by_day=by_day: by_day[d])
        got = [None if math.isnan(x) else int(x) for x in since[rows]]
        assert got == want, course.patient.patient_id


@pytest.mark.parametrize("kind", ["temperature", "oxygen_device", "hypotension"])
def test_latest_observation_and_its_evidence_are_the_readers(courses, kind):
    ward = Ward.of(courses, evaluating=False)
    latest = ward.latest_observation(kind)
    seen = 0
    for i, (key, end) in enumerate(zip(ward.days["key"], ward.days["end"], strict=True)):
        want = latest_observation(courses[key], kind, end)
        assert (latest[i] == NONE) == (want is None)
        if want is not None:
            seen += 1
            assert ward.observation_evidence(int(latest[i]), "x") == want.evidence("x")
    assert seen

"""Every rule's one-pass `replay` hook equals evaluating that rule on each day's cut course.

The hooks exist for speed only (bench/replay_vs_read.py). This test holds them to the
per-day definition over the synthetic sample cohort, the benchmark's synthetic courses and
hand-made edge cases, with the catalogue defaults and with a site override, so a hook can
never change what a backtest reports.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from core.rules.catalog import all_specs
from core.rules.engine import _run, day_view, replay_course, replay_days, thresholds_for
from core.rules.reading import END_OF_DAY
from core.store.db import make_engine, session_scope
from core.store.loading import load_courses
from core.vocabulary.course import Course, make_course

ROOT = Path(__file__).resolve().parents[2]
HOOKED = [s for s in all_specs() if s.replay is not None]


def _fresh(course: Course) -> Course:
    """The same data as a new Course object (no caches shared with the hook's run)."""
    return Course(patient=course.patient, labs=course.labs, observations=course.observations,
                  episodes=course.episodes, treatments=course.treatments,
                  events=course.events, missing=course.missing,
                  as_of_day=course.as_of_day, tz=course.tz)


def _key(f) -> tuple:  # noqa: ANN001
    return (f.to_json(), f.episode_key)


def _per_day(course: Course, spec, ts, days) -> list[tuple]:  # noqa: ANN001
    course = _fresh(course)
    out = []
    for day in days:
        view = day_view(course, day + END_OF_DAY)
        object.__setattr__(view, "_cw_thresholds", ts)
        out.append(_key(_run(spec, view, ts[spec.rule.id])))
    return out


def _synthetic() -> list[Course]:
    sys.path.insert(0, str(ROOT))
    from bench.replay_rules import synthetic_course

    rng = random.Random(7)
    return [synthetic_course(i, 45, rng) for i in range(12)]


def _edge_cases() -> list[Course]:
    return [
        make_course(),
        make_course(labs=[("ferritin", 3.4, 900)]),
        make_course(observations=[("temperature", 1.2, 39.1)]),
        make_course(labs=[("anc", -6, 2.0), ("anc", 2.5, 0.3), ("anc", 9.5, 0.4),
                          ("anc", 30.2, 0.2), ("platelets", 30.2, 15)],
                    events=[("progression", 20.0)]),
        make_course(labs=[("ferritin", -5, 300), ("ferritin", 6.3, 12000),
                          ("ferritin", 8.3, 30000)],
                    observations=[("temperature", d + 0.2, 39.0) for d in range(1, 6)],
                    episodes=[("CRS", 2, 1, 5)], treatments=[("tocilizumab", 2.4)]),
    ]


@pytest.fixture(scope="module")
def courses(tmp_path_factory) -> list[Course]:  # noqa: ANN001
    from tests.sample_db import build_sample_db

    url = build_sample_db(tmp_path_factory.mktemp("hooks") / "sample.db")
    engine = make_engine(url)
    with session_scope(engine) as s:
        sample = load_courses(s, "Europe/Berlin", active_only=False)
    engine.dispose()
    return sample + _synthetic() + _edge_cases()


def _site_override(spec) -> dict:  # noqa: ANN001
    """A different value for the rule's first threshold (half or double its default)."""
    t = spec.rule.thresholds[0]
    return {spec.rule.id: {t.key: t.value * 2 if t.value < 1 else t.value / 2}}


@pytest.mark.parametrize("overridden", [False, True], ids=["defaults", "site-override"])
@pytest.mark.parametrize("spec", HOOKED, ids=[s.rule.id for s in HOOKED])
def test_replay_hooks_equal_evaluating_each_day(courses, spec, overridden):
    overrides = _site_override(spec) if overridden else None
    ts = thresholds_for(all_specs(), overrides)
    for n, course in enumerate(courses):
        course = _fresh(course)
        days = list(replay_days(course))
        object.__setattr__(course, "_cw_thresholds", ts)
        hooked = [_key(f) for f in spec.replay(course, ts[spec.rule.id], days)]
        assert hooked == _per_day(course, spec, ts, days), (
            f"{spec.rule.id}: course #{n} ({course.patient.patient_id})")


def test_engine_replay_with_hooks_equals_replay_without(courses):
    """The engine's whole replay is the same with the hooks as with day-by-day evaluation."""
    from dataclasses import replace

    specs = all_specs()
    plain = [replace(s, replay=None) for s in specs]
    for course in courses[:20]:
        with_hooks = replay_course(_fresh(course), specs)
        without = replay_course(_fresh(course), plain)
        assert [(d, [_key(f) for f in fs]) for d, fs in with_hooks] == \
               [(d, [_key(f) for f in fs]) for d, fs in without]


def test_a_failing_hook_falls_back_to_day_by_day_evaluation():
    from dataclasses import replace

    def broken(course, t, days):  # noqa: ANN001, ARG001
        raise ZeroDivisionError("boom")

    spec = all_specs()[0]
    course = _edge_cases()[4]
    got = replay_course(_fresh(course), [replace(spec, replay=broken)])
    want = replay_course(_fresh(course), [replace(spec, replay=None)])
    assert [(d, [_key(f) for f in fs]) for d, fs in got] == \
           [(d, [_key(f) for f in fs]) for d, fs in want]

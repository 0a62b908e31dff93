"""The cytopenia rules' replay hooks equal evaluating each day on a course that holds only
the data known by the end of that day (no cache shared with later data), on the cases their
one-pass logic has to get right: counts read by prefix only once the days counted are
complete (results late in the evening, an as-of instant in the middle of a day,
transfusions known later), censoring that becomes known mid-course, and site thresholds."""

from __future__ import annotations

from datetime import date

import pytest

from core.rules.catalog import all_specs
from core.rules.cytopenia import RULES
from core.rules.engine import _run, replay_days, thresholds_for
from core.rules.reading import END_OF_DAY
from core.vocabulary.course import Course, make_course

LATE = 1 - 5e-7  # a result after the END_OF_DAY instant, still on the same calendar day


def _platelets(days, low=15.0, high=120.0, low_days=range(3, 12)) -> list[tuple]:
    return [("platelets", d + 0.3, low if d in low_days else high) for d in days]


def _anc(days, low=0.05, high=2.0, low_days=range(2, 14)) -> list[tuple]:
    return [("anc", d + 0.3, low if d in low_days else high) for d in days]


CASES = [
    pytest.param(make_course(labs=_platelets(range(0, 60)) + _anc(range(0, 60)),
                             treatments=[("platelet_transfusion", 10.5),
                                         ("platelet_transfusion", 40.2)]),
                 id="transfusions-early-and-late"),
    pytest.param(make_course(labs=_platelets(range(0, 45, 3), low_days=range(30, 45)),
                             observations=[("transfusion", 33.4, "platelets"),
                                           ("transfusion", 36.4, "rbc")]),
                 id="sparse-late-platelets-below-20-with-transfusion-observation"),
    pytest.param(make_course(labs=[*_anc(range(0, 20)), ("anc", 7 + LATE, 0.01),
                                   ("platelets", 5 + LATE, 10.0), ("anc", 35 + LATE, 0.2),
                                   ("anc", 36.5, 0.3)],
                             treatments=[("platelet_transfusion", 4 + LATE)]),
                 id="results-and-transfusion-after-the-end-of-day-instant"),
    pytest.param(make_course(labs=_anc(range(0, 40)) + _platelets(range(0, 40)),
                             as_of_day=23.4),
                 id="as-of-in-the-middle-of-a-day"),
    pytest.param(make_course(labs=_anc(range(0, 70), low_days=range(2, 50))
                             + [("hemoglobin", d + 0.3, 7.5) for d in range(25, 70, 2)],
                             events=[("progression", 41.5), ("death", 60.0)]),
                 id="censored-late-then-death"),
    pytest.param(make_course(labs=_anc(range(-8, 35)) + _platelets(range(-8, 35)),
                             events=[("next_therapy", 12.0)],
                             lymphodepletion_start=date(2025, 12, 27)),
                 id="censored-early-with-lymphodepletion-date"),
    pytest.param(make_course(labs=[("anc", 2.2, 0.3), ("anc", 6.2, 0.2)]),
                 id="two-results-only"),
    # daily to day 14, then three times a week (outpatient), a discharge event on day 16
    pytest.param(make_course(labs=_anc([*range(0, 15), 16, 18, 21, 23, 25, 28, 30, 35, 42],
                                       low_days=range(2, 24))
                             + _platelets([*range(0, 15), 17, 19, 22, 24, 26, 29],
                                          low_days=range(3, 20)),
                             events=[("last_followup", 16.5)]),
                 id="sparse-outpatient-counts-after-discharge"),
]

OVERRIDES = [
    pytest.param(None, id="defaults"),
    pytest.param({"icaht_early": {"recovery_days": 2, "bridge_days": 0},
                  "ticaht_early": {"transfusion_window_days": 3, "window_end_day": 20,
                                   "count_longest_run": 1, "bridge_days": 3},
                  "icaht_late": {"late_start_day": 20, "min_values": 1},
                  "ticaht_late": {"late_start_day": 20, "deep_cut": 50, "g4_deep_days": 3},
                  "prolonged_cytopenia": {"landmark_day": 14, "min_values": 3},
                  "car_hematotox": {"fallback_baseline_day": 2}}, id="site-values"),
]


def _fresh(course: Course) -> Course:
    return Course(patient=course.patient, labs=course.labs, observations=course.observations,
                  episodes=course.episodes, treatments=course.treatments,
                  events=course.events, missing=course.missing,
                  as_of_day=course.as_of_day, tz=course.tz)


def _known_by(course: Course, as_of: float) -> Course:
    """A new course with only the rows dated up to `as_of` (these rules read no episodes)."""
    def cut(frame):  # noqa: ANN001, ANN202
        return frame[frame["day"] <= as_of] if len(frame) else frame

    return Course(patient=course.patient, labs=cut(course.labs),
                  observations=cut(course.observations), episodes=course.episodes,
                  treatments=cut(course.treatments), events=cut(course.events),
                  missing=cut(course.missing), as_of_day=as_of, tz=course.tz)


@pytest.mark.parametrize("overrides", OVERRIDES)
@pytest.mark.parametrize("course", CASES)
@pytest.mark.parametrize("spec", RULES, ids=[s.rule.id for s in RULES])
def test_replay_hook_equals_evaluating_each_day(spec, course, overrides):
    ts = thresholds_for(all_specs(), overrides)
    t = ts[spec.rule.id]
    hooked_course = _fresh(course)
    days = list(replay_days(hooked_course)) + [200]  # a day past the course's as-of instant
    object.__setattr__(hooked_course, "_cw_thresholds", ts)
    hooked = [(f.to_json(), f.episode_key) for f in spec.replay(hooked_course, t, days)]
    per_day = []
    for day in days:
        known = _known_by(course, min(day + END_OF_DAY, course.as_of_day))
        object.__setattr__(known, "_cw_thresholds", ts)
        f = _run(spec, known, t)
        per_day.append((f.to_json(), f.episode_key))
    assert hooked == per_day

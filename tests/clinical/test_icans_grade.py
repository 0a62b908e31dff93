"""icans_grade: ASTCT 2019 ICANS grade (criteria.md §5.2-5.4): worked examples and boundaries."""

from __future__ import annotations

import pytest

from core.rules import icans
from core.rules.base import Status, Thresholds
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course

ADULT = {"birth_year": 1970}
CHILD = {"birth_year": 2019}  # 7 years old in 2026


def evaluate(course, t):
    """The rule through the engine, with the site overrides that `t` holds."""
    overrides = {icans.RULE.id: {k: t[k] for k in t.overridden}}
    return evaluate_course(course, icans.RULES, overrides)[0]


def grade(obs, patient=ADULT, **kw):
    course = make_course(observations=[(k, 5.4, v) for k, v in obs], **patient, **kw)
    return evaluate(course, Thresholds(icans.RULE))


ICANS_CASES = [
    # §5.3 worked example: ICE 7, awakens spontaneously, no seizure -> 1
    pytest.param([("ice_score", 7), ("consciousness", "spontaneous")], ADULT, 1,
                 id="worked-example-ice-7-grade-1"),
    pytest.param([("ice_score", 7), ("consciousness", "spontaneous"),
                  ("seizure", "rapidly_resolving")], ADULT, 3,
                 id="worked-example-plus-seizure-grade-3"),
    # ICE boundaries 10 / 9 / 7 / 6 / 3 / 2 / 0
    pytest.param([("ice_score", 10), ("consciousness", "spontaneous")], ADULT, 0,
                 id="ice-10-normal"),
    pytest.param([("ice_score", 9), ("consciousness", "spontaneous")], ADULT, 1, id="ice-9"),
    pytest.param([("ice_score", 6), ("consciousness", "spontaneous")], ADULT, 2, id="ice-6"),
    pytest.param([("ice_score", 3), ("consciousness", "spontaneous")], ADULT, 2, id="ice-3"),
    pytest.param([("ice_score", 2), ("consciousness", "spontaneous")], ADULT, 3, id="ice-2"),
    pytest.param([("ice_score", 0), ("consciousness", "voice")], ADULT, 3,
                 id="ice-0-awake-global-aphasia-grade-3"),
    pytest.param([("unable_to_assess", 1), ("consciousness", "unarousable")], ADULT, 4,
                 id="ice-0-unarousable-grade-4"),
    pytest.param([("unable_to_assess", 1), ("consciousness", "voice")], ADULT, 3,
                 id="unable-to-do-ice-while-awake-grade-3"),
    # consciousness domain
    pytest.param([("ice_score", 10), ("consciousness", "voice")], ADULT, 2,
                 id="awakens-to-voice-grade-2"),
    pytest.param([("ice_score", 8), ("consciousness", "tactile")], ADULT, 3,
                 id="awakens-to-touch-grade-3"),
    # other domains
    pytest.param([("ice_score", 10), ("seizure", "prolonged_or_repetitive")], ADULT, 4,
                 id="prolonged-seizure-grade-4"),
    pytest.param([("ice_score", 10), ("motor_weakness", 1)], ADULT, 4,
                 id="motor-weakness-grade-4"),
    pytest.param([("ice_score", 10), ("cerebral_edema", "focal")], ADULT, 3,
                 id="focal-oedema-grade-3"),
    pytest.param([("ice_score", 10), ("cerebral_edema", "diffuse")], ADULT, 4,
                 id="diffuse-oedema-grade-4"),
    pytest.param([("ice_score", 10), ("seizure", "none"), ("motor_weakness", 0)], ADULT, 0,
                 id="events-recorded-absent-grade-0"),
    # §5.4 CAPD for children under 12
    pytest.param([("capd_score", 5), ("consciousness", "spontaneous")], CHILD, 1,
                 id="capd-5-spontaneous-grade-1"),
    pytest.param([("capd_score", 8), ("consciousness", "voice")], CHILD, 2,
                 id="capd-8-voice-grade-2"),
    pytest.param([("capd_score", 9), ("consciousness", "spontaneous")], CHILD, 3,
                 id="capd-9-grade-3"),
    pytest.param([("capd_score", 0), ("consciousness", "spontaneous")], CHILD, 0,
                 id="capd-0-grade-0"),
    pytest.param([("capd_score", 4), ("consciousness", "tactile")], CHILD, 3,
                 id="capd-tactile-grade-3"),
    pytest.param([("unable_to_assess", 1)], CHILD, 4, id="unable-to-do-capd-grade-4"),
    pytest.param([("capd_score", 3), ("consciousness", "spontaneous"),
                  ("motor_weakness", 1)], CHILD, 4, id="capd-with-motor-weakness-grade-4"),
]


@pytest.mark.parametrize(("obs", "patient", "expected"), ICANS_CASES)
def test_icans_grade(obs, patient, expected):
    f = grade(obs, patient)
    assert f.grade == expected
    assert f.status is (Status.MET if expected else Status.NOT_MET)


def test_age_boundary_uses_ice_from_twelve():
    # born 2014: 12 in 2026 (ICE), born 2015: 11 in 2026 (CAPD)
    twelve = grade([("ice_score", 8), ("capd_score", 0), ("consciousness", "spontaneous")],
                   {"birth_year": 2014})
    eleven = grade([("ice_score", 8), ("capd_score", 0), ("consciousness", "spontaneous")],
                   {"birth_year": 2015})
    assert (twelve.grade, twelve.extra["tool"]) == (1, "ICE")
    assert (eleven.grade, eleven.extra["tool"]) == (0, "CAPD")


def test_age_is_taken_at_the_evaluated_day_not_at_infusion():
    from datetime import date

    course = make_course(infusion_date=date(2026, 12, 25), birth_year=2015,
                         observations=[("ice_score", 10.3, 8),
                                       ("capd_score", 10.3, 0),
                                       ("consciousness", 10.3, "spontaneous")])
    f = evaluate(course, Thresholds(icans.RULE))  # day 10 = 4 Jan 2027: aged 12
    assert f.extra["tool"] == "ICE" and f.grade == 1


@pytest.mark.parametrize(
    ("obs", "patient", "status", "missing"),
    [
        pytest.param([("consciousness", "spontaneous")], ADULT, Status.NOT_EVALUABLE,
                     icans.MISSING_ICE, id="no-ice-not-evaluable"),
        pytest.param([], CHILD, Status.NOT_EVALUABLE, icans.MISSING_CAPD,
                     id="child-no-capd-not-evaluable"),
        pytest.param([("ice_score", 8)], ADULT, Status.MET, icans.MISSING_LOC,
                     id="ice-8-without-consciousness-lower-bound"),
        pytest.param([("consciousness", "tactile")], ADULT, Status.MET, icans.MISSING_ICE,
                     id="tactile-without-ice-lower-bound-grade-3"),
        pytest.param([("ice_score", 10)], {}, Status.NOT_MET, None,
                     id="no-birth-year-ice-recorded-used"),
        pytest.param([], {}, Status.NOT_EVALUABLE, icans.MISSING_AGE,
                     id="no-birth-year-no-score-asks-for-birth-year"),
    ],
)
def test_icans_missing_inputs(obs, patient, status, missing):
    f = grade(obs, patient, as_of_day=5.9)
    assert f.status is status
    if missing:
        assert missing in f.missing


def test_since_day_spans_the_met_days():
    obs = [("ice_score", 4.5, 10), ("ice_score", 5.5, 8), ("consciousness", 5.5, "spontaneous"),
           ("ice_score", 6.5, 6), ("consciousness", 6.5, "spontaneous")]
    course = make_course(observations=obs, **ADULT)
    f = evaluate(course, Thresholds(icans.RULE))
    assert (f.grade, f.since_day, f.episode_key) == (2, 5, "since-day-5")


def test_after_the_monitoring_phase_icans_stops_asking():
    obs = [(k, d + 0.25, v) for d in range(0, 31)
           for k, v in (("ice_score", 10), ("consciousness", "spontaneous"))]
    asked = evaluate(make_course(observations=obs, as_of_day=33.9, **ADULT),
                     Thresholds(icans.RULE))
    assert asked.status is Status.NOT_EVALUABLE and asked.missing == [icans.MISSING_ICE]
    quiet = evaluate(make_course(observations=obs, as_of_day=34.9, **ADULT),
                     Thresholds(icans.RULE))
    assert quiet.status is Status.NOT_EVALUABLE and quiet.missing == []
    assert quiet.extra["outside_monitoring_window"] is True
    back = evaluate(make_course(observations=obs + [("ice_score", 40.3, 8)],
                                as_of_day=40.9, **ADULT), Thresholds(icans.RULE))
    assert back.status is Status.MET and back.grade == 1

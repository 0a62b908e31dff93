"""crs_grade: ASTCT 2019 CRS grade (criteria.md §5.1), every unit test of §5.1 plus boundaries."""

from __future__ import annotations

import pytest

from core.rules import crs
from core.rules.base import Status, Thresholds
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course


def evaluate(course, t):
    """The rule through the engine, with the site overrides that `t` holds."""
    overrides = {crs.RULE.id: {k: t[k] for k in t.overridden}}
    return evaluate_course(course, crs.RULES, overrides)[0]


def grade(obs, treatments=None, **kw):
    course = make_course(observations=obs, treatments=treatments, **kw)
    return evaluate(course, Thresholds(crs.RULE, kw.pop("overrides", None)))


ROOM_AIR = [("hypotension", 3.2, 0), ("oxygen_device", 3.2, "none")]


CRS_CASES = [
    # §5.1 unit tests
    pytest.param([("temperature", 3.3, 38.6), *ROOM_AIR], None, 1,
                 id="38.6-no-pressor-no-o2-grade-1"),
    pytest.param([("temperature", 3.3, 38.6), ("iv_fluids", 3.3, 1),
                  ("hypotension", 3.3, 1), ("oxygen_device", 3.3, "low_flow_nc"),
                  ("oxygen_flow", 3.3, 4)], None, 2, id="38.6-fluids-4l-grade-2"),
    pytest.param([("temperature", 3.3, 38.6), ("vasopressors", 3.3, 1),
                  ("oxygen_device", 3.3, "low_flow_nc"), ("oxygen_flow", 3.3, 4)], None, 3,
                 id="38.6-norepinephrine-4l-grade-3"),
    pytest.param([("temperature", 3.3, 37.2), ("vasopressors", 3.3, 1),
                  ("vasopressin", 3.3, 1), ("oxygen_device", 3.3, "none")],
                 [("tocilizumab", 2.5)], 3, id="37.2-after-toci-norepi-vasopressin-grade-3"),
    pytest.param([("temperature", 3.3, 37.2), ("vasopressors", 3.3, 2),
                  ("oxygen_device", 3.3, "bipap")],
                 [("tocilizumab", 2.5)], 4, id="37.2-after-toci-two-pressors-bipap-grade-4"),
    pytest.param([("temperature", 3.3, 37.5), *ROOM_AIR], None, 0,
                 id="37.5-no-therapy-no-crs"),
    # fever boundary (>= 38.0)
    pytest.param([("temperature", 3.3, 38.0), *ROOM_AIR], None, 1, id="fever-at-38.0"),
    pytest.param([("temperature", 3.3, 37.9), *ROOM_AIR], None, 0, id="no-fever-at-37.9"),
    # oxygen flow boundary (<= 6 L/min low-flow)
    pytest.param([("temperature", 3.3, 38.5), ("hypotension", 3.3, 0),
                  ("oxygen_device", 3.3, "low_flow_nc"), ("oxygen_flow", 3.3, 6)], None, 2,
                 id="low-flow-at-6-grade-2"),
    pytest.param([("temperature", 3.3, 38.5), ("hypotension", 3.3, 0),
                  ("oxygen_device", 3.3, "low_flow_nc"), ("oxygen_flow", 3.3, 6.5)], None,
                 3, id="flow-above-6-grade-3"),
    pytest.param([("temperature", 3.3, 38.5), ("hypotension", 3.3, 0),
                  ("oxygen_device", 3.3, "high_flow_nc")], None, 3, id="hfnc-grade-3"),
    pytest.param([("temperature", 3.3, 38.5), ("hypotension", 3.3, 0),
                  ("oxygen_device", 3.3, "blow_by")], None, 2, id="blow-by-grade-2"),
    pytest.param([("temperature", 3.3, 38.5), ("hypotension", 3.3, 0),
                  ("oxygen_device", 3.3, "ventilator")], None, 4, id="ventilator-grade-4"),
    # more severe of hypotension and hypoxia (§5.1: T 39, one pressor, 2 L/min -> 3)
    pytest.param([("temperature", 3.3, 39.0), ("vasopressors", 3.3, 1),
                  ("oxygen_flow", 3.3, 2)], None, 3, id="more-severe-domain-wins"),
    # vasopressin alone counts as one vasopressor
    pytest.param([("temperature", 3.3, 38.5), ("vasopressin", 3.3, 1),
                  ("oxygen_device", 3.3, "none")], None, 3, id="vasopressin-alone-grade-3"),
    # fever waived after an antipyretic too (broader ASTCT form, §5.1 [C2])
    pytest.param([("temperature", 3.3, 37.0), ("hypotension", 3.3, 1),
                  ("oxygen_device", 3.3, "none")], [("paracetamol", 3.0)], 2,
                 id="antipyretic-waives-fever"),
    pytest.param([("temperature", 3.3, 37.0), ("hypotension", 3.3, 1),
                  ("oxygen_device", 3.3, "none")], [("dexamethasone", 3.0)], 2,
                 id="steroid-waives-fever"),
    pytest.param([("temperature", 3.3, 37.0), ("hypotension", 3.3, 1),
                  ("oxygen_device", 3.3, "none")], None, 0,
                 id="no-fever-no-waiver-hypotension-not-crs"),
    pytest.param([("temperature", 3.3, 37.0), *ROOM_AIR], [("tocilizumab", 2.0)], 0,
                 id="after-toci-no-hypotension-no-hypoxia-grade-0"),
    # latest observation of the day decides
    pytest.param([("temperature", 3.2, 39.0), ("temperature", 3.8, 37.1), *ROOM_AIR],
                 None, 0, id="latest-temperature-of-day-decides"),
]


@pytest.mark.parametrize(("obs", "treatments", "expected"), CRS_CASES)
def test_crs_grade(obs, treatments, expected):
    f = grade(obs, treatments)
    assert f.grade == expected
    assert f.status is (Status.MET if expected >= 1 else Status.NOT_MET)


@pytest.mark.parametrize(
    ("obs", "treatments", "missing"),
    [
        pytest.param([("hypotension", 3.3, 0), ("oxygen_device", 3.3, "none")], None,
                     crs.MISSING_TEMP, id="no-temperature-not-evaluable"),
        pytest.param([("temperature", 3.3, 37.0)], [("tocilizumab", 2.0)], crs.MISSING_BP,
                     id="after-toci-no-bp-or-o2-not-evaluable"),
        pytest.param([], None, crs.MISSING_TEMP, id="nothing-logged-not-evaluable"),
    ],
)
def test_crs_grade_is_not_evaluable_when_inputs_are_missing(obs, treatments, missing):
    f = grade(obs, treatments, as_of_day=3.9)
    assert f.status is Status.NOT_EVALUABLE
    assert f.grade is None
    assert missing in f.missing


def test_fever_without_bp_or_oxygen_is_a_lower_bound_with_missing_inputs():
    f = grade([("temperature", 3.3, 38.4)])
    assert (f.status, f.grade) == (Status.MET, 1)
    assert crs.MISSING_BP in f.missing and crs.MISSING_O2 in f.missing


def test_since_day_and_episode_key_follow_the_met_stretch():
    obs = []
    for d, t in [(2, 38.5), (3, 38.9), (4, 37.0), (5, 38.2)]:
        obs += [("temperature", d + 0.3, t), ("hypotension", d + 0.3, 0),
                ("oxygen_device", d + 0.3, "none")]
    obs.append(("temperature", 6.3, 38.4))  # day 6: fever, other inputs not logged
    on3 = grade(obs, as_of_day=3.99)
    assert (on3.since_day, on3.episode_key) == (2, "since-day-2")
    assert grade(obs, as_of_day=4.99).status is Status.NOT_MET
    on6 = grade(obs, as_of_day=6.99)
    assert (on6.since_day, on6.episode_key) == (5, "since-day-5")


def test_evidence_names_temperature_and_the_waiving_drug():
    f = grade([("temperature", 3.3, 37.2), ("vasopressors", 3.3, 1),
               ("oxygen_device", 3.3, "none")], [("tocilizumab", 2.5)])
    whys = " | ".join(e.why for e in f.evidence)
    assert "37.2" in whys and "tocilizumab" in whys and "grade 3" in whys
    temp = next(e for e in f.evidence if e.analyte == "temperature")
    assert temp.unit == "°C" and temp.day == 3.3


def test_site_override_of_fever_threshold_is_used():
    course = make_course(observations=[("temperature", 3.3, 38.2), *ROOM_AIR])
    f = evaluate(course, Thresholds(crs.RULE, {"fever_c": 38.3}))
    assert f.grade == 0


def _charted_until(last_day, to_day, temp=36.8):
    """Full CRS charting days 0..last_day, then a daily temperature only (outpatient)."""
    obs = []
    for d in range(0, last_day + 1):
        obs += [("temperature", d + 0.25, temp), ("hypotension", d + 0.25, 0),
                ("oxygen_device", d + 0.25, "none")]
    obs += [("temperature", d + 0.25, temp) for d in range(last_day + 1, to_day + 1)]
    return obs


@pytest.mark.parametrize(
    ("to_day", "missing", "outside"),
    [
        pytest.param(33, [crs.MISSING_BP, crs.MISSING_O2], False, id="3-days-after-still-asks"),
        pytest.param(34, [], True, id="4-days-after-stops-asking"),
    ],
)
def test_after_the_monitoring_phase_crs_stops_asking(to_day, missing, outside):
    """After paracetamol (fever waived) a normal temperature alone cannot grade; once BP and
    oxygen have not been charted for more than 3 days the rule stops asking for them."""
    f = grade(_charted_until(30, to_day), treatments=[("paracetamol", 2.3)],
              as_of_day=to_day + 0.9)
    assert f.status is Status.NOT_EVALUABLE
    assert f.missing == missing
    assert f.extra.get("outside_monitoring_window", False) is outside


def test_fever_after_the_monitoring_phase_still_grades_and_asks():
    obs = _charted_until(30, 40) + [("temperature", 40.5, 38.9)]
    f = grade(obs, treatments=[("paracetamol", 2.3)], as_of_day=40.9)
    assert f.status is Status.MET and f.grade == 1
    assert crs.MISSING_BP in f.missing


def test_a_patient_never_charted_is_still_asked():
    f = grade([], as_of_day=0.9)
    assert f.status is Status.NOT_EVALUABLE and crs.MISSING_TEMP in f.missing


def test_monitoring_gap_is_site_configurable():
    course = make_course(observations=_charted_until(30, 34),
                         treatments=[("paracetamol", 2.3)], as_of_day=34.9)
    f = evaluate(course, Thresholds(crs.RULE, {"monitoring_gap_days": 7}))
    assert f.missing == [crs.MISSING_BP, crs.MISSING_O2]
    assert not crs.RULE.is_provisional  # the gap is operational: grading stays [C2]

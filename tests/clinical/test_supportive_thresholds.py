"""supportive_thresholds: IEC-HS supportive-care thresholds (criteria.md §1.3 [C])."""

from __future__ import annotations

import pytest

from core.course import make_course
from core.rules import supportive
from core.rules.base import Status, Thresholds

ACTIVE = [("IEC-HS", None, 12, None)]
NORMAL = [("hemoglobin", 14.3, 9.0), ("platelets", 14.3, 120), ("fibrinogen", 14.3, 250)]


def run(labs, obs=(), episodes=ACTIVE):
    course = make_course(labs=labs, observations=list(obs), episodes=list(episodes))
    return supportive.evaluate(course, Thresholds(supportive.RULE))


def replace(labs, analyte, value):
    return [x for x in labs if x[0] != analyte] + [(analyte, 14.3, value)]


@pytest.mark.parametrize(
    ("labs", "obs", "status", "flags"),
    [
        pytest.param(NORMAL, (), Status.NOT_MET, [], id="all-within-targets"),
        pytest.param(replace(NORMAL, "hemoglobin", 6.9), (), Status.MET, ["hemoglobin"],
                     id="hb-6.9-below-7"),
        pytest.param(replace(NORMAL, "hemoglobin", 7.0), (), Status.NOT_MET, [],
                     id="hb-7.0-at-target"),
        pytest.param(replace(NORMAL, "fibrinogen", 100), (), Status.MET, ["fibrinogen"],
                     id="fibrinogen-100-not-above-100"),
        pytest.param(replace(NORMAL, "fibrinogen", 101), (), Status.NOT_MET, [],
                     id="fibrinogen-101-no-bleeding"),
        pytest.param(replace(NORMAL, "fibrinogen", 150), [("bleeding", 14.2, 1)], Status.MET,
                     ["fibrinogen"], id="fibrinogen-150-while-bleeding"),
        pytest.param(replace(NORMAL, "fibrinogen", 151), [("bleeding", 14.2, 1)],
                     Status.NOT_MET, [], id="fibrinogen-151-while-bleeding"),
        pytest.param(replace(NORMAL, "platelets", 49), [("bleeding", 14.2, 1)], Status.MET,
                     ["platelets"], id="platelets-49-bleeding"),
        pytest.param(replace(NORMAL, "platelets", 50), [("bleeding", 14.2, 1)],
                     Status.NOT_MET, [], id="platelets-50-bleeding"),
        pytest.param(replace(NORMAL, "platelets", 20), (), Status.NOT_MET, [],
                     id="platelets-20-no-bleeding-no-coagulopathy"),
        pytest.param(replace(replace(NORMAL, "platelets", 20), "fibrinogen", 140), (),
                     Status.MET, ["platelets"], id="platelets-20-with-coagulopathy"),
        pytest.param(NORMAL[:1], (), Status.NOT_EVALUABLE, [], id="labs-missing"),
    ],
)
def test_supportive_thresholds(labs, obs, status, flags):
    f = run(labs, obs)
    assert f.status is status
    assert f.extra["flags"] == flags


def test_not_applied_without_active_iec_hs():
    f = run(replace(NORMAL, "hemoglobin", 6.0), episodes=[("IEC-HS", None, 5, 9)])
    assert f.status is Status.NOT_MET
    assert "no active IEC-HS" in f.evidence[0].why


def test_inr_gap_is_reported():
    assert "INR" in run(NORMAL).extra["gap"]

"""supportive_thresholds: IEC-HS supportive-care thresholds (criteria.md §1.3 [C])."""

from __future__ import annotations

import pytest

from core.rules import supportive
from core.rules.base import Status, Thresholds
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course

ACTIVE = [("IEC-HS", None, 12, None)]
NORMAL = [("hemoglobin", 14.3, 9.0), ("platelets", 14.3, 120), ("fibrinogen", 14.3, 250)]


def run(labs, obs=(), episodes=ACTIVE):
    course = make_course(labs=labs, observations=list(obs), episodes=list(episodes))
    return evaluate(course, Thresholds(supportive.RULE))


def evaluate(course, t):  # the rule through the engine, with t's site overrides
    overrides = {k: t[k] for k in t.overridden}
    return evaluate_course(course, supportive.RULES, {supportive.RULE.id: overrides})[0]


def replace(labs, analyte, value):
    return [x for x in labs if x[0] != analyte] + [(analyte, 14.3, value)]


SUPPORTIVE_CASES = [
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
]


@pytest.mark.parametrize(("labs", "obs", "status", "flags"), SUPPORTIVE_CASES)
def test_supportive_thresholds(labs, obs, status, flags):
    f = run(labs, obs)
    assert f.status is status
    assert f.extra["flags"] == flags


def test_not_applied_without_active_iec_hs():
    f = run(replace(NORMAL, "hemoglobin", 6.0), episodes=[("IEC-HS", None, 5, 9)])
    assert f.status is Status.NOT_MET
    assert "no active IEC-HS" in f.evidence[0].why


# INR (criteria §1.3 [C]): > 1.5 consider vitamin K; > 2 consider FFP in addition to
# cryoprecipitate. Both limits are strict: 1.5 and 2.0 themselves do not reach them.
@pytest.mark.parametrize(
    ("inr", "status", "flags", "level", "why"),
    [
        pytest.param(1.4, Status.NOT_MET, [], "within target", None, id="inr-1.4"),
        pytest.param(1.5, Status.NOT_MET, [], "within target", None, id="inr-1.5-at-limit"),
        pytest.param(1.6, Status.MET, ["inr"], "vitamin_k", "> 1.5: consider vitamin K",
                     id="inr-1.6-vitamin-k"),
        pytest.param(2.0, Status.MET, ["inr"], "vitamin_k", "> 1.5: consider vitamin K",
                     id="inr-2.0-vitamin-k-not-ffp"),
        pytest.param(2.1, Status.MET, ["inr"], "ffp",
                     "> 2: consider FFP in addition to cryoprecipitate (and vitamin K, > 1.5)",
                     id="inr-2.1-ffp"),
    ],
)
def test_inr_limits_during_iec_hs(inr, status, flags, level, why):
    f = run(NORMAL + [("inr", 14.3, inr)])
    assert f.status is status
    assert f.extra["flags"] == flags
    assert f.extra["inr"] == level
    shown = [e for e in f.evidence if e.analyte == "inr"]
    if why is None:
        assert shown == []
    else:
        assert [(e.why, e.value, e.unit) for e in shown] == [(why, inr, "ratio")]


def test_inr_flags_beside_the_other_labs():
    f = run(replace(NORMAL, "hemoglobin", 6.5) + [("inr", 14.3, 2.4)])
    assert f.status is Status.MET and f.extra["flags"] == ["hemoglobin", "inr"]


def test_latest_inr_counts():
    f = run(NORMAL + [("inr", 13.3, 2.5), ("inr", 14.3, 1.3)])
    assert f.status is Status.NOT_MET and f.extra["inr"] == "within target"


def test_missing_inr_is_reported_but_does_not_block_the_rule():
    f = run(NORMAL)
    assert f.status is Status.NOT_MET and f.missing == []
    assert f.extra["inr"] == "not measured" and "gap" not in f.extra


def test_inr_is_not_applied_without_active_iec_hs():
    f = run(NORMAL + [("inr", 14.3, 3.0)], episodes=[("IEC-HS", None, 5, 9)])
    assert f.status is Status.NOT_MET and "inr" not in f.extra


def test_site_override_of_the_inr_limits():
    course = make_course(labs=NORMAL + [("inr", 14.3, 1.8)], episodes=ACTIVE)
    t = Thresholds(supportive.RULE, {"inr_vitamin_k": 2.0, "inr_ffp": 3.0})
    f = evaluate(course, t)
    assert f.status is Status.NOT_MET and f.extra["inr"] == "within target"

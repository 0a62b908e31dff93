"""The engine's running of rules judged by columns: findings, met stretch, isolation, reads.

Toy rules over synthetic courses (not clinical rules): the machinery, not a criterion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.rules.base import (
    Citation,
    Finding,
    Inputs,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.engine import evaluate_courses, replay_courses
from core.rules.frames import Ward
from core.rules.tables import NONE
from core.vocabulary.course import make_course
from core.vocabulary.units import Evidence

D = Evidence.DESIGN


def _rule(rule_id: str) -> Rule:
    return Rule(id=rule_id, title=rule_id, version="1", citation=Citation("test", "design"),
                evidence=D, severity=Severity.WARNING, inputs=("ferritin",),
                thresholds=(Threshold("high", 1000.0, "ug/L", D, "high ferritin", ">"),))


def _high(ward: Ward, t: Thresholds) -> pd.DataFrame:
    """Met while the latest ferritin is above `high`; not evaluable before the first."""
    at = ward.latest("ferritin")
    value = np.where(at == NONE, np.nan, ward.labs["value"][np.maximum(at, 0)])
    status = np.where(at == NONE, "not_evaluable",
                      np.where(value > t["high"], "met", "not_met"))
    if any(p.patient_id == "BROKEN" for p in ward.patients):
        raise RuntimeError("cannot judge BROKEN")
    return pd.DataFrame({"status": status, "at": at})


def _explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    ev = [] if row["at"] == NONE else [ward.lab_evidence(int(row["at"]), "latest ferritin")]
    return Finding("ignored", Status(row["status"]), evidence=ev)


HIGH = RuleSpec(_rule("toy_high"), judge=_high, explain=_explain)


def _twice(ward: Ward, t: Thresholds, inputs: Inputs) -> pd.DataFrame:
    """Met on the second and later days of a toy_high stretch (reads toy_high's rows)."""
    high = inputs.frames["toy_high"]
    since = high["since_day"]
    met = (high["status"] == "met") & (ward.days["day"] > since)
    assert inputs.thresholds["toy_high"]["high"] == 500.0  # the site's value, read through
    return pd.DataFrame({"status": np.where(met, "met", "not_met"), "at": NONE})


TWICE = RuleSpec(_rule("toy_twice"), judge=_twice, explain=_explain, reads=("toy_high",))

COURSES = [
    make_course(patient_id="A", labs=[("ferritin", 1.2, 800), ("ferritin", 2.3, 1500),
                                      ("ferritin", 4.1, 2000), ("ferritin", 5.5, 700)],
                as_of_day=6.5),
    make_course(patient_id="B", labs=[("ferritin", -2.0, 1200), ("ferritin", 3.0, 1300)],
                as_of_day=3.5),
]


def test_evaluate_gives_the_last_day_with_its_met_stretch():
    found = evaluate_courses(COURSES, [HIGH])
    a, b = found[0][0], found[1][0]
    assert (a.rule, a.status, a.since_day, a.episode_key) == ("toy_high", Status.NOT_MET,
                                                              None, None)
    assert (b.status, b.since_day, b.episode_key) == (Status.MET, -2, "since-day--2")
    assert [e.value for e in b.evidence] == [1300.0]


def test_replay_gives_every_day_and_carries_the_stretch():
    (_, days_a), (_, days_b) = list(replay_courses(COURSES, [HIGH]))
    assert [(d, f[0].status.value, f[0].since_day) for d, f in days_a] == [
        (1, "not_met", None), (2, "met", 2), (3, "met", 2), (4, "met", 2), (5, "not_met", None),
    ]
    assert [d for d, _ in days_b] == [0, 1, 2, 3]  # replay starts on day 0
    assert all(f[0].since_day == -2 for _, f in days_b)


def test_a_rule_failing_on_one_course_fails_only_there():
    broken = make_course(patient_id="BROKEN", labs=[("ferritin", 1.0, 5000)], as_of_day=2.0)
    found = evaluate_courses([COURSES[0], broken, COURSES[1]], [HIGH])
    assert [f[0].status for f in found] == [Status.NOT_MET, Status.NOT_EVALUABLE, Status.MET]
    assert "cannot judge BROKEN" in found[1][0].extra["error"]
    assert found[1][0].missing == ["rule error: RuntimeError: cannot judge BROKEN"]


def test_a_rule_reads_another_rules_rows_with_its_site_thresholds():
    found = evaluate_courses(COURSES, [TWICE, HIGH], overrides={"toy_high": {"high": 500.0}})
    # A: met from day 1 (800 > 500) to day 5 (700 > 500) -> twice met on day 6
    assert [f.rule for f in found[0]] == ["toy_twice", "toy_high"]
    assert found[0][0].status is Status.MET and found[0][1].since_day == 1


def test_a_reading_rule_failing_on_one_course_reads_each_other_course_alone():
    def twice_unless_broken(ward: Ward, t: Thresholds, inputs: Inputs) -> pd.DataFrame:
        if "BROKEN" in [p.patient_id for p in ward.patients]:
            raise RuntimeError("cannot judge BROKEN")
        return _twice(ward, t, inputs)

    fragile = RuleSpec(_rule("toy_twice"), judge=twice_unless_broken, explain=_explain,
                       reads=("toy_high",))
    broken = make_course(patient_id="BROKEN", labs=[("ferritin", 1.0, 5000)], as_of_day=2.0)
    courses = [COURSES[0], broken, COURSES[1]]
    overrides = {"toy_high": {"high": 500.0}}
    found = evaluate_courses(courses, [fragile, HIGH], overrides)
    assert [f[0].status for f in found] == [Status.MET, Status.NOT_EVALUABLE, Status.MET]
    alone = [evaluate_courses([c], [TWICE, HIGH], overrides)[0][0] for c in COURSES]
    assert [f.to_json() for f in alone] == [found[0][0].to_json(), found[2][0].to_json()]


def test_rules_reading_each_other_in_a_circle_are_refused():
    loop = RuleSpec(_rule("toy_high"), judge=_twice, explain=_explain, reads=("toy_twice",))
    with pytest.raises(ValueError, match="circle"):
        evaluate_courses(COURSES, [TWICE, loop])


def _latest_high(sizes: list[int]) -> Any:
    """toy_high judged by instant: its since_day is the latest result's day; records the
    number of grid rows it is given."""
    def judge(ward: Ward, t: Thresholds) -> pd.DataFrame:
        sizes.append(ward.size)
        cols = _high(ward, t)
        cols["since_day"] = np.where(cols["at"] == NONE, np.nan,
                                     ward.labs.day[np.maximum(cols["at"], 0)])
        return cols
    return judge


def test_evaluate_judges_a_rule_by_instant_on_each_course_s_last_day_alone():
    sizes: list[int] = []
    latest = RuleSpec(_rule("toy_latest"), judge=_latest_high(sizes), explain=_explain,
                      by_instant=True)
    found = evaluate_courses(COURSES, [latest])
    assert sizes == [2]  # one row per course, not one per course-day
    whole = evaluate_courses(COURSES, [RuleSpec(_rule("toy_latest"), judge=_latest_high(sizes),
                                                explain=_explain)])
    assert sizes[1] == 6 + 6  # A: days 1-6, B: days -2 to 3
    assert [f[0].to_json() for f in found] == [f[0].to_json() for f in whole]
    assert (found[1][0].status, found[1][0].since_day) == (Status.MET, 3.0)
    sizes.clear()
    list(replay_courses(COURSES, [latest]))  # replay judges every day
    assert sizes == [12]


def test_a_rule_by_instant_failing_on_one_course_fails_only_there():
    sizes: list[int] = []
    latest = RuleSpec(_rule("toy_latest"), judge=_latest_high(sizes), explain=_explain,
                      by_instant=True)
    broken = make_course(patient_id="BROKEN", labs=[("ferritin", 1.0, 5000)], as_of_day=2.0)
    found = evaluate_courses([COURSES[0], broken, COURSES[1]], [latest])
    assert sizes == [3, 1, 1, 1]  # the closing rows, then each course's alone
    assert [f[0].status for f in found] == [Status.NOT_MET, Status.NOT_EVALUABLE, Status.MET]
    assert found[2][0].since_day == 3.0


def test_a_rule_by_instant_reads_the_closing_rows_of_the_rules_it_reads():
    def copy(ward: Ward, t: Thresholds, inputs: Inputs) -> dict[str, Any]:
        high = inputs.frames["toy_high"]
        assert len(high["status"]) == ward.size == len(ward)
        return {"status": high["status"], "since_day": high["since_day"], "at": NONE}

    spec = RuleSpec(_rule("toy_copy"), judge=copy, explain=_explain, reads=("toy_high",),
                    by_instant=True)
    found = evaluate_courses(COURSES, [spec, HIGH])
    assert [(f[0].status, f[0].since_day) for f in found] == [
        (Status.NOT_MET, None), (Status.MET, -2)]
    assert [(f[1].status, f[1].since_day) for f in found] == [
        (Status.NOT_MET, None), (Status.MET, -2)]

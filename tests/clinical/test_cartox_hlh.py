"""cartox_hlh: Neelapu 2018 CAR-T HLH/MAS (criteria.md §2), both worked examples and boundaries."""

from __future__ import annotations

import pytest

from core.rules import hlh
from core.rules.base import Status
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course

SPEC = next(s for s in hlh.RULES if s.rule.id == "cartox_hlh")
DAY4 = [("ferritin", 4.3, 15_000), ("ast", 6.3, 250, 10, 40),
        ("creatinine", 6.3, 1.4, 0.6, 1.2)]


def run(labs, obs=None, **kw):
    return evaluate_course(make_course(labs=labs, observations=obs, **kw), [SPEC])[0]


def test_worked_example_day_6_is_possible_but_incomplete():
    f = run(DAY4)
    assert f.status is Status.NOT_EVALUABLE
    assert (f.extra["items_met"], f.extra["items_not_evaluable"]) == (1, 2)
    assert f.extra["items"] == {"liver": "met", "kidney": "not_met", "lung": "not_evaluable",
                                "hemophagocytosis": "not_evaluable"}
    assert f.extra["summary"] == "possible, incomplete"


def test_worked_example_day_7_creatinine_grade_3_meets_criteria():
    f = run([*DAY4, ("creatinine", 7.3, 4.0, 0.6, 1.2)])
    assert f.status is Status.MET
    assert f.extra["items_met"] == 2
    assert any("creatinine CTCAE grade 3" in e.why for e in f.evidence)


CARTOX_CASES = [
    pytest.param([("ferritin", 4.3, 10_000), ("ast", 6.3, 250, 10, 40),
                  ("creatinine", 7.3, 4.0, 0.6, 1.2)], None, Status.NOT_MET,
                 id="ferritin-at-10000-entry-not-met"),
    pytest.param([("ferritin", 4.3, 10_001), ("ast", 6.3, 250, 10, 40),
                  ("creatinine", 7.3, 4.0, 0.6, 1.2)], None, Status.MET,
                 id="ferritin-10001-entry-met"),
    pytest.param([("ferritin", 6.3, 50_000), ("ast", 6.3, 250, 10, 40),
                  ("creatinine", 7.3, 4.0, 0.6, 1.2)], None, Status.NOT_EVALUABLE,
                 id="ferritin-only-after-day-5-entry-not-evaluable"),
    pytest.param([("ferritin", 5.9, 12_000), ("ast", 6.3, 250, 10, 40)],
                 [("pulmonary_edema", 6.5, 3)], Status.MET,
                 id="late-day-5-ferritin-and-pulmonary-oedema-grade-3"),
    pytest.param([("ferritin", 4.3, 12_000), ("ast", 6.3, 250, 10, 40)],
                 [("pulmonary_edema", 6.5, 2), ("hemophagocytosis", 6.5, 0)],
                 Status.NOT_EVALUABLE, id="oedema-grade-2-kidney-unknown"),
    pytest.param([("ferritin", 4.3, 12_000), ("ast", 6.3, 190, 10, 40),
                  ("creatinine", 6.3, 1.0, 0.6, 1.2)],
                 [("pulmonary_edema", 6.5, 0), ("hemophagocytosis", 6.5, 0)],
                 Status.NOT_MET, id="all-items-evaluated-none-met"),
    pytest.param([("ferritin", 4.3, 12_000), ("ast", 6.3, 190, 10, 40),
                  ("creatinine", 6.3, 1.0, 0.6, 1.2)],
                 [("oliguria", 6.5, 3), ("hemophagocytosis", 7.5, 1)],
                 Status.MET, id="oliguria-grade-3-and-hemophagocytosis"),
]


@pytest.mark.parametrize(("labs", "obs", "status"), CARTOX_CASES)
def test_cartox_cases(labs, obs, status):
    assert run(labs, obs).status is status


def test_liver_counts_once_even_if_several_tests_qualify():
    f = run([("ferritin", 4.3, 12_000), ("ast", 6.3, 250, 10, 40), ("alt", 6.3, 400, 7, 40),
             ("bilirubin", 6.3, 4.0, 0.1, 1.2)])
    assert f.extra["items_met"] == 1


def test_an_organ_with_no_gradable_value_has_no_grade_whatever_other_courses_have():
    """The worst grade is looked for among the course's own values: a course whose only AST
    has no number stays ungraded beside a course with a grade 4 AST."""
    from core.rules.base import Thresholds
    from core.rules.catalog import spec_by_id
    from core.rules.frames import Ward
    from core.rules.hlh.cartox import worst_grade

    ward = Ward.of([make_course(patient_id="NO-NUMBER", labs=[("ast", 1.0, float("nan"))]),
                    make_course(patient_id="GRADE-4", labs=[("ast", 1.0, 2000.0)])])
    at, grade = worst_grade(ward, "ast", Thresholds(spec_by_id("ctcae_ast").rule))
    first = ward.days["key"] == 0
    assert (at[first] == -1).all() and all(g != g for g in grade[first])
    assert grade[~first][-1] == 4

"""hlh_2004: HLH-2004 criteria (criteria.md §3), worked example and inclusive boundaries."""

from __future__ import annotations

import pytest

from core.rules import hlh
from core.rules.base import Status
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course
from core.vocabulary.units import convert

SPEC = next(s for s in hlh.RULES if s.rule.id == "hlh_2004")
TG_3_2 = convert(3.2, "triglycerides", "mmol/L")
EXAMPLE = [("hemoglobin", 5.3, 8.5), ("platelets", 5.3, 40), ("anc", 5.3, 0.4),
           ("triglycerides", 5.3, TG_3_2), ("ferritin", 5.3, 12_000), ("scd25", 5.3, 5000)]


def run(labs, obs=(("temperature", 5.3, 39.0),)):
    return evaluate_course(make_course(labs=labs, observations=list(obs)), [SPEC])[0]


# The rule's outcome: 5 of 8 criteria met fires; fewer met with every criterion evaluated
# does not; fewer met with some not evaluable is indeterminate.
OUTCOME_CASES = [
    pytest.param(EXAMPLE, (("temperature", 5.3, 39.0),), "met", 5, 5,
                 id="worked-example-5-of-5-evaluable"),
    pytest.param(EXAMPLE[:-1], (("temperature", 5.3, 39.0),), "not_evaluable", 4, 4,
                 id="worked-example-without-scd25-indeterminate"),
    pytest.param([("hemoglobin", 5.3, 12), ("platelets", 5.3, 200), ("anc", 5.3, 3),
                  ("triglycerides", 5.3, 100), ("fibrinogen", 5.3, 300), ("ferritin", 5.3, 600),
                  ("scd25", 5.3, 900)],
                 [("temperature", 5.3, 37), ("organomegaly", 5.3, "none"),
                  ("hemophagocytosis", 5.3, 0), ("nk_activity", 5.3, "normal")],
                 "not_met", 1, 8, id="all-evaluated-1-met"),
]


@pytest.mark.parametrize(("labs", "obs", "status", "met", "evaluable"), OUTCOME_CASES)
def test_hlh_2004_outcome(labs, obs, status, met, evaluable):
    f = run(labs, obs)
    assert f.status is Status(status)
    assert (f.extra["met_count"], f.extra["evaluable"]) == (met, evaluable)


def test_worked_example_without_scd25_says_what_is_missing():
    f = run(EXAMPLE[:-1])
    assert f.extra["summary"] == "indeterminate (4 met, 4 not evaluable)"
    assert "enter the soluble CD25 result, if sent" in f.missing


@pytest.mark.parametrize(
    ("labs", "obs", "criterion", "expected"),
    [
        pytest.param([], [("temperature", 5.3, 38.5)], "fever", "met", id="fever-38.5-met"),
        pytest.param([], [("temperature", 5.3, 38.4)], "fever", "not_met", id="fever-38.4"),
        pytest.param([("ferritin", 5.3, 500)], [], "ferritin", "met", id="ferritin-500-met"),
        pytest.param([("ferritin", 5.3, 499)], [], "ferritin", "not_met", id="ferritin-499"),
        pytest.param([("scd25", 5.3, 2400)], [], "scd25", "met", id="scd25-2400-met"),
        pytest.param([("scd25", 5.3, 2399)], [], "scd25", "not_met", id="scd25-2399"),
        pytest.param([("fibrinogen", 5.3, 150)], [], "triglycerides_fibrinogen", "met",
                     id="fibrinogen-150-inclusive-met"),
        pytest.param([("fibrinogen", 5.3, 151)], [], "triglycerides_fibrinogen",
                     "not_evaluable", id="fibrinogen-151-tg-missing"),
        pytest.param([("fibrinogen", 5.3, 151), ("triglycerides", 5.3, 264)], [],
                     "triglycerides_fibrinogen", "not_met", id="tg-264-fib-151-not-met"),
        pytest.param([("triglycerides", 5.3, convert(3.0, "triglycerides", "mmol/L"))], [],
                     "triglycerides_fibrinogen", "met", id="tg-3.0-mmol-inclusive-met"),
        pytest.param([("hemoglobin", 5.3, 8.9), ("platelets", 5.3, 99)], [], "cytopenias",
                     "met", id="two-lineages-met"),
        pytest.param([("hemoglobin", 5.3, 9.0), ("platelets", 5.3, 100), ("anc", 5.3, 1.0)],
                     [], "cytopenias", "not_met", id="lineages-at-limits-not-met"),
        pytest.param([("hemoglobin", 5.3, 8.0), ("platelets", 5.3, 100)], [], "cytopenias",
                     "not_evaluable", id="one-low-one-missing-not-evaluable"),
        pytest.param([], [("organomegaly", 5.3, "both")], "splenomegaly", "met",
                     id="splenomegaly-met"),
        pytest.param([], [("organomegaly", 5.3, "hepatomegaly")], "splenomegaly", "not_met",
                     id="hepatomegaly-only"),
        pytest.param([], [("nk_activity", 5.3, "absent")], "nk_activity", "met", id="nk-absent"),
    ],
)
def test_hlh_2004_criteria(labs, obs, criterion, expected):
    assert run(labs, obs).extra["criteria"][criterion] == expected


def test_fasting_status_not_recorded_is_said():
    f = run([("triglycerides", 5.3, 300)], [])
    assert any("fasting status not recorded" in e.why for e in f.evidence)

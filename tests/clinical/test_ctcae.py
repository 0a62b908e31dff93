"""CTCAE v5.0 lab grades (criteria.md §8): worked examples and both sides of every cut."""

from __future__ import annotations

import dataclasses
import math

import pytest

from core.rules.base import Status
from core.rules.ctcae import CTCAE_THRESHOLDS, RULES, ctcae_grades
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course

BY_ID = {spec.rule.id: spec for spec in RULES}

# (analyte, value, uln, lln, baseline, baseline_uln, expected grade)
CASES = [
    # §8 worked examples
    pytest.param("ast", 250, 40, 10, 30, None, 3, id="s8-ast-250-normal-baseline-g3"),
    pytest.param("ast", 250, 40, 10, 100, None, 1, id="s8-ast-250-abnormal-baseline-g1"),
    pytest.param("fibrinogen", 110, 400, 200, 350, None, 3, id="s8-fibrinogen-110-drop-69-g3"),
    pytest.param("fibrinogen", 45, 400, 200, None, None, 4, id="s8-fibrinogen-45-absolute-g4"),
    pytest.param("creatinine", 2.0, 1.2, 0.6, 0.6, None, 3, id="s8-creatinine-3.33x-base-g3"),
    pytest.param("anc", 0.7, 8.0, 1.5, None, None, 3, id="s8-anc-0.7-g3"),
    # §2 worked example creatinine grades (ULN 1.2)
    pytest.param("creatinine", 1.4, 1.2, 0.6, 1.0, None, 1, id="s2-creatinine-1.4-g1"),
    pytest.param("creatinine", 4.0, 1.2, 0.6, 1.0, None, 3, id="s2-creatinine-4.0-g3"),
    pytest.param("ast", 250, 40, 10, None, None, 3, id="s2-ast-250-no-baseline-g3"),
    # AST x ULN boundaries (normal baseline)
    pytest.param("ast", 40, 40, 10, 30, None, 0, id="ast-at-uln-g0"),
    pytest.param("ast", 40.1, 40, 10, 30, None, 1, id="ast-above-uln-g1"),
    pytest.param("ast", 120, 40, 10, 30, None, 1, id="ast-3x-uln-g1"),
    pytest.param("ast", 120.1, 40, 10, 30, None, 2, id="ast-above-3x-g2"),
    pytest.param("ast", 200, 40, 10, 30, None, 2, id="ast-5x-g2"),
    pytest.param("ast", 200.1, 40, 10, 30, None, 3, id="ast-above-5x-g3"),
    pytest.param("ast", 800, 40, 10, 30, None, 3, id="ast-20x-g3"),
    pytest.param("ast", 800.1, 40, 10, 30, None, 4, id="ast-above-20x-g4"),
    # AST x baseline (abnormal baseline): 1.5 inclusive, the 1.0-1.5 gap is grade 0
    pytest.param("ast", 140, 40, 10, 100, None, 0, id="ast-1.4x-abnormal-baseline-gap-g0"),
    pytest.param("ast", 150, 40, 10, 100, None, 1, id="ast-1.5x-baseline-g1"),
    pytest.param("ast", 300, 40, 10, 100, None, 1, id="ast-3x-baseline-g1"),
    pytest.param("ast", 301, 40, 10, 100, None, 2, id="ast-above-3x-baseline-g2"),
    pytest.param("ast", 2001, 40, 10, 100, None, 4, id="ast-above-20x-baseline-g4"),
    pytest.param("ast", 100, 40, 10, 45, 50, 1, id="ast-baseline-uses-its-own-uln"),
    pytest.param("alt", 57, 56, 7, 20, None, 1, id="alt-above-uln-g1"),
    pytest.param("alt", 56, 56, 7, 20, None, 0, id="alt-at-uln-g0"),
    pytest.param("ast", 100, None, None, None, None, None, id="ast-no-uln-not-gradable"),
    # bilirubin
    pytest.param("bilirubin", 1.8, 1.2, 0.1, 0.5, None, 1, id="bili-1.5x-uln-g1"),
    pytest.param("bilirubin", 1.81, 1.2, 0.1, 0.5, None, 2, id="bili-above-1.5x-g2"),
    pytest.param("bilirubin", 3.61, 1.2, 0.1, 0.5, None, 3, id="bili-above-3x-g3"),
    pytest.param("bilirubin", 12.01, 1.2, 0.1, 0.5, None, 4, id="bili-above-10x-g4"),
    pytest.param("bilirubin", 2.0, 1.2, 0.1, 2.0, None, 0, id="bili-1.0x-abnormal-baseline-g0"),
    pytest.param("bilirubin", 2.1, 1.2, 0.1, 2.0, None, 1, id="bili-above-1.0x-baseline-g1"),
    pytest.param("bilirubin", 3.1, 1.2, 0.1, 2.0, None, 2, id="bili-above-1.5x-baseline-g2"),
    # creatinine: max of ULN and baseline grades; baseline rules grades 2-3 only
    pytest.param("creatinine", 1.2, 1.2, 0.6, 1.0, None, 0, id="creat-at-uln-g0"),
    pytest.param("creatinine", 1.8, 1.2, 0.6, 1.2, None, 1, id="creat-1.5x-g1"),
    pytest.param("creatinine", 1.81, 1.2, 0.6, 1.2, None, 2, id="creat-above-1.5x-uln-g2"),
    pytest.param("creatinine", 1.0, 1.2, 0.6, 0.6, None, 2, id="creat-1.67x-base-below-uln-g2"),
    pytest.param("creatinine", 0.9, 1.2, 0.6, 0.6, None, 0, id="creat-1.5x-base-g0"),
    pytest.param("creatinine", 7.3, 1.2, 0.6, 1.0, None, 4, id="creat-above-6x-uln-g4"),
    pytest.param("creatinine", 7.2, 1.2, 0.6, 1.0, None, 3, id="creat-6x-uln-g3"),
    pytest.param("creatinine", 1.9, None, None, 0.6, None, 3, id="creat-no-uln-base-only"),
    # fibrinogen
    pytest.param("fibrinogen", 50, 400, 200, None, None, 3, id="fib-50-not-absolute-g4"),
    pytest.param("fibrinogen", 49.9, 400, 200, None, None, 4, id="fib-below-50-g4"),
    pytest.param("fibrinogen", 200, 400, 200, 350, None, 0, id="fib-at-lln-g0"),
    pytest.param("fibrinogen", 150, 400, 200, None, None, 1, id="fib-0.75x-lln-g1"),
    pytest.param("fibrinogen", 149, 400, 200, None, None, 2, id="fib-below-0.75x-g2"),
    pytest.param("fibrinogen", 100, 400, 200, None, None, 2, id="fib-0.5x-lln-g2"),
    pytest.param("fibrinogen", 99, 400, 200, None, None, 3, id="fib-below-0.5x-g3"),
    pytest.param("fibrinogen", 300, 400, 200, 600, None, 0, id="fib-drop-50pc-above-lln-g0"),
    pytest.param("fibrinogen", 180, 400, 200, 240, None, 2, id="fib-drop-25pc-below-lln-g2"),
    pytest.param("fibrinogen", 190, 400, 200, 240, None, 1, id="fib-drop-21pc-below-lln-g1"),
    pytest.param("fibrinogen", 190, 400, 200, 760, None, 4, id="fib-drop-75pc-below-lln-g4"),
    # neutrophils: grade 1 needs < LLN; grades 2-4 absolute
    pytest.param("anc", 1.5, 8.0, 2.0, None, None, 1, id="anc-1.5-lln-2.0-g1"),
    pytest.param("anc", 1.6, 8.0, 1.5, None, None, 0, id="anc-above-lln-g0"),
    pytest.param("anc", 1.5, 8.0, 1.5, None, None, 0, id="anc-at-lln-1.5-g0"),
    pytest.param("anc", 1.49, 8.0, 1.5, None, None, 2, id="anc-below-1.5-g2"),
    pytest.param("anc", 1.0, 8.0, 1.5, None, None, 2, id="anc-1.0-g2"),
    pytest.param("anc", 0.99, 8.0, 1.5, None, None, 3, id="anc-below-1.0-g3"),
    pytest.param("anc", 0.5, 8.0, 1.5, None, None, 3, id="anc-exactly-0.5-g3"),
    pytest.param("anc", 0.49, 8.0, 1.5, None, None, 4, id="anc-below-0.5-g4"),
    pytest.param("anc", 1.8, None, None, None, None, None, id="anc-no-lln-not-gradable"),
    # platelets
    pytest.param("platelets", 75, 400, 150, None, None, 1, id="plt-75-g1"),
    pytest.param("platelets", 74, 400, 150, None, None, 2, id="plt-below-75-g2"),
    pytest.param("platelets", 50, 400, 150, None, None, 2, id="plt-exactly-50-g2"),
    pytest.param("platelets", 49, 400, 150, None, None, 3, id="plt-below-50-g3"),
    pytest.param("platelets", 25, 400, 150, None, None, 3, id="plt-25-g3"),
    pytest.param("platelets", 24, 400, 150, None, None, 4, id="plt-below-25-g4"),
    pytest.param("platelets", 150, 400, 150, None, None, 0, id="plt-at-lln-g0"),
    # anaemia 1-3 only
    pytest.param("hemoglobin", 11.9, 17, 12, None, None, 1, id="hb-below-lln-g1"),
    pytest.param("hemoglobin", 10.0, 17, 12, None, None, 1, id="hb-10.0-g1"),
    pytest.param("hemoglobin", 9.9, 17, 12, None, None, 2, id="hb-below-10-g2"),
    pytest.param("hemoglobin", 8.0, 17, 12, None, None, 2, id="hb-8.0-g2"),
    pytest.param("hemoglobin", 7.9, 17, 12, None, None, 3, id="hb-below-8-g3"),
    pytest.param("hemoglobin", 4.0, 17, 12, None, None, 3, id="hb-very-low-still-g3"),
    # lymphocytes and WBC
    pytest.param("alc", 0.8, 4.0, 1.0, None, None, 1, id="alc-0.8-g1"),
    pytest.param("alc", 0.79, 4.0, 1.0, None, None, 2, id="alc-below-0.8-g2"),
    pytest.param("alc", 0.5, 4.0, 1.0, None, None, 2, id="alc-0.5-g2"),
    pytest.param("alc", 0.2, 4.0, 1.0, None, None, 3, id="alc-0.2-g3"),
    pytest.param("alc", 0.19, 4.0, 1.0, None, None, 4, id="alc-below-0.2-g4"),
    pytest.param("wbc", 3.0, 11, 4.0, None, None, 1, id="wbc-3.0-g1"),
    pytest.param("wbc", 2.99, 11, 4.0, None, None, 2, id="wbc-below-3-g2"),
    pytest.param("wbc", 1.99, 11, 4.0, None, None, 3, id="wbc-below-2-g3"),
    pytest.param("wbc", 0.99, 11, 4.0, None, None, 4, id="wbc-below-1-g4"),
    pytest.param("wbc", 4.0, 11, 4.0, None, None, 0, id="wbc-at-lln-g0"),
    # triglycerides (absolute mg/dL)
    pytest.param("triglycerides", 149, 150, None, None, None, 0, id="tg-149-g0"),
    pytest.param("triglycerides", 150, 150, None, None, None, 1, id="tg-150-g1"),
    pytest.param("triglycerides", 300, 150, None, None, None, 1, id="tg-300-g1"),
    pytest.param("triglycerides", 301, 150, None, None, None, 2, id="tg-above-300-g2"),
    pytest.param("triglycerides", 501, 150, None, None, None, 3, id="tg-above-500-g3"),
    pytest.param("triglycerides", 1000, 150, None, None, None, 3, id="tg-1000-g3"),
    pytest.param("triglycerides", 1001, 150, None, None, None, 4, id="tg-above-1000-g4"),
]


def grade(analyte: str, value: float, uln: float | None, lln: float | None,
          base: float | None, base_uln: float | None = None, t: dict | None = None
          ) -> int | None:
    """The grade of one value (None: not known, as NaN in ctcae_grades; None: not gradable)."""
    def nan(x: float | None) -> float:
        return math.nan if x is None else x

    found = ctcae_grades(analyte, value, nan(uln), nan(lln), nan(base), nan(base_uln), t=t)
    assert found.shape == (1,)
    return None if math.isnan(found[0]) else int(found[0])


@pytest.mark.parametrize("analyte, value, uln, lln, base, base_uln, expected", CASES)
def test_ctcae_grade_matches_table(analyte, value, uln, lln, base, base_uln, expected):
    assert grade(analyte, value, uln, lln, base, base_uln) == expected


def test_the_table_graded_as_one_array_gives_the_same_grades():
    """Each analyte's cases graded at once, as the rules grade a ward's results."""
    for analyte in {c.values[0] for c in CASES}:
        rows = [c.values for c in CASES if c.values[0] == analyte]
        columns = list(zip(*rows, strict=True))[1:6]  # value, uln, lln, base, base_uln
        cols = [[math.nan if x is None else x for x in col] for col in columns]
        found = ctcae_grades(analyte, *cols)
        assert [None if math.isnan(g) else int(g) for g in found] == [r[6] for r in rows]


def test_ctcae_grade_reads_threshold_overrides():
    t = {**{th.key: th.value for th in CTCAE_THRESHOLDS["anc"]}, "abs_g4": 0.6}
    assert grade("anc", 0.55, 8.0, 1.5, None, t=t) == 4
    assert grade("anc", 0.55, 8.0, 1.5, None) == 3


def test_ctcae_grade_refuses_unknown_analyte():
    with pytest.raises(KeyError):
        grade("ferritin", 1000, 300, 30, None)


def _run(rule_id, course, **overrides):
    return evaluate_course(course, [BY_ID[rule_id]], {rule_id: overrides})[0]


RULE_CASES = [
    pytest.param("ctcae_ast", [("ast", -6, 30), ("ast", 6, 250, 10, 40)], Status.MET, 3, 6.0,
                 id="rule-ast-normal-baseline-g3"),
    pytest.param("ctcae_ast", [("ast", -6, 100, 10, 40), ("ast", 6, 250, 10, 40)],
                 Status.MET, 1, 6.0, id="rule-ast-abnormal-baseline-g1"),
    pytest.param("ctcae_fibrinogen", [("fibrinogen", -6, 350, 200, 400),
                                      ("fibrinogen", 8, 110, 200, 400)],
                 Status.MET, 3, 8.0, id="rule-fibrinogen-s8-g3"),
    pytest.param("ctcae_creatinine", [("creatinine", -6, 0.6, 0.6, 1.2),
                                      ("creatinine", 5, 2.0, 0.6, 1.2)],
                 Status.MET, 3, 5.0, id="rule-creatinine-s8-g3"),
    pytest.param("ctcae_anc", [("anc", 3, 0.7)], Status.MET, 3, 3.0, id="rule-anc-0.7-g3"),
    pytest.param("ctcae_anc", [("anc", 3, 0.7), ("anc", 4, 3.0)], Status.NOT_MET, 0, None,
                 id="rule-anc-recovered-g0"),
    pytest.param("ctcae_platelets", [("platelets", 2, 40), ("platelets", 3, 60),
                                     ("platelets", 4, 30)],
                 Status.MET, 3, 2.0, id="rule-plt-since-first-of-run"),
    pytest.param("ctcae_platelets", [("platelets", 2, 40), ("platelets", 3, 200),
                                     ("platelets", 4, 30)],
                 Status.MET, 3, 4.0, id="rule-plt-new-run-after-clearing"),
    pytest.param("ctcae_hemoglobin", [], Status.NOT_EVALUABLE, None, None,
                 id="rule-no-result-not-evaluable"),
]

# Evaluator-level cases for every ctcae_<analyte> rule: a met and a not-met case each, on both
# sides of a cut (criteria §8 worked examples where one exists). Labs: (analyte, day, value,
# LLN, ULN); a day -6 row is the baseline.
_B = {"ast": ("ast", -6, 30, 10, 40), "alt": ("alt", -6, 20, 7, 56),
      "bili": ("bilirubin", -6, 0.5, 0.1, 1.2), "creat": ("creatinine", -6, 1.0, 0.6, 1.2),
      "fib": ("fibrinogen", -6, 350, 200, 400)}
RULE_CASES += [
    # AST / ALT: "> ULN" is grade 1, at ULN is grade 0 (normal baseline)
    pytest.param("ctcae_ast", [_B["ast"], ("ast", 6, 40, 10, 40)], Status.NOT_MET, 0, None,
                 id="rule-ast-at-uln-g0"),
    pytest.param("ctcae_ast", [_B["ast"], ("ast", 6, 40.1, 10, 40)], Status.MET, 1, 6.0,
                 id="rule-ast-above-uln-g1"),
    pytest.param("ctcae_alt", [_B["alt"], ("alt", 6, 56, 7, 56)], Status.NOT_MET, 0, None,
                 id="rule-alt-at-uln-g0"),
    pytest.param("ctcae_alt", [_B["alt"], ("alt", 6, 57, 7, 56)], Status.MET, 1, 6.0,
                 id="rule-alt-above-uln-g1"),
    pytest.param("ctcae_alt", [("alt", -6, 20, 7, 40), ("alt", 14, 320, 7, 40)], Status.MET, 3,
                 14.0, id="rule-alt-s1.6-8x-uln-g3"),
    # bilirubin: x ULN, and the abnormal-baseline column ("> 1.0 x baseline")
    pytest.param("ctcae_bilirubin", [_B["bili"], ("bilirubin", 5, 1.2, 0.1, 1.2)],
                 Status.NOT_MET, 0, None, id="rule-bili-at-uln-g0"),
    pytest.param("ctcae_bilirubin", [_B["bili"], ("bilirubin", 5, 1.81, 0.1, 1.2)],
                 Status.MET, 2, 5.0, id="rule-bili-above-1.5x-uln-g2"),
    pytest.param("ctcae_bilirubin", [("bilirubin", -6, 2.0, 0.1, 1.2),
                                     ("bilirubin", 5, 2.0, 0.1, 1.2)],
                 Status.NOT_MET, 0, None, id="rule-bili-1.0x-abnormal-baseline-g0"),
    pytest.param("ctcae_bilirubin", [("bilirubin", -6, 2.0, 0.1, 1.2),
                                     ("bilirubin", 5, 2.1, 0.1, 1.2)],
                 Status.MET, 1, 5.0, id="rule-bili-above-1.0x-abnormal-baseline-g1"),
    # creatinine (§2 worked example: ULN 1.2)
    pytest.param("ctcae_creatinine", [_B["creat"], ("creatinine", 6, 1.2, 0.6, 1.2)],
                 Status.NOT_MET, 0, None, id="rule-creat-at-uln-g0"),
    pytest.param("ctcae_creatinine", [_B["creat"], ("creatinine", 6, 1.4, 0.6, 1.2)],
                 Status.MET, 1, 6.0, id="rule-creat-s2-1.4-g1"),
    pytest.param("ctcae_creatinine", [_B["creat"], ("creatinine", 7, 4.0, 0.6, 1.2)],
                 Status.MET, 3, 7.0, id="rule-creat-s2-4.0-g3"),
    # fibrinogen
    pytest.param("ctcae_fibrinogen", [_B["fib"], ("fibrinogen", 8, 200, 200, 400)],
                 Status.NOT_MET, 0, None, id="rule-fib-at-lln-g0"),
    pytest.param("ctcae_fibrinogen", [_B["fib"], ("fibrinogen", 8, 45, 200, 400)],
                 Status.MET, 4, 8.0, id="rule-fib-s8-45-g4"),
    # counts: grade 1 needs < LLN; grades 2-4 absolute
    pytest.param("ctcae_anc", [("anc", 3, 1.5, 1.5, 8.0)], Status.NOT_MET, 0, None,
                 id="rule-anc-at-lln-g0"),
    pytest.param("ctcae_anc", [("anc", 3, 0.49, 1.5, 8.0)], Status.MET, 4, 3.0,
                 id="rule-anc-below-0.5-g4"),
    pytest.param("ctcae_platelets", [("platelets", 5, 150, 150, 400)], Status.NOT_MET, 0, None,
                 id="rule-plt-at-lln-g0"),
    pytest.param("ctcae_platelets", [("platelets", 5, 149, 150, 400)], Status.MET, 1, 5.0,
                 id="rule-plt-below-lln-g1"),
    pytest.param("ctcae_platelets", [("platelets", 5, 24, 150, 400)], Status.MET, 4, 5.0,
                 id="rule-plt-below-25-g4"),
    pytest.param("ctcae_hemoglobin", [("hemoglobin", 4, 12.0, 12, 17)], Status.NOT_MET, 0, None,
                 id="rule-hb-at-lln-g0"),
    pytest.param("ctcae_hemoglobin", [("hemoglobin", 4, 11.9, 12, 17)], Status.MET, 1, 4.0,
                 id="rule-hb-below-lln-g1"),
    pytest.param("ctcae_hemoglobin", [("hemoglobin", 4, 7.9, 12, 17)], Status.MET, 3, 4.0,
                 id="rule-hb-below-8-g3"),
    pytest.param("ctcae_alc", [("alc", 2, 1.0, 1.0, 4.0)], Status.NOT_MET, 0, None,
                 id="rule-alc-at-lln-g0"),
    pytest.param("ctcae_alc", [("alc", 2, 0.99, 1.0, 4.0)], Status.MET, 1, 2.0,
                 id="rule-alc-below-lln-g1"),
    pytest.param("ctcae_alc", [("alc", 2, 0.19, 1.0, 4.0)], Status.MET, 4, 2.0,
                 id="rule-alc-below-0.2-g4"),
    pytest.param("ctcae_wbc", [("wbc", 2, 4.0, 4.0, 11.0)], Status.NOT_MET, 0, None,
                 id="rule-wbc-at-lln-g0"),
    pytest.param("ctcae_wbc", [("wbc", 2, 0.99, 4.0, 11.0)], Status.MET, 4, 2.0,
                 id="rule-wbc-below-1-g4"),
    # triglycerides: absolute bands, grade 1 from 150 inclusive
    pytest.param("ctcae_triglycerides", [("triglycerides", 9, 149)], Status.NOT_MET, 0, None,
                 id="rule-tg-149-g0"),
    pytest.param("ctcae_triglycerides", [("triglycerides", 9, 150)], Status.MET, 1, 9.0,
                 id="rule-tg-150-g1"),
    pytest.param("ctcae_triglycerides", [("triglycerides", 9, 1001)], Status.MET, 4, 9.0,
                 id="rule-tg-above-1000-g4"),
]


@pytest.mark.parametrize("rule_id, labs, status, grade, since", RULE_CASES)
def test_ctcae_rule_grades_latest_result(rule_id, labs, status, grade, since):
    f = _run(rule_id, make_course(labs=labs))
    assert (f.status, f.grade, f.since_day) == (status, grade, since)
    if status is Status.MET:
        assert f.episode_key == f"since-day-{int(since)}"
    if status is Status.NOT_EVALUABLE:
        assert f.missing


def test_ctcae_rule_evidence_carries_original_units_and_ratio():
    c = make_course(labs=[("ast", -6, 30), ("ast", 6, 250, 10, 40)])
    f = _run("ctcae_ast", c)
    item = f.to_json()["evidence"][0]
    assert item["value"] == 250 and item["unit"] == "U/L"
    assert item["original_value"] == "250" and item["original_unit"] == "U/L"
    assert "6.25 x ULN" in item["why"]


def test_ctcae_rule_respects_as_of_day_even_with_later_rows():
    c = make_course(labs=[("anc", 3, 0.4), ("anc", 5, 3.0)])
    early = dataclasses.replace(c, as_of_day=3.9)
    assert _run("ctcae_anc", early).grade == 4
    assert _run("ctcae_anc", c).grade == 0


def test_every_ctcae_rule_has_a_met_and_a_not_met_evaluator_case():
    covered = {(p.values[0], p.values[2]) for p in RULE_CASES}
    for spec in RULES:
        assert (spec.rule.id, Status.MET) in covered, spec.rule.id
        assert (spec.rule.id, Status.NOT_MET) in covered, spec.rule.id


def test_every_ctcae_rule_is_declared_as_data():
    ids = [spec.rule.id for spec in RULES]
    assert ids == [f"ctcae_{a}" for a in ("ast", "alt", "bilirubin", "creatinine", "fibrinogen",
                                           "anc", "platelets", "hemoglobin", "alc", "wbc",
                                           "triglycerides")]
    for spec in RULES:
        assert spec.rule.graded and spec.rule.thresholds and "§8" in spec.rule.citation.section
        assert all(t.op in (">", ">=", "<", "<=") for t in spec.rule.thresholds)


def test_baseline_is_the_draw_on_the_lymphodepletion_start_day():
    """criteria §0.2 [DESIGN]: the day -5 06:00 draw on the lymphodepletion date precedes the
    chemotherapy, so it is the baseline (not the day-0 value)."""
    from datetime import date

    from core.rules.frames import Ward

    def baseline_day(course):  # the baseline known as of the course's as-of instant
        ward = Ward.of([course])
        return ward.labs.day[ward.baseline("ast")[-1]]

    labs = [("ast", -4.75, 100, 10, 40), ("ast", 0.25, 30, 10, 40), ("ast", 6.25, 250, 10, 40)]
    c = make_course(labs=labs, infusion_date=date(2026, 1, 6),
                    lymphodepletion_start=date(2026, 1, 1))
    assert baseline_day(c) == -4.75
    f = _run("ctcae_ast", c)
    assert f.grade == 1  # 2.5 x the abnormal baseline, not 6.25 x ULN
    later = make_course(labs=[("ast", -3.75, 100, 10, 40), *labs[1:]],
                        infusion_date=date(2026, 1, 6), lymphodepletion_start=date(2026, 1, 1))
    assert baseline_day(later) == 0.25  # a draw after the start day is not baseline

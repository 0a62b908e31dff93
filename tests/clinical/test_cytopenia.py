"""ICAHT (§6.1), T-ICAHT (§6.3), prolonged cytopenia (§6.2) and CAR-HEMATOTOX (§7)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from core.rules.base import Status
from core.rules.cytopenia import RULES
from core.rules.cytopenia.counting import count_windows
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course

BY_ID = {spec.rule.id: spec for spec in RULES}
INFUSION = date(2026, 1, 1)


def run(rule_id, course, **overrides):
    return evaluate_course(course, [BY_ID[rule_id]], {rule_id: overrides})[0]


def daily(analyte, values_by_day):
    """labs from {day: value}; a day absent from the mapping has no result."""
    return [(analyte, d, v) for d, v in sorted(values_by_day.items())]


def anc_days(below, deep=(), last=30, low=0.3, very_low=0.05, normal=2.0, skip=()):
    """Daily ANC 0..last: `deep` days at very_low, other `below` days at low, else normal."""
    out = {}
    for d in range(0, last + 1):
        if d in skip:
            continue
        out[d] = very_low if d in deep else low if d in below else normal
    return daily("anc", out)


WORKED_6_1 = anc_days(below=range(2, 16), deep=range(4, 10)) + [("anc", 45, 0.8),
                                                                   ("anc", 52, 0.9)]

# --- icaht_early ------------------------------------------------------------------------

EARLY_CASES = [
    pytest.param(WORKED_6_1, {}, Status.MET, 3, {"days_cut": 14, "days_deep_cut": 6},
                 id="s6.1-worked-example-grade-3"),
    pytest.param(anc_days(range(5, 11)), {}, Status.MET, 1, {"days_cut": 6}, id="6-days-g1"),
    pytest.param(anc_days(range(5, 12)), {}, Status.MET, 2, {"days_cut": 7}, id="7-days-g2"),
    pytest.param(anc_days(range(5, 18)), {}, Status.MET, 2, {"days_cut": 13}, id="13-days-g2"),
    pytest.param(anc_days(range(5, 19)), {}, Status.MET, 3, {"days_cut": 14}, id="14-days-g3"),
    pytest.param(anc_days(range(1, 30)), {}, Status.MET, 3, {"days_cut": 29}, id="29-days-g3"),
    # grade 4 = more than 30 days (never recovered in days 0-30), criteria §6.1
    pytest.param(anc_days(range(1, 31)), {}, Status.MET, 3, {"days_cut": 30}, id="30-days-g3"),
    pytest.param(anc_days(range(0, 31)), {}, Status.MET, 4, {"days_cut": 31}, id="31-days-g4"),
    pytest.param(anc_days(range(2, 9), deep=range(2, 9)), {}, Status.MET, 3,
                 {"days_deep_cut": 7}, id="deep-7-days-g3-third-party-row"),
    pytest.param(anc_days(range(2, 8), deep=range(2, 8)), {}, Status.MET, 1,
                 {"days_deep_cut": 6}, id="deep-6-days-g1"),
    pytest.param(anc_days(range(2, 16), deep=range(2, 16)), {}, Status.MET, 4,
                 {"days_deep_cut": 14}, id="deep-14-days-g4"),
    pytest.param(anc_days(range(5, 12), low=0.5), {}, Status.MET, 2, {"days_cut": 7},
                 id="anc-exactly-0.5-counts"),
    pytest.param(anc_days(range(5, 12), low=0.51), {}, Status.NOT_MET, 0, {"days_cut": 0},
                 id="anc-0.51-does-not-count"),
    pytest.param(anc_days(range(2, 9), deep=range(2, 9), very_low=0.1), {}, Status.MET, 3,
                 {"days_deep_cut": 7}, id="anc-exactly-0.1-counts-deep"),
    pytest.param(anc_days([]), {}, Status.NOT_MET, 0, {"days_cut": 0}, id="never-low-g0"),
    # non-stable recovery (< 3 days above) is counted in; 3 days above is a recovery
    pytest.param(anc_days([*range(2, 9), *range(11, 16)]), {}, Status.MET, 3,
                 {"days_cut": 14}, id="interruption-2-days-counted-in"),
    pytest.param(anc_days([*range(2, 9), *range(12, 16)]), {}, Status.MET, 2,
                 {"days_cut": 11}, id="recovery-3-days-ends-period"),
    # censoring at progression (that day included)
    pytest.param(anc_days(range(2, 21)) + [], {"events": [("progression", 10)]}, Status.MET, 2,
                 {"days_cut": 9, "censored": {"event": "progression", "day": 10.0}},
                 id="censored-at-progression"),
    pytest.param(anc_days(range(2, 21)), {"events": [("last_followup", 10)]}, Status.MET, 3,
                 {"days_cut": 19}, id="last-followup-does-not-censor"),
    pytest.param(anc_days(range(2, 21)), {"events": [("next_therapy", 15)]}, Status.MET, 3,
                 {"days_cut": 14}, id="censored-at-next-therapy"),
    # a missing day between two low values is bridged
    pytest.param(anc_days(range(2, 16), skip=[8]), {}, Status.MET, 3,
                 {"days_cut": 14, "measured_days": 30, "window_days": 31},
                 id="one-missing-day-bridged"),
    pytest.param(anc_days(range(2, 9), skip=[20, 21]), {}, Status.MET, 2,
                 {"days_cut": 7, "grade_if_unmeasured_low": 2, "grade_if_unmeasured_high": 2},
                 id="unmeasured-days-that-cannot-change-grade"),
    # 0.3 on day 11, 2.0 on day 15: interpolated 0.725 on day 12 is not low
    pytest.param(anc_days(range(0, 12), skip=[12, 13, 14]), {}, Status.MET, 2,
                 {"days_cut": 12, "days_cut_if_unmeasured_low": 15,
                  "grade_if_unmeasured_low": 3, "grade_if_unmeasured_high": 2},
                 id="interpolated-gap-crossing-the-threshold"),
    # bridge_days (7): a gap of 7 unmeasured days between two lows is bridged, 8 is not
    pytest.param(daily("anc", {**dict.fromkeys(range(0, 11), 0.3), 18: 0.3,
                               **dict.fromkeys(range(19, 31), 2.0)}), {}, Status.MET, 3,
                 {"days_cut": 19}, id="gap-of-7-days-bridged"),
    pytest.param(daily("anc", {**dict.fromkeys(range(0, 11), 0.3), 19: 0.3,
                               **dict.fromkeys(range(20, 31), 2.0)}), {}, Status.MET, 2,
                 {"days_cut": 12}, id="gap-of-8-days-not-bridged"),
]


@pytest.mark.parametrize("labs, kw, status, grade, extra", EARLY_CASES)
def test_icaht_early(labs, kw, status, grade, extra):
    f = run("icaht_early", make_course(labs=labs, **kw))
    assert (f.status, f.grade) == (status, grade)
    for k, v in extra.items():
        assert f.extra[k] == v, k


@pytest.mark.parametrize("skip, kw, missing", [
    pytest.param([7, 8, 9, 10], {}, ["ANC result for days 7-10 (or record why it was not "
                                     "drawn)"], id="inpatient-days-that-could-decide"),
    pytest.param([20, 21, 22, 23], {}, [], id="outpatient-days-after-monitoring-phase"),
    pytest.param([7, 8, 9, 10], {"events": [("last_followup", 6.5)]}, [],
                 id="after-discharge-event"),
    pytest.param([5, 6, 7, 8, 9, 10], {"events": [("last_followup", 6.5)]},
                 ["ANC result for days 5-6 (or record why it was not drawn)"],
                 id="before-discharge-still-asked"),
])
def test_icaht_early_missing_days_keep_a_grade_and_prompt_only_inpatient(skip, kw, missing):
    f = run("icaht_early", make_course(labs=anc_days([], skip=skip), **kw))
    assert (f.status, f.grade) == (Status.NOT_MET, 0)
    assert f.extra["grade_if_unmeasured_low"] >= 1
    assert f.missing == missing


def test_icaht_early_without_any_result_is_not_evaluable():
    f = run("icaht_early", make_course(labs=[("hemoglobin", 3, 9.0)], as_of_day=5.5))
    assert f.status is Status.NOT_EVALUABLE and f.grade is None
    assert f.missing == ["ANC result for days 0-4 (or record why it was not drawn)"]


# --- sparse sampling: daily counts to day 14, then three times a week -----------------------

OUTPATIENT = [16, 18, 21, 23, 25, 28, 30]


def sparse_anc(low_daily=(), low_out=(), low=0.3, normal=2.0, out_days=OUTPATIENT):
    return daily("anc", {d: low if d in low_daily or d in low_out else normal
                         for d in [*range(0, 15), *out_days]})


SPARSE_CASES = [
    # the published-style grade 0 course: never low, 22 of 31 days measured
    # (9 unmeasured days 15-29, each at most 2 days from the next: 15 days if all low)
    pytest.param(sparse_anc(), {}, Status.NOT_MET, 0, 0, 3,
                 "grade 0 · 22 of 31 days measured · at most grade 3 if the unmeasured days "
                 "were low (ANC <= 0.5 x 10^9/L)", id="sparse-grade-0-now-evaluable"),
    # low every measured day from day 2 to day 23, then recovered
    pytest.param(sparse_anc(range(2, 15), [16, 18, 21, 23]), {}, Status.MET, 3, 3, 3,
                 "grade 3 · 22 of 31 days measured", id="sparse-long-neutropenia-bridged"),
    # low to day 14, normal from day 17 on, sampled every 2-3 days: bounds 3..4
    pytest.param(sparse_anc(range(0, 15), out_days=[17, 19, 21, 24, 26, 28]),
                 {"as_of_day": 40}, Status.MET, 3, 3, 4,
                 "grade 3 · 21 of 31 days measured · at most grade 4 if the unmeasured days "
                 "were low (ANC <= 0.5 x 10^9/L)", id="sparse-long-neutropenia-bounds"),
    # low on every measured day 0-30: grade 4 with measured days stated
    pytest.param(sparse_anc(range(0, 15), OUTPATIENT), {}, Status.MET, 4, 4, 4,
                 "grade 4 · 22 of 31 days measured", id="sparse-never-recovered-g4"),
]


@pytest.mark.parametrize("labs, kw, status, grade, lo, hi, summary", SPARSE_CASES)
def test_icaht_early_sparse_sampling(labs, kw, status, grade, lo, hi, summary):
    f = run("icaht_early", make_course(labs=labs, **kw))
    assert (f.status, f.grade) == (status, grade)
    assert (f.extra["grade_if_unmeasured_high"], f.extra["grade_if_unmeasured_low"]) == (lo, hi)
    assert f.extra["summary"] == summary
    assert f.extra["window_days"] == 31 and f.missing == []
    assert lo <= f.grade <= hi


def test_ticaht_early_sparse_sampling_keeps_a_grade():
    values = {d: 10.0 if 3 <= d <= 10 else 120.0 for d in range(0, 15)}
    values.update(dict.fromkeys(OUTPATIENT, 150.0))
    f = run("ticaht_early", make_course(labs=daily("platelets", values)))
    assert (f.status, f.grade, f.missing) == (Status.MET, 3, [])
    assert (f.extra["measured_days"], f.extra["window_days"]) == (22, 31)
    assert f.extra["grade_if_unmeasured_high"] == 3
    assert f.extra["summary"].startswith("grade 3 · 22 of 31 days measured")


def test_profound_values_bridged_stay_within_the_bounds():
    labs = sparse_anc(range(0, 15), OUTPATIENT, low=0.05)  # ANC <= 0.1 on every measured day
    f = run("icaht_early", make_course(labs=labs))
    assert f.grade == 4 and f.extra["days_deep_cut"] == 31
    assert f.extra["grade_if_unmeasured_high"] == f.extra["grade_if_unmeasured_low"] == 4


# site choice: two 7-day periods with a stable recovery between them
TWO_PERIODS = anc_days([*range(2, 9), *range(20, 27)])


@pytest.mark.parametrize("rule_id, labs, overrides, grade, days", [
    pytest.param("icaht_early", TWO_PERIODS, {}, 3, 14, id="n-cumulative-default-g3"),
    pytest.param("icaht_early", TWO_PERIODS, {"count_longest_run": 1}, 2, 7,
                 id="n-longest-run-grader-g2"),
    pytest.param("ticaht_early", None, {}, 2, 8, id="t-cumulative-default-g2"),
    pytest.param("ticaht_early", None, {"count_longest_run": 1}, 1, 4,
                 id="t-longest-run-grader-g1"),
])
def test_early_site_choice_cumulative_or_longest_run(rule_id, labs, overrides, grade, days):
    if labs is None:  # platelets < 50 on days 3-6 and 15-18
        labs = daily("platelets", {d: 30.0 if d in (*range(3, 7), *range(15, 19)) else 200.0
                                   for d in range(0, 31)})
    f = run(rule_id, make_course(labs=labs), **overrides)
    assert (f.grade, f.extra["days_cut"]) == (grade, days)


def test_icaht_early_reports_grade_so_far_before_day_30():
    f = run("icaht_early", make_course(labs=WORKED_6_1, as_of_day=10.5))
    assert (f.status, f.grade, f.since_day) == (Status.MET, 2, 2.0)
    assert f.extra["provisional_until_day"] == 30 and f.extra["so_far_through_day"] == 10
    assert f.episode_key == "since-day-2"
    final = run("icaht_early", make_course(labs=WORKED_6_1))
    assert "provisional_until_day" not in final.extra and final.episode_key == "since-day-2"


def test_icaht_early_today_without_result_is_left_out():
    f = run("icaht_early", make_course(labs=anc_days(range(2, 9), last=9), as_of_day=11.2))
    # day 10 carried from day 9, day 11 (today) has no result yet: counted through day 10
    assert f.status is Status.MET and f.extra["so_far_through_day"] == 10


def test_icaht_early_before_infusion_is_not_evaluable():
    f = run("icaht_early", make_course(labs=[("anc", -5, 2.0)], as_of_day=-2))
    assert f.status is Status.NOT_EVALUABLE and f.missing == []


def test_icaht_early_is_as_of_aware_without_filtered_frames():
    c = make_course(labs=WORKED_6_1)
    assert run("icaht_early", dataclasses.replace(c, as_of_day=10.5)).grade == 2


# --- icaht_late ---------------------------------------------------------------------------

LATE_CASES = [
    pytest.param([("anc", 45, 0.8), ("anc", 52, 0.9)], {}, Status.MET, 2, 45.0,
                 id="s6.1-worked-example-late-grade-2"),
    pytest.param([("anc", 45, 1.5), ("anc", 52, 1.5)], {}, Status.MET, 1, 45.0,
                 id="late-1.5-inclusive-g1"),
    pytest.param([("anc", 45, 1.6), ("anc", 52, 1.6)], {}, Status.NOT_MET, 0, None,
                 id="late-above-1.5-g0"),
    pytest.param([("anc", 45, 0.5), ("anc", 52, 0.5)], {}, Status.MET, 3, 45.0,
                 id="late-0.5-inclusive-g3"),
    pytest.param([("anc", 45, 0.1), ("anc", 52, 0.1)], {}, Status.MET, 4, 45.0,
                 id="late-0.1-inclusive-g4"),
    pytest.param([("anc", 40, 0.4), ("anc", 45, 1.2), ("anc", 52, 2.0)], {}, Status.MET, 1,
                 40.0, id="late-one-deep-value-is-transient"),
    pytest.param([("anc", 45, 0.8)], {}, Status.NOT_EVALUABLE, None, None,
                 id="late-one-value-not-evaluable"),
    pytest.param([("anc", 45, 0.4), ("anc", 52, 2.0)], {}, Status.NOT_MET, 0, None,
                 id="late-one-low-value-and-one-normal-g0"),
    pytest.param([("anc", 45, 0.4), ("anc", 52, 0.45)], {}, Status.MET, 3, 45.0,
                 id="late-two-low-values-g3"),
    pytest.param([("anc", 38, 0.4), ("anc", 41, 1.6), ("anc", 45, 0.45), ("anc", 59, 1.8)],
                 {}, Status.MET, 3, 38.0, id="late-sparse-two-low-values-apart-g3"),
    pytest.param([("anc", 30, 0.2), ("anc", 45, 0.8)], {}, Status.NOT_EVALUABLE, None, None,
                 id="late-day-30-is-early"),
    pytest.param([("anc", 45, 0.8), ("anc", 52, 0.9)], {"events": [("progression", 40)]},
                 Status.NOT_EVALUABLE, None, None, id="late-censored-at-progression"),
    pytest.param([("anc", 5, 0.2)], {"as_of_day": 20}, Status.NOT_EVALUABLE, None, None,
                 id="late-window-not-open"),
]


@pytest.mark.parametrize("labs, kw, status, grade, since", LATE_CASES)
def test_icaht_late(labs, kw, status, grade, since):
    f = run("icaht_late", make_course(labs=labs, **kw))
    assert (f.status, f.grade, f.since_day) == (status, grade, since)


# --- ticaht_early -------------------------------------------------------------------------


def plt_days(values: dict[int, float], last=30, normal=200.0):
    return daily("platelets", {d: values.get(d, normal) for d in range(0, last + 1)})


def span(days, value):
    return dict.fromkeys(days, value)


TICAHT_EARLY_CASES = [
    pytest.param(plt_days(span(range(3, 9), 30)), {}, Status.MET, 1, id="lt50-6-days-g1"),
    pytest.param(plt_days(span(range(3, 10), 30)), {}, Status.MET, 2, id="lt50-7-days-g2"),
    pytest.param(plt_days(span(range(3, 10), 50)), {}, Status.NOT_MET, 0,
                 id="plt-exactly-50-not-counted"),
    pytest.param(plt_days(span(range(3, 10), 49.9)), {}, Status.MET, 2, id="plt-49.9-counted"),
    pytest.param(plt_days({5: 19}), {}, Status.MET, 3, id="lt20-1-day-g3"),
    pytest.param(plt_days({5: 20}), {}, Status.MET, 1, id="plt-exactly-20-not-deep"),
    pytest.param(plt_days(span(range(3, 16), 10)), {}, Status.MET, 3, id="lt20-13-days-g3"),
    pytest.param(plt_days(span(range(3, 17), 10)), {}, Status.MET, 4, id="lt20-14-days-g4"),
    # recovery needs 3 days >= 20 without a platelet transfusion in the 7 days before
    pytest.param(plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)}), {},
                 Status.MET, 3, id="lt20-8-days-no-transfusion-g3"),
    pytest.param(plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)}),
                 {"treatments": [("platelet_transfusion", 7)]}, Status.MET, 4,
                 id="transfusion-day-7-delays-recovery-g4"),
    pytest.param(plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)}),
                 {"observations": [("transfusion", 7, "platelets")]}, Status.MET, 4,
                 id="transfusion-observation-delays-recovery-g4"),
    pytest.param(plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)}),
                 {"observations": [("transfusion", 7, "rbc")]}, Status.MET, 3,
                 id="rbc-transfusion-does-not-count"),
    pytest.param(plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)}),
                 {"treatments": [("platelet_transfusion", -2)]}, Status.MET, 3,
                 id="transfusion-over-7-days-before-recovery-ignored"),
    pytest.param(plt_days({3: 30}), {"treatments": [("platelet_transfusion", 3)]},
                 Status.MET, 1, id="transfusion-without-deep-period-adds-nothing"),
]


@pytest.mark.parametrize("labs, kw, status, grade", TICAHT_EARLY_CASES)
def test_ticaht_early(labs, kw, status, grade):
    f = run("ticaht_early", make_course(labs=labs, **kw))
    assert (f.status, f.grade) == (status, grade)


def test_ticaht_early_transfusion_counts_supported_days():
    labs = plt_days({**span(range(0, 8), 10), **span(range(8, 31), 30)})
    f = run("ticaht_early", make_course(labs=labs, treatments=[("platelet_transfusion", 7)]))
    assert f.extra["days_deep_cut"] == 15  # days 0-7 < 20, days 8-14 within 7 days of tx


# --- ticaht_late --------------------------------------------------------------------------

TICAHT_LATE_CASES = [
    pytest.param([("platelets", 40, 90), ("platelets", 47, 95)], Status.MET, 1,
                 id="late-lt100-g1"),
    pytest.param([("platelets", 40, 100), ("platelets", 47, 100)], Status.NOT_MET, 0,
                 id="late-exactly-100-g0"),
    pytest.param([("platelets", 40, 45), ("platelets", 47, 48)], Status.MET, 2,
                 id="late-lt50-corrected-grade-2-row"),
    pytest.param([("platelets", 40, 50), ("platelets", 47, 50)], Status.MET, 1,
                 id="late-exactly-50-g1"),
    pytest.param([("platelets", 40, 15), ("platelets", 47, 18)], Status.MET, 3,
                 id="late-lt20-g3"),
    pytest.param([("platelets", 40, 20), ("platelets", 47, 20)], Status.MET, 2,
                 id="late-exactly-20-g2"),
    pytest.param([("platelets", 40, 15), ("platelets", 47, 90)], Status.MET, 1,
                 id="late-single-deep-value-transient"),
    pytest.param(daily("platelets", span(range(31, 45), 10)), Status.MET, 4,
                 id="late-lt20-14-days-g4"),
    pytest.param(daily("platelets", span(range(31, 44), 10)), Status.MET, 3,
                 id="late-lt20-13-days-g3"),
    pytest.param([("platelets", 31, 10), ("platelets", 38, 12), ("platelets", 45, 15)],
                 Status.MET, 4, id="late-weekly-lt20-bridged-g4"),
    pytest.param([("platelets", 40, 45)], Status.NOT_EVALUABLE, None, id="late-one-value"),
    pytest.param([("platelets", 101, 45), ("platelets", 105, 45), ("platelets", 60, 200),
                  ("platelets", 70, 210)], Status.NOT_MET, 0, id="late-after-day-100-ignored"),
]


@pytest.mark.parametrize("labs, status, grade", TICAHT_LATE_CASES)
def test_ticaht_late(labs, status, grade):
    f = run("ticaht_late", make_course(labs=labs))
    assert (f.status, f.grade) == (status, grade)


# --- prolonged_cytopenia ------------------------------------------------------------------


def counts(day, anc=2.0, plt=200.0, hb=12.0):
    return [("anc", day, anc), ("platelets", day, plt), ("hemoglobin", day, hb)]


PROLONGED_CASES = [
    pytest.param(counts(31, anc=0.8) + counts(35, anc=0.9), {}, Status.MET, 31.0,
                 id="anc-below-1-twice-after-30"),
    pytest.param(counts(31, anc=1.0) + counts(35, anc=1.0), {}, Status.NOT_MET, None,
                 id="anc-exactly-1.0-not-grade-3"),
    pytest.param(counts(31, plt=49) + counts(35, plt=40), {}, Status.MET, 31.0,
                 id="platelets-below-50"),
    pytest.param(counts(31, plt=50) + counts(35, plt=50), {}, Status.NOT_MET, None,
                 id="platelets-exactly-50"),
    pytest.param(counts(31, hb=7.9) + counts(35, hb=7.5), {}, Status.MET, 31.0,
                 id="hb-below-8"),
    pytest.param(counts(31, hb=8.0) + counts(35, hb=8.0), {}, Status.NOT_MET, None,
                 id="hb-exactly-8"),
    pytest.param(counts(30, anc=0.5) + counts(31, anc=0.5) + counts(32), {}, Status.NOT_MET,
                 None, id="day-30-is-not-after-landmark"),
    pytest.param(counts(31, anc=0.5), {}, Status.NOT_EVALUABLE, None,
                 id="one-value-needs-repeat"),
    pytest.param(counts(29, anc=0.5) + counts(30, anc=0.5), {"landmark_day": 28},
                 Status.MET, 29.0, id="site-landmark-28"),
    pytest.param(counts(20, anc=0.5), {}, Status.NOT_EVALUABLE, None,
                 id="before-landmark-not-evaluable"),
    pytest.param(counts(31, anc=0.8) + counts(35, anc=0.9) + counts(40, anc=2.0), {},
                 Status.NOT_MET, None, id="recovered-clears"),
    pytest.param(counts(31, anc=0.8) + counts(35, anc=0.9) + counts(40, anc=2.0)
                 + counts(45, anc=0.7) + counts(50, anc=0.6), {}, Status.MET, 45.0,
                 id="returns-as-new-episode"),
]


@pytest.mark.parametrize("labs, overrides, status, since", PROLONGED_CASES)
def test_prolonged_cytopenia(labs, overrides, status, since):
    f = run("prolonged_cytopenia", make_course(labs=labs), **overrides)
    assert (f.status, f.since_day) == (status, since)
    if status is Status.MET:
        assert f.episode_key == f"since-day-{int(since)}"
    if status is Status.NOT_EVALUABLE and since is None and labs[0][1] > 30:
        assert f.missing


# --- car_hematotox ------------------------------------------------------------------------

EXAMPLE_1 = {"anc": 1.0, "hemoglobin": 10.5, "platelets": 120, "crp": 40.0, "ferritin": 850}
EXAMPLE_2 = {"anc": 3.1, "hemoglobin": 12.4, "platelets": 210, "crp": 6.0, "ferritin": 420}


def baseline_labs(items, day=-5):
    return [(a, day, v) for a, v in items.items()]


HEMATOTOX_EXAMPLES = [
    pytest.param(EXAMPLE_1, 4, "high", Status.MET, id="s7-example-1-score-4-high"),
    pytest.param(EXAMPLE_2, 0, "low", Status.NOT_MET, id="s7-example-2-score-0-low"),
    pytest.param({**EXAMPLE_2, "ferritin": 650}, 1, "low", Status.NOT_MET,
                 id="score-1-low"),
    pytest.param({**EXAMPLE_2, "ferritin": 2000}, 2, "high", Status.MET, id="score-2-high"),
]


@pytest.mark.parametrize("items, score, risk, status", HEMATOTOX_EXAMPLES)
def test_car_hematotox_examples(items, score, risk, status):
    f = run("car_hematotox", make_course(labs=baseline_labs(items)))
    assert (f.score, f.extra["risk_group"], f.status) == (score, risk, status)


@pytest.mark.parametrize("analyte, value, points", [
    pytest.param("platelets", 175.1, 0, id="plt-175.1-0"),
    pytest.param("platelets", 175, 1, id="plt-175-boundary-higher-point"),
    pytest.param("platelets", 75, 1, id="plt-75-1"),
    pytest.param("platelets", 74.9, 2, id="plt-74.9-2"),
    pytest.param("anc", 1.21, 0, id="anc-1.21-0"),
    pytest.param("anc", 1.2, 1, id="anc-1.2-boundary-higher-point"),
    pytest.param("hemoglobin", 9.1, 0, id="hb-9.1-0"),
    pytest.param("hemoglobin", 9.0, 1, id="hb-9.0-boundary-higher-point"),
    pytest.param("crp", 29.9, 0, id="crp-29.9-mg-L-0"),
    pytest.param("crp", 30.0, 1, id="crp-3.0-mg-dL-boundary-higher-point"),
    pytest.param("ferritin", 649, 0, id="ferritin-649-0"),
    pytest.param("ferritin", 650, 1, id="ferritin-650-boundary-1"),
    pytest.param("ferritin", 1999, 1, id="ferritin-1999-1"),
    pytest.param("ferritin", 2000, 2, id="ferritin-2000-boundary-higher-point"),
])
def test_car_hematotox_item_boundaries(analyte, value, points):
    f = run("car_hematotox", make_course(labs=baseline_labs({**EXAMPLE_2, analyte: value})))
    assert f.extra["breakdown"][analyte] == points
    assert f.score == points


def test_car_hematotox_uses_labs_before_lymphodepletion():
    labs = baseline_labs(EXAMPLE_2, day=-6) + baseline_labs(EXAMPLE_1, day=-2)
    c = make_course(labs=labs, lymphodepletion_start=date(2025, 12, 27))  # day -5
    f = run("car_hematotox", c)
    assert (f.score, f.since_day) == (0, -6.0)
    same_day = make_course(labs=baseline_labs(EXAMPLE_1, day=-5) + baseline_labs(EXAMPLE_2, -2),
                           lymphodepletion_start=date(2025, 12, 27))
    assert run("car_hematotox", same_day).score == 4


def test_car_hematotox_without_ld_date_uses_day_minus_5_or_earlier():
    labs = baseline_labs(EXAMPLE_2, day=-7) + baseline_labs(EXAMPLE_1, day=-1)
    assert run("car_hematotox", make_course(labs=labs)).score == 0


@pytest.mark.parametrize("items, status, score, at_most", [
    pytest.param({"anc": 1.0, "ferritin": 2500}, Status.MET, 3, 7, id="partial-already-high"),
    pytest.param({"anc": 3.1}, Status.NOT_EVALUABLE, 0, None, id="partial-undecided"),
    pytest.param({k: v for k, v in EXAMPLE_2.items() if k != "crp"}, Status.NOT_MET, 0, 1,
                 id="missing-crp-cannot-make-high"),
])
def test_car_hematotox_incomplete(items, status, score, at_most):
    f = run("car_hematotox", make_course(labs=baseline_labs(items)))
    assert f.status is status and f.missing
    if status is not Status.NOT_EVALUABLE:
        assert (f.score, f.extra["score_at_most"]) == (score, at_most)


# --- counting machine and declarations ----------------------------------------------------


@pytest.mark.parametrize("states, unknown, expected", [
    pytest.param([1, 0, 0, 1], "above", (4, 0), id="2-day-gap-counted"),
    pytest.param([1, 0, 0, 0, 1], "above", (2, 0), id="3-day-gap-is-recovery"),
    pytest.param([0, 1, -1, -1, 1], "above", (4, 1), id="unknown-as-above-bridged-short"),
    pytest.param([1, -1, -1, -1, 0], "above", (1, 0), id="unknown-as-above-recovers"),
    pytest.param([1, -1, -1, -1, 0], "below", (4, 0), id="unknown-as-below"),
    pytest.param([1, 2, 2, 0, 0, 0], "above", (3, 0), id="supported-days-counted"),
    pytest.param([2, 2, 1], "above", (1, 2), id="supported-before-onset-not-counted"),
])
def test_count_windows_counts_one_window(states, unknown, expected):
    import numpy as np
    days, first = count_windows(np.array([states]), np.array([len(states)]), 3, unknown)
    assert (days[0], first[0]) == expected


def test_rules_declare_ids_citations_and_provisional_numbers():
    ids = [s.rule.id for s in RULES]
    assert ids == ["icaht_early", "icaht_late", "ticaht_early", "ticaht_late",
                   "prolonged_cytopenia", "car_hematotox"]
    for spec in RULES:
        r = spec.rule
        assert "criteria.md §" in r.citation.section and r.choices and r.thresholds
        assert all(t.op for t in r.thresholds)
    assert BY_ID["icaht_early"].rule.is_provisional  # UNCONFIRMED cells
    assert BY_ID["car_hematotox"].rule.scored
    assert all(BY_ID[i].rule.graded for i in ids[:4])


def test_infusion_date_default_is_what_the_dates_above_assume():
    assert make_course().patient.infusion_date == INFUSION


# prolonged_cytopenia censoring (as the §6.1 ICAHT counting rules): results after the day of a
# progression / next_therapy / death event are not CAR-T toxicity.
CENSOR_CASES = [
    pytest.param(counts(35) + counts(40) + counts(47, anc=0.8, plt=39)
                 + counts(52, anc=0.79, plt=40), [("progression", 45.4)], Status.NOT_MET,
                 id="syn-013-lows-after-progression-censored"),
    pytest.param(counts(35, anc=0.8) + counts(40, anc=0.7) + counts(47, anc=0.6),
                 [("next_therapy", 45.4)], Status.MET,
                 id="confirmed-before-next-therapy-stays-met"),
    pytest.param(counts(32, anc=0.8) + counts(47, anc=0.8), [("death", 20)], Status.NOT_MET,
                 id="censored-before-landmark"),
    pytest.param(counts(47, anc=0.8), [("progression", 40)], Status.NOT_MET,
                 id="censored-nothing-left-to-ask-for"),
]


@pytest.mark.parametrize("labs, events, status", CENSOR_CASES)
def test_prolonged_cytopenia_is_censored_at_progression_next_therapy_or_death(labs, events,
                                                                               status):
    f = run("prolonged_cytopenia", make_course(labs=labs, events=events))
    assert f.status is status
    assert f.extra["censored"]["event"] == events[0][0]
    assert not f.missing
    uncensored = run("prolonged_cytopenia", make_course(labs=labs))
    assert uncensored.status is not Status.NOT_MET or status is Status.NOT_MET

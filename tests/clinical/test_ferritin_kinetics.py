"""ferritin_kinetics: criteria.md §11 computed features and default flags [DESIGN]."""

from __future__ import annotations

import math

import pytest

from core.rules import ferritin
from core.rules.base import Status, Thresholds
from core.rules.engine import evaluate_course
from core.rules.frames import Ward
from core.vocabulary.course import make_course


def evaluate(course, t):
    """The rule's finding through the engine, with the thresholds `t`."""
    overrides = {ferritin.RULE.id: {k: t[k] for k in t.overridden}}
    return evaluate_course(course, ferritin.RULES, overrides)[0]


def run(labs, **kw):
    course = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in labs], **kw)
    return evaluate(course, Thresholds(ferritin.RULE))


def test_worked_example_day_12_to_14_is_a_rapid_rise():
    f = run([(12 + 8 / 24, 3000), (14 + 8 / 24, 9500)])
    assert f.status is Status.MET
    assert f.extra["fold_change"]["48h"] == pytest.approx(3.167, abs=1e-3)
    assert f.extra["log_slope_per_day"] == pytest.approx(math.log(9500 / 3000) / 2, abs=1e-4)
    assert f.extra["doubling_time_days"] == pytest.approx(1.20, abs=0.01)
    assert f.extra["rapid_rise"] is True and f.extra["rising"] is True
    assert any("3.17-fold" in e.why and e.value == 9500 for e in f.evidence)


RAPID_RISE_CASES = [
    pytest.param([(12.3, 3000), (14.3, 6000)], Status.MET, id="2.0-fold-in-48h-met"),
    pytest.param([(12.3, 3000), (14.3, 5999)], Status.NOT_MET, id="just-under-2-fold"),
    pytest.param([(12.3, 300), (14.3, 600)], Status.NOT_MET,
                 id="doubling-but-not-above-2x-uln"),
    pytest.param([(12.3, 301), (14.3, 602)], Status.MET, id="doubling-above-2x-uln"),
    pytest.param([(11.0, 3000), (14.3, 9500)], Status.MET,
                 id="3.2-fold-over-3.3-days-is-rapid-across-the-gap"),
    pytest.param([(11.0, 3000), (14.3, 6000)], Status.NOT_EVALUABLE,
                 id="no-sample-within-48h-plus-6h-and-slow-rise"),
    pytest.param([(12.1, 3000), (14.3, 9500)], Status.MET, id="sample-52h-before-in-tolerance"),
    pytest.param([(14.3, 500)], Status.NOT_MET, id="single-value-below-2x-uln"),
    pytest.param([(14.3, 5000)], Status.NOT_EVALUABLE, id="single-high-value-needs-a-pair"),
    pytest.param([], Status.NOT_EVALUABLE, id="no-ferritin"),
]


@pytest.mark.parametrize(("labs", "status"), RAPID_RISE_CASES)
def test_rapid_rise_flag(labs, status):
    assert run(labs).status is status


def test_rising_flag_at_1_5_fold_over_48h():
    assert run([(12.3, 1000), (14.3, 1500)]).extra["rising"] is True
    assert run([(12.3, 1000), (14.3, 1499)]).extra["rising"] is False


def test_fold_change_against_baseline_and_previous():
    f = run([(-5.0, 200), (13.3, 1000), (14.3, 3000)])
    assert f.extra["fold_change"]["baseline"] == pytest.approx(15.0)
    assert f.extra["fold_change"]["previous"] == pytest.approx(3.0)
    assert f.extra["fold_change"]["24h"] == pytest.approx(3.0)


# --- a rise over any interval (issue 16): weekly sampling ---------------------------------------
# ULN 300 throughout, so "> 2 x ULN" means > 600 ng/mL. Days are days after infusion.

WEEKLY_RAPID = [(0.25, 450), (7.25, 52000)]  # > 100-fold in 7 days: doubling time 1.02 days


@pytest.mark.parametrize(
    ("labs", "status", "rapid"),
    [
        pytest.param([(12 + 8 / 24, 3000), (14 + 8 / 24, 9500)], Status.MET, True,
                     id="criteria-11-worked-example-day-12-to-14"),
        pytest.param(WEEKLY_RAPID, Status.MET, True, id="weekly-over-100-fold-in-7-days"),
        pytest.param([(0.25, 1000), (7.25, 4000)], Status.NOT_EVALUABLE, None,
                     id="weekly-slow-rise-cannot-exclude-a-rapid-rise"),
        pytest.param([(0.25, 9000), (7.25, 4000)], Status.NOT_EVALUABLE, None,
                     id="weekly-fall-cannot-exclude-a-rapid-rise"),
        pytest.param([(13.3, 3000), (14.3, 4000)], Status.NOT_MET, False,
                     id="24h-apart-slow-rise-not-met"),
        # doubling time boundary over a gap: 6 days = 3 windows of 48 h, so 8-fold = 2 days
        pytest.param([(1.0, 1000), (7.0, 8000)], Status.MET, True,
                     id="doubling-time-exactly-2-days-over-6-days-met"),
        pytest.param([(1.0, 1000), (7.0, 7990)], Status.NOT_EVALUABLE, None,
                     id="doubling-time-just-over-2-days-over-6-days"),
        # 7 days: 2 ** 3.5 = 11.314-fold is a doubling time of 2 days
        pytest.param([(0.25, 1000), (7.25, 11320)], Status.MET, True,
                     id="11.32-fold-in-7-days-doubling-just-under-2-days"),
        pytest.param([(0.25, 1000), (7.25, 11300)], Status.NOT_EVALUABLE, None,
                     id="11.30-fold-in-7-days-doubling-just-over-2-days"),
        # the window edge: 48 h + 6 h tolerance (54 h) is still judged as a pair in the window
        pytest.param([(12.0, 3000), (14.25, 6000)], Status.MET, True,
                     id="2-fold-at-54h-in-window-met"),
        pytest.param([(12.0, 3000), (14.25, 5999)], Status.NOT_MET, False,
                     id="under-2-fold-at-54h-in-window-not-met"),
        pytest.param([(11.99, 3000), (14.25, 6000)], Status.NOT_EVALUABLE, None,
                     id="2-fold-just-past-54h-is-a-doubling-time-over-2-days"),
        # the absolute condition: > 2 x ULN, however fast the rise
        pytest.param([(0.25, 5), (7.25, 600)], Status.NOT_MET, False,
                     id="weekly-120-fold-but-not-above-2x-uln"),
        pytest.param([(0.25, 5), (7.25, 601)], Status.MET, True,
                     id="weekly-120-fold-just-above-2x-uln"),
        pytest.param([(13.3, 100), (14.3, 600)], Status.NOT_MET, False,
                     id="6-fold-in-24h-but-not-above-2x-uln"),
        # a daily course: values in the window decide, an older value is not used (a value
        # falling from its peak is not "rapidly rising" because of the climb before the peak)
        pytest.param([(10.25, 4028), (11.25, 7645), (12.25, 13124), (13.25, 12098)],
                     Status.NOT_MET, False, id="daily-falling-after-a-climb-not-met"),
        # the gap is measured back from the latest value to the previous one
        pytest.param([(0.25, 450), (7.25, 52000), (14.25, 60000)], Status.NOT_EVALUABLE, None,
                     id="weekly-plateau-after-a-rapid-week"),
    ],
)
def test_rise_over_any_interval(labs, status, rapid):
    f = run(labs)
    assert f.status is status
    assert f.extra["rapid_rise"] is rapid


def test_weekly_rapid_rise_evidence_states_interval_and_doubling_time():
    f = run(WEEKLY_RAPID)
    whys = [e.why for e in f.evidence]
    assert ("ferritin 450 -> 52,000 ng/mL over 7.0 days: doubling time <= 1.0 day "
            "(rapid rise: doubling time <= 2.0 days)") in whys
    assert "comparison value" in whys
    assert not f.missing


def test_weekly_slow_rise_says_a_rapid_rise_cannot_be_excluded():
    f = run([(0.25, 1000), (7.25, 4000)])
    whys = [e.why for e in f.evidence]
    assert ("ferritin 1,000 -> 4,000 ng/mL over 7.0 days: average doubling time 3.5 days "
            "(> 2.0 days); ferritin values 7.0 days apart: a rapid rise between them cannot be "
            "excluded") in whys
    assert f.missing == [ferritin.MISSING_PAIR]


def test_doubling_time_limit_follows_the_window_and_fold_thresholds():
    t = Thresholds(ferritin.RULE)
    assert ferritin.limit_doubling_days(t) == pytest.approx(2.0)
    # a site that wants 3-fold in 48 h: the limit is 48 h * ln 2 / ln 3 = 1.26 days
    t3 = Thresholds(ferritin.RULE, {"rapid_fold": 3.0})
    assert ferritin.limit_doubling_days(t3) == pytest.approx(2 * math.log(2) / math.log(3))
    course = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in WEEKLY_RAPID])
    assert evaluate(course, t3).status is Status.MET  # 115-fold: 1.02 d
    slow = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in
                             [(0.25, 450), (7.25, 20000)]])  # 1.28 days
    assert evaluate(slow, t).status is Status.MET
    assert evaluate(slow, t3).status is Status.NOT_EVALUABLE


def test_iec_hs_screen_sees_the_rapid_rise_across_a_gap():
    course = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in WEEKLY_RAPID])
    ward = Ward.of([course])
    rows = ferritin.judge(ward, Thresholds(ferritin.RULE))  # the rows iec_hs reads
    day_7 = int(ward.closing_rows()[0])  # the day of the 52,000
    assert rows["rapid"][day_7] == ferritin.RAPID
    assert ward.labs["value"][rows["rapid_ref"][day_7]] == 450


WEEKLY_COURSES = {
    "weekly-rapid-then-slow": [(-5.0, 300), (0.25, 450), (7.25, 52000), (14.25, 60000),
                               (21.25, 20000)],
    "weekly-slow": [(0.25, 1000), (7.25, 4000), (14.25, 9000), (21.25, 12000)],
    "weekly-then-daily": [(0.25, 450), (7.25, 52000), (8.25, 60000), (9.25, 61000),
                          (16.25, 200000)],
    "below-2x-uln": [(0.25, 5), (7.25, 600), (14.25, 601)],
}


@pytest.mark.parametrize("labs", list(WEEKLY_COURSES.values()), ids=list(WEEKLY_COURSES))
def test_replay_agrees_with_evaluating_each_day(labs):
    from core.rules.engine import replay_course
    from core.rules.frames import END_OF_DAY

    course = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in labs])
    replayed = replay_course(course, ferritin.RULES)
    days = [d for d, _ in labs]  # day 0 (or the first result, if later) to the last result
    assert [d for d, _ in replayed] == list(range(max(0, math.floor(min(days))),
                                                  math.floor(max(days)) + 1))
    for day, (f,) in replayed:
        want = evaluate_course(course.until(day + END_OF_DAY), ferritin.RULES)[0]
        assert (f.status, f.since_day, f.episode_key, f.to_json()) == (
            want.status, want.since_day, want.episode_key, want.to_json())

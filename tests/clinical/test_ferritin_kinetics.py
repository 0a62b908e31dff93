"""ferritin_kinetics: criteria.md §11 computed features and default flags [DESIGN]."""

from __future__ import annotations

import math

import pytest

from core.course import make_course
from core.rules import ferritin
from core.rules.base import Status, Thresholds


def run(labs, **kw):
    course = make_course(labs=[("ferritin", d, v, 30, 300) for d, v in labs], **kw)
    return ferritin.evaluate_kinetics(course, Thresholds(ferritin.RULE))


def test_worked_example_day_12_to_14_is_a_rapid_rise():
    f = run([(12 + 8 / 24, 3000), (14 + 8 / 24, 9500)])
    assert f.status is Status.MET
    assert f.extra["fold_change"]["48h"] == pytest.approx(3.167, abs=1e-3)
    assert f.extra["log_slope_per_day"] == pytest.approx(math.log(9500 / 3000) / 2, abs=1e-4)
    assert f.extra["doubling_time_days"] == pytest.approx(1.20, abs=0.01)
    assert f.extra["rapid_rise"] is True and f.extra["rising"] is True
    assert any("3.17-fold" in e.why and e.value == 9500 for e in f.evidence)


@pytest.mark.parametrize(
    ("labs", "status"),
    [
        pytest.param([(12.3, 3000), (14.3, 6000)], Status.MET, id="2.0-fold-in-48h-met"),
        pytest.param([(12.3, 3000), (14.3, 5999)], Status.NOT_MET, id="just-under-2-fold"),
        pytest.param([(12.3, 300), (14.3, 600)], Status.NOT_MET,
                     id="doubling-but-not-above-2x-uln"),
        pytest.param([(12.3, 301), (14.3, 602)], Status.MET, id="doubling-above-2x-uln"),
        pytest.param([(11.0, 3000), (14.3, 9500)], Status.NOT_EVALUABLE,
                     id="no-sample-within-48h-plus-6h"),
        pytest.param([(12.1, 3000), (14.3, 9500)], Status.MET, id="sample-52h-before-in-tolerance"),
        pytest.param([(14.3, 500)], Status.NOT_MET, id="single-value-below-2x-uln"),
        pytest.param([(14.3, 5000)], Status.NOT_EVALUABLE, id="single-high-value-needs-a-pair"),
        pytest.param([], Status.NOT_EVALUABLE, id="no-ferritin"),
    ],
)
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

"""therapy_response: IEC-HS labs not improving 48 h after IEC-HS-directed therapy (§1.5, §11)."""

from __future__ import annotations

import pytest

from core.rules import therapy_response
from core.rules.base import Status
from core.rules.engine import evaluate_course
from core.vocabulary.course import make_course


def run(ferritins, treatments=(("anakinra", 10.5),), episodes=(("IEC-HS", None, 10, None),),
        extra_labs=(), **kw):
    course = make_course(labs=[("ferritin", d, v) for d, v in ferritins] + list(extra_labs),
                         treatments=list(treatments), episodes=list(episodes), **kw)
    return evaluate_course(course, therapy_response.RULES)[0]


THERAPY_CASES = [
    pytest.param([(10.3, 20000), (12.6, 21000)], Status.MET, id="rising-at-48h-met"),
    pytest.param([(10.3, 20000), (12.6, 20000)], Status.MET, id="unchanged-at-48h-met"),
    pytest.param([(10.3, 20000), (12.6, 19000)], Status.NOT_MET, id="falling-at-48h"),
    pytest.param([(10.3, 20000), (11.9, 25000)], Status.NOT_MET, id="before-48h-not-due"),
    pytest.param([(10.3, 20000), (17.6, 10001)], Status.MET,
                 id="day-7-fall-under-50-percent-met"),
    pytest.param([(10.3, 20000), (17.6, 10000)], Status.NOT_MET,
                 id="day-7-fall-of-50-percent"),
    pytest.param([(12.6, 20000)], Status.NOT_EVALUABLE, id="no-ferritin-before-therapy"),
]


@pytest.mark.parametrize(("ferritins", "status"), THERAPY_CASES)
def test_therapy_response(ferritins, status):
    assert run(ferritins).status is status


def test_no_iec_hs_episode_is_not_met():
    f = run([(10.3, 20000), (12.6, 21000)], episodes=())
    assert f.status is Status.NOT_MET
    assert "no active IEC-HS" in f.evidence[0].why


def test_steroids_before_the_episode_do_not_start_the_clock():
    f = run([(8.3, 20000), (12.6, 21000)], treatments=(("dexamethasone", 4.0),))
    assert f.status is Status.NOT_MET
    assert "no IEC-HS-directed therapy yet" in f.evidence[0].why


def test_other_labs_are_reported_as_evidence():
    f = run([(10.3, 20000), (12.6, 21000)],
            extra_labs=[("alt", 10.3, 300), ("alt", 12.6, 450), ("fibrinogen", 10.3, 90),
                        ("fibrinogen", 12.6, 140)])
    whys = {e.analyte: e.why for e in f.evidence}
    assert whys["alt"].startswith("worse") and whys["fibrinogen"].startswith("better")
    assert f.since_day == 12 and f.episode_key == "since-day-12"


def test_no_ferritin_after_therapy_is_not_evaluable_once_due():
    f = run([(10.3, 20000)], as_of_day=12.9)
    assert f.status is Status.NOT_EVALUABLE
    assert f.missing == ["draw ferritin now (after therapy began)"]

"""The ward frames every rule reads: the grid of course-days, the as-of mapping (latest,
baseline), the met stretch, evidence items. Tables worked by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from core.rules.base import EvidenceItem
from core.rules.engine import met_since
from core.rules.frames import END_OF_DAY, Ward
from core.rules.series import Series
from core.rules.tables import NONE, asof
from core.vocabulary.course import make_course
from tests.rule_toys import course_of


@pytest.mark.parametrize(("strict", "want"), [
    # rows (key, day): (0, 1), (0, 2), (1, 0.5); queries at those instants
    (False, [NONE, 0, 1, 1, NONE, 2, NONE]),
    (True, [NONE, NONE, 0, 1, NONE, NONE, NONE]),
])
def test_asof_finds_the_latest_row_of_the_same_key(strict, want):
    rows_k, rows_d = np.array([0, 0, 1]), np.array([1.0, 2.0, 0.5])
    keys = np.array([0, 0, 0, 0, 1, 1, 2])
    ends = np.array([0.5, 1.0, 2.0, 9.0, 0.0, 0.5, 5.0])
    assert asof(rows_k, rows_d, keys, ends, strict=strict).tolist() == want


def _asof_by_scan(rows_k, rows_d, keys, ends, strict):
    """asof the slow way: scan the rows of the query's key (a NaN day is never known)."""
    out = []
    for k, end in zip(keys, ends, strict=True):
        mine = [i for i, (rk, rd) in enumerate(zip(rows_k, rows_d, strict=True))
                if rk == k and (rd < end if strict else rd <= end)]
        out.append(mine[-1] if mine else NONE)
    return out


@pytest.mark.parametrize("strict", [False, True])
def test_asof_is_the_scan_of_the_key_s_rows_on_many_random_wards(strict):
    """Ties, days without a value (NaN, sorted last), infinite ends, unknown keys."""
    rng = np.random.default_rng(2026)
    for _ in range(500):
        n, q = rng.integers(0, 25), rng.integers(0, 15)
        rows_k = rng.integers(0, 4, n)
        rows_d = rng.choice([-1.0, 0.0, 0.5, 1.0, 2.0, 3.0 - 1e-6, 3.0, np.nan], n)
        order = np.lexsort((rows_d, rows_k))
        rows_k, rows_d = rows_k[order], rows_d[order]
        keys = rng.integers(-1, 5, q)
        ends = rng.choice([-np.inf, -1.0, 0.0, 0.5, 2.0, 3.0 - 1e-6, 3.0, np.inf], q)
        assert (asof(rows_k, rows_d, keys, ends, strict=strict).tolist()
                == _asof_by_scan(rows_k, rows_d, keys, ends, strict))


@pytest.mark.parametrize(("strict", "want"), [
    (False, [1, 2]),  # every row of the key, the NaN day's included
    (True, [0, 2]),  # the rows with a day
])
def test_asof_at_a_nan_end(strict, want):
    rows_k, rows_d = np.array([0, 0, 1]), np.array([1.0, np.nan, 0.5])
    assert asof(rows_k, rows_d, np.array([0, 1]), np.array([np.nan, np.nan]),
                strict=strict).tolist() == want


GRID_CASES = [
    # (course, grid days, last end when evaluating, replay days)
    pytest.param(make_course(labs=[("anc", -2.5, 1.0), ("anc", 3.2, 1.0)], as_of_day=4.5),
                 list(range(-3, 5)), 4.5, range(0, 4), id="baseline-before-day-0"),
    pytest.param(make_course(labs=[("anc", 1.2, 1.0), ("anc", 3.2, 1.0)]),
                 [1, 2, 3], math.inf, range(1, 4), id="open-ended-to-the-last-data-day"),
    pytest.param(make_course(), [0], math.inf, range(0), id="no-data"),
    pytest.param(make_course(labs=[("anc", 2.5, 1.0)], as_of_day=-1.0), [-1], -1.0, range(0),
                 id="evaluated-before-the-first-data"),
    pytest.param(make_course(events=[("discharge", 3.5)], as_of_day=9.0),
                 list(range(0, 10)), 9.0, range(0, 4), id="events-only"),
    pytest.param(replace(make_course(observations=[("temperature", 0.2, 37.0),
                                                   ("temperature", 9.9, 37.0)]),
                         as_of_day=5.25),
                 list(range(0, 6)), 5.25, range(0, 6), id="data-after-the-as-of-day"),
]


@pytest.mark.parametrize(("course", "days", "last_end", "replayed"), GRID_CASES)
def test_grid_runs_from_the_first_data_day_to_the_evaluated_day(course, days, last_end,
                                                                 replayed):
    evaluating, replaying = Ward.of([course]), Ward.of([course], evaluating=False)
    assert evaluating.days["day"].tolist() == days == replaying.days["day"].tolist()
    assert evaluating.days["end"][-1] == last_end
    ends = replaying.days["end"].tolist()
    assert ends == [min(d + END_OF_DAY, course.as_of_day) for d in days]
    rows = replaying.replay_rows()
    assert replaying.days["day"][rows].tolist() == list(replayed)


def test_two_courses_share_one_grid_in_course_order():
    a = make_course(patient_id="A", labs=[("anc", 0.5, 1.0)], as_of_day=2.5)
    b = make_course(patient_id="B", labs=[("anc", 1.5, 1.0)], as_of_day=1.5)
    ward = Ward.of([a, b])
    assert list(zip(ward.days["key"].tolist(), ward.days["day"].tolist(), strict=True)) == [
        (0, 0), (0, 1), (0, 2), (1, 1)]
    assert ward.closing_rows().tolist() == [2, 3]
    assert ward.labs["key"].tolist() == [0, 1]


LABS = [("ferritin", -6.0, 200), ("ferritin", -3.2, 300), ("ferritin", 0.5, 400),
        ("ferritin", 0.5, 450), ("ferritin", 2.7, 900), ("crp", 1.0, 5)]


@pytest.mark.parametrize(("lymphodepletion", "want_latest", "want_baseline"), [
    # grid days -6..3; latest value known at each day's end, and the baseline then
    pytest.param(None, [200, 200, 300, 300, 300, 300, 450, 450, 900, 900],
                 [200, 200, 300, 300, 300, 300, 450, 450, 450, 450], id="no-lymphodepletion"),
    # lymphodepletion on day -5: the baseline is the last value on or before it (day -6)
    pytest.param(date(2025, 12, 27), [200, 200, 300, 300, 300, 300, 450, 450, 900, 900],
                 [200] * 10, id="lymphodepletion-day--5"),
])
def test_latest_and_baseline_are_those_known_at_each_days_end(lymphodepletion, want_latest,
                                                              want_baseline):
    course = make_course(labs=LABS, lymphodepletion_start=lymphodepletion, as_of_day=3.5)
    ward = Ward.of([course], evaluating=False)
    assert ward.days["day"].tolist() == list(range(-6, 4))
    assert ward.labs["value"][ward.latest("ferritin")].tolist() == want_latest
    assert ward.labs["value"][ward.baseline("ferritin")].tolist() == want_baseline
    crp = ward.latest("crp")
    assert (crp[:7] == NONE).all() and ward.labs["value"][crp[7:]].tolist() == [5, 5, 5]


def test_an_analyte_no_course_has_is_never_known():
    ward = Ward.of([make_course(labs=LABS, as_of_day=3.5)])
    assert (ward.latest("il6") == NONE).all() and (ward.baseline("il6") == NONE).all()
    assert (ward.latest_observation("no_such_kind") == NONE).all()


def test_the_latest_observation_of_a_kind():
    course = make_course(observations=[("temperature", 0.3, 38.2), ("temperature", 1.9, 37.1),
                                       ("oxygen_device", 1.2, "low_flow_nc")], as_of_day=2.5)
    ward = Ward.of([course])
    at = ward.latest_observation("temperature")
    assert ward.observations["value_num"][at].tolist() == [38.2, 37.1, 37.1]
    device = ward.latest_observation("oxygen_device")
    assert device[0] == NONE and ward.observation_evidence(int(device[1]), "on oxygen") == \
        EvidenceItem("on oxygen", "oxygen_device", 1.2, "low_flow_nc", None)
    assert ward.observation_evidence(int(at[0]), "fever") == \
        EvidenceItem("fever", "temperature", 0.3, 38.2, "°C")


def test_lab_evidence_names_the_value_its_origin_and_a_default_range():
    course = make_course(labs=[("ferritin", 1.5, 0.1, None, None, "<"),
                               ("anc", 2.5, 0.8, 1.5, 8.0)], as_of_day=3.0)
    ward = Ward.of([course])
    anc, ferritin = int(ward.latest("anc")[-1]), int(ward.latest("ferritin")[-1])
    assert ward.lab_evidence(anc, "grade 3") == EvidenceItem(
        "grade 3", "anc", 2.5, 0.8, "10^9/L", "0.8", "10^9/L", True)
    item = ward.lab_evidence(ferritin, "latest")
    assert (item.why, item.value) == ("latest (default reference range used)", "<0.1")
    low, high, default = ward.lab_limits
    assert default[ferritin] and not default[anc] and (low[anc], high[anc]) == (1.5, 8.0)


MET, NOT, NE = "met", "not_met", "not_evaluable"


@pytest.mark.parametrize(("first", "statuses", "want"), [
    pytest.param(0, [MET, MET, NOT, MET], [0, 0, None, 3], id="not-met-ends-a-stretch"),
    pytest.param(0, [MET, NE, MET], [0, None, 0], id="not-evaluable-neither-starts-nor-ends"),
    pytest.param(0, [NE, MET, MET], [None, 1, 1], id="starts-on-the-first-met-day"),
    # a course evaluated before its first data day: no day carries a stretch to the next
    pytest.param(5, [MET, MET, NE, MET], [0, 1, None, 3], id="none-before-the-first-data"),
])
def test_met_stretch(first, statuses, want):
    days = np.arange(len(statuses))
    grid = {"key": np.zeros(len(days), dtype=np.int64), "day": days,
            "first": np.full(len(days), float(first))}
    since = met_since(pd.DataFrame(grid), np.array(statuses, dtype=object))
    assert [None if math.isnan(x) else int(x) for x in since] == want


def test_now_is_the_rows_end_or_an_open_ended_courses_latest_data_day():
    evaluated = make_course(patient_id="A", labs=[("anc", 1.2, 1.0)], as_of_day=2.5)
    # open-ended: its last row is judged as of its latest data day, a recorded reason included
    open_ended = make_course(patient_id="B", labs=[("anc", 1.2, 1.0), ("anc", 3.2, 1.0)],
                             missing=[("anc", 4.1, "not_drawn")])
    ward = Ward.of([evaluated, open_ended, make_course(patient_id="C")])
    assert ward.days["day"].tolist() == [1, 2, 1, 2, 3, 0]
    assert ward.now().tolist() == [1 + END_OF_DAY, 2.5, 1 + END_OF_DAY, 2 + END_OF_DAY, 4.1,
                                   -math.inf]


def test_a_series_reads_windows_known_at_instants_and_dated_drops_rows_without_a_day():
    course = make_course(labs=[("anc", d, v) for d, v in [(0.5, 0.4), (1.5, 0.3), (2.2, 0.9),
                                                          (3.0, 1.1)]], as_of_day=3.5)
    course = replace(course, labs=course.labs.assign(day=[0.5, 1.5, 2.2, np.nan]))
    ward = Ward.of([course])
    anc = Series.lab(ward, "anc")
    assert len(anc.pos) == 4 and anc.dated().value.tolist() == [0.4, 0.3, 0.9]
    dated = anc.dated()
    assert dated.latest().tolist() == [0, 1, 2, 2]  # grid days 0..3
    assert dated.first_from(1.0).tolist() == [1, 1, 1, 1]
    # results of days 1..last_day known at as_of: [i0, i1)
    i0, i1 = dated.window(np.zeros(3, dtype=np.int64), 1.0, np.array([2.0, 2.0, 1.0]),
                          np.array([1.9, 9.0, 9.0]))
    assert (i0.tolist(), i1.tolist()) == ([1, 1, 1], [2, 3, 2])
    assert dated.values(np.array([2, NONE])).tolist()[0] == 0.9
    assert dated.frame_pos(np.array([0, NONE])).tolist() == [anc.pos[0], NONE]


def test_a_ward_read_whole_is_the_ward_of_its_courses(tmp_path):
    """The loader's whole frames (load_ward, never split per patient) make the same ward as
    the courses load_patient_courses splits them into: the same grid, the same rows of
    every table in the same order, each course rebuilt from the tables equal to the one
    read, and a course judged alone (`only`) the ward of that course alone."""
    from datetime import UTC, datetime

    from core.store.db import make_engine, session_scope
    from core.store.loading import load_patient_courses, load_ward
    from tests.sample_db import build_sample_db

    engine = make_engine(build_sample_db(tmp_path / "sample.db"))
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        read = load_ward(s, "Europe/Berlin", active_only=False, as_of=now, read="all")
        courses = [c for _, c in load_patient_courses(s, "Europe/Berlin", active_only=False,
                                                      as_of=now)]
    engine.dispose()
    assert [p.patient_id for p in read.patients] == [c.patient.patient_id for c in courses]
    for evaluating in (True, False):
        whole = Ward.of_frames(read.patients, read.as_of_days, read.tables, evaluating,
                               read.tz)
        made = Ward.of(courses, evaluating)
        for column in made.days:
            np.testing.assert_array_equal(whole.days[column], made.days[column])
        for name in ("labs", "observations", "treatments", "episodes", "events", "missing"):
            a, b = getattr(whole, name), getattr(made, name)
            assert len(a) > 0 or name == "missing", name
            assert a.blocks == b.blocks
            for column in b.columns:
                np.testing.assert_array_equal(a[column], b[column])
    whole = Ward.of_frames(read.patients, read.as_of_days, read.tables, True, read.tz)
    for key, course in enumerate(courses):
        rebuilt = course_of(whole, key)
        assert rebuilt.patient == course.patient and rebuilt.as_of_day == course.as_of_day
        for name in ("labs", "observations", "treatments", "episodes", "events", "missing"):
            pd.testing.assert_frame_equal(getattr(rebuilt, name).reset_index(drop=True),
                                          getattr(course, name).reset_index(drop=True),
                                          check_dtype=False)
        alone, of_course = whole.only(key), Ward.of([course])
        for column in of_course.days:
            np.testing.assert_array_equal(alone.days[column], of_course.days[column])
        np.testing.assert_array_equal(alone.labs["value"], of_course.labs["value"])

"""Rules engine: evaluate, replay (as of every day), errors isolated, site overrides, episodes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from core.config import Settings
from core.rules import crs, icans, iec_hs
from core.rules.base import (
    Citation,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
)
from core.rules.catalog import all_specs
from core.rules.engine import evaluate_course, judge_rules, replay_course, thresholds_for
from core.rules.frames import END_OF_DAY, Ward
from core.site_config import (
    SiteConfigError,
    load_overrides,
    load_site_config,
    parse_site_config,
    site_overrides,
)
from core.views.suggested_episodes import suggest_episodes, suggested_for
from core.vocabulary.course import make_course
from core.vocabulary.units import Evidence


def course_with_crs_and_iec_hs(**kw):
    obs = []
    for d in range(0, 16):
        obs += [("temperature", d + 0.3, 38.8 if 2 <= d <= 6 else 36.9),
                ("hypotension", d + 0.3, 1 if d in (3, 4) else 0),
                ("oxygen_device", d + 0.3, "none"), ("ice_score", d + 0.3, 10),
                ("consciousness", d + 0.3, "spontaneous")]
    labs = [("ferritin", -5, 300)]
    for d in range(0, 16):
        labs += [("ferritin", d + 0.3, 400 if d < 10 else 400 * 2 ** (d - 9)),
                 ("alt", d + 0.3, 30 if d < 11 else 400),
                 ("fibrinogen", d + 0.3, 300 if d < 11 else 120),
                 ("anc", d + 0.3, 2.0), ("platelets", d + 0.3, 200),
                 ("hemoglobin", d + 0.3, 12)]
    return make_course(labs=labs, observations=obs, birth_year=1960, **kw)


def _toy(rule_id: str, judge) -> RuleSpec:
    rule = Rule(id=rule_id, title="t", version="1", citation=Citation("s", "§0"),
                evidence=Evidence.DESIGN, severity=Severity.INFO,
                thresholds=(Threshold("k", 1.0, "count", Evidence.DESIGN, "d"),), inputs=("x",))
    return RuleSpec(rule, judge=judge,
                    explain=lambda ward, row, t: Finding(rule_id, Status(row["status"])))


def test_evaluate_course_runs_every_rule_in_catalogue_order():
    course = course_with_crs_and_iec_hs()
    findings = evaluate_course(course)
    assert [f.rule for f in findings] == [s.rule.id for s in all_specs()]
    assert all(f.status in set(Status) for f in findings)
    assert all("rule error" not in " ".join(f.missing) for f in findings)


def test_a_rule_that_raises_does_not_stop_the_others():
    def boom(ward, t):
        raise ZeroDivisionError("bad day")

    specs = [_toy("boom", boom), *crs.RULES]
    out = evaluate_course(course_with_crs_and_iec_hs(), specs)
    assert out[0].status is Status.NOT_EVALUABLE
    assert out[0].missing == ["rule error: ZeroDivisionError: bad day"]
    assert "ZeroDivisionError" in out[0].extra["error"]
    assert out[1].rule == "crs_grade" and out[1].status is Status.NOT_MET


def test_an_error_explaining_a_row_is_a_rule_error_in_evaluate_and_replay():
    spec = RuleSpec(_toy("lazy", None).rule,
                    judge=lambda ward, t: {"status": ["met"] * ward.size},
                    explain=lambda ward, row, t: Finding("lazy", Status.MET,
                                                         extra={"x": 1 / 0}))
    course = course_with_crs_and_iec_hs()
    out = evaluate_course(course, [spec])[0]
    assert out.status is Status.NOT_EVALUABLE
    assert out.missing == ["rule error: ZeroDivisionError: division by zero"]
    days = replay_course(course, [spec])
    assert {fs[0].status for _, fs in days} == {Status.NOT_EVALUABLE}


def test_a_judge_with_a_row_per_course_day_missing_is_a_rule_error():
    spec = _toy("short", lambda ward, t: {"status": ["met"] * (ward.size - 1)})
    out = evaluate_course(course_with_crs_and_iec_hs(), [spec])[0]
    assert out.status is Status.NOT_EVALUABLE and "course-days" in out.extra["error"]


def test_overrides_reach_the_rule_and_unknown_names_fail():
    course = course_with_crs_and_iec_hs(as_of_day=4.9)
    base = evaluate_course(course, crs.RULES)[0]
    hot = evaluate_course(course, crs.RULES, {"crs_grade": {"fever_c": 39.0}})[0]
    assert (base.grade, hot.grade) == (2, 0)
    with pytest.raises(KeyError, match="unknown rule"):
        evaluate_course(course, crs.RULES, {"nope": {}})
    with pytest.raises(KeyError, match="unknown threshold"):
        evaluate_course(course, crs.RULES, {"crs_grade": {"fevr": 1}})


def test_replay_covers_day_0_to_the_last_data_day():
    course = course_with_crs_and_iec_hs()
    days = replay_course(course, crs.RULES)
    assert [d for d, _ in days] == list(range(16))
    assert [fs[0].grade for _, fs in days][:8] == [0, 0, 1, 2, 2, 1, 1, 0]


def test_replay_starts_at_first_data_day_when_later_than_day_0():
    course = make_course(observations=[("temperature", 3.5, 37.0), ("temperature", 5.5, 38.5)])
    assert [d for d, _ in replay_course(course, [])] == [3, 4, 5]
    assert replay_course(make_course(), []) == []


def test_replay_equals_evaluating_the_course_cut_at_each_day_end():
    """Replay judges each day on what was known at its end (no future leaks)."""
    course = course_with_crs_and_iec_hs()
    specs = all_specs()
    replayed = dict(replay_course(course, specs))
    for day in (0, 4, 9, 12, 15):
        direct = evaluate_course(course.until(day + END_OF_DAY), specs)
        assert [f.to_json() for f in replayed[day]] == [f.to_json() for f in direct], day


def test_iec_hs_fires_in_replay_and_is_one_episode():
    days = replay_course(course_with_crs_and_iec_hs(), iec_hs.RULES)
    met = [(d, fs[0]) for d, fs in days if fs[0].status is Status.MET]
    assert met, [fs[0].extra.get("features") for _, fs in days]
    assert len({f.episode_key for _, f in met}) == 1
    assert all(f.since_day == met[0][0] for _, f in met)


def test_suggest_episodes_from_replay():
    course = course_with_crs_and_iec_hs()
    days = replay_course(course, [*crs.RULES, *icans.RULES, *iec_hs.RULES])
    eps = suggest_episodes(course, days)
    crs_eps = [e for e in eps if e["kind"] == "CRS"]
    assert crs_eps == [{"kind": "CRS", "grade": 2, "onset_day": 2, "resolved_day": 7,
                        "origin": "suggested", "rule": "crs_grade"}]
    assert not [e for e in eps if e["kind"] == "ICANS"]
    hs = [e for e in eps if e["kind"] == "IEC-HS"]
    assert len(hs) == 1 and hs[0]["resolved_day"] is None and hs[0]["grade"] is None


def test_suggestions_from_the_episode_rules_alone_are_those_of_a_full_replay():
    """The timeline replays only the episode rules (and what they read) to suggest windows:
    the same windows as from every rule's findings, with and without site thresholds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import replay_rules

    courses = [course_with_crs_and_iec_hs(), *replay_rules.build_courses(12, 30, seed=5)]
    site = {"crs_grade": {"fever_c": 38.5}, "iec_hs": {"ferritin_x_uln": 3.0},
            "ferritin_kinetics": {"rising_fold": 2.0}}  # read by iec_hs, not replayed
    found = 0
    for course in courses:
        for overrides in (None, site):
            full = suggest_episodes(course, replay_course(course, overrides=overrides))
            assert suggested_for(course, overrides) == full, course.patient.patient_id
            found += len(full)
    assert found >= 10  # the courses do suggest windows


def test_documented_episodes_win_over_suggestions():
    course = course_with_crs_and_iec_hs(episodes=[("CRS", 2, 3, 6)])
    days = replay_course(course, crs.RULES)
    assert not suggest_episodes(course, days)
    other_kind = course_with_crs_and_iec_hs(episodes=[("ICANS", 1, 3, 6)])
    assert suggest_episodes(other_kind, replay_course(other_kind, crs.RULES))


def test_a_condition_that_returns_is_a_new_episode():
    f = lambda d, st, since: (d, [Finding("crs_grade", st, since_day=since, grade=1,  # noqa: E731
                                          episode_key=None if since is None else
                                          f"since-day-{since}")])
    days = [f(1, Status.MET, 1), f(2, Status.NOT_MET, None), f(3, Status.NOT_EVALUABLE, None),
            f(4, Status.MET, 4), f(5, Status.MET, 4)]
    eps = suggest_episodes(make_course(), days)
    assert [(e["onset_day"], e["resolved_day"]) for e in eps] == [(1, 2), (4, None)]


# --- site configuration --------------------------------------------------------------------

GOOD = """
[thresholds.iec_hs]
ferritin_x_uln = 3
[thresholds.crs_grade]
fever_c = 38.3
[lab_overdue]
last_day = 21
"""


def test_site_config_parses_overrides_and_schedule(tmp_path):
    cfg = parse_site_config(GOOD)
    assert cfg.thresholds == {"iec_hs": {"ferritin_x_uln": 3.0}, "crs_grade": {"fever_c": 38.3}}
    assert cfg.lab_overdue == {"last_day": 21}
    path = tmp_path / "site.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_overrides(path)["crs_grade"] == {"fever_c": 38.3}
    assert site_overrides(Settings(site_config=path)) == cfg.overrides
    assert site_overrides(Settings()) == {}
    assert load_site_config(None).thresholds == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[thresholds.iec_hsx]\nferritin_x_uln = 3\n", "unknown rule",
                     id="unknown-rule"),
        pytest.param("[thresholds.iec_hs]\nferritin_x_ul = 3\n",
                     "unknown key 'ferritin_x_ul'; iec_hs accepts: ", id="unknown-key"),
        pytest.param("[thresholds.iec_hs]\nferritin_x_uln = 'three'\n", "must be a number in "
                     "x ULN", id="not-a-number"),
        pytest.param("[thresholds.iec_hs]\nferritin_x_uln = true\n", "must be a number",
                     id="boolean"),
        pytest.param("[threshold.iec_hs]\nferritin_x_uln = 3\n", "unknown section",
                     id="unknown-section"),
        pytest.param("[thresholds.iec_hs\n", "not valid TOML", id="bad-toml"),
    ],
)
def test_site_config_errors_are_clear(text, message):
    with pytest.raises(SiteConfigError, match=message.replace("(", r"\(")):
        parse_site_config(text)


def test_site_config_missing_file_is_an_error(tmp_path):
    with pytest.raises(SiteConfigError, match="cannot read site configuration"):
        load_site_config(tmp_path / "absent.toml")


def test_site_overrides_feed_the_engine():
    course = course_with_crs_and_iec_hs(as_of_day=4.9)
    out = evaluate_course(course, crs.RULES, parse_site_config(GOOD).thresholds | {})
    assert out[0].grade == 2


def test_bench_replay_all_smoke():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import replay_rules

    courses = replay_rules.build_courses(2, 12)
    seconds, n = replay_rules.replay_all(courses)
    assert n == 2 * 12 * len(all_specs()) and seconds > 0


def test_each_rule_declared_by_instant_judges_its_last_day_alone():
    """Evaluate judges a rule declared `by_instant` on each course's last day alone
    (Ward.closing): for every such rule of the catalogue, on synthetic courses cut at several
    days, those findings are the ones judged over every day of the courses."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import replay_rules

    courses = [course_with_crs_and_iec_hs(), *replay_rules.build_courses(16, 45, seed=7)]
    specs = all_specs()
    by_instant = [s.rule.id for s in specs if s.by_instant]
    assert len(by_instant) >= 15
    ts = thresholds_for(specs)
    met = set()
    for day in (-4, 0, 5, 12, 21, 29, 33, 44):
        ward = Ward.of([c.until(day + 0.5) for c in courses])
        whole, alone = judge_rules(ward, specs, ts), judge_rules(ward, specs, ts, closing=True)
        for rule_id in by_instant:
            assert alone[rule_id].ward.size == len(ward)
            found = alone[rule_id].findings(np.arange(len(ward)))
            assert ([f.to_json() for f in found] == [
                f.to_json() for f in whole[rule_id].findings(ward.closing_rows())]), (rule_id, day)
            met |= {rule_id for f in found if f.status is Status.MET}
    assert len(met) >= 10  # the courses do meet them

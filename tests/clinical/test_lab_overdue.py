"""lab_overdue (design rule): expected monitoring labs missing without a recorded reason."""

from __future__ import annotations

import pytest

from core.rules.base import Status, Thresholds
from core.rules.engine import evaluate_course
from core.rules.frames import END_OF_DAY
from core.rules.lab_overdue import (
    DEFAULT_DAILY,
    RULE,
    RULES,
    every,
)
from core.vocabulary.course import make_course
from core.vocabulary.units import ANALYTES


def full_panel(days, skip=()):
    """Every default daily lab on each day, except (analyte, day) pairs in skip."""
    return [(a, d, 1.0) for d in days for a in DEFAULT_DAILY if (a, d) not in skip]


def run(course, **overrides):
    return evaluate_course(course, RULES, {RULE.id: overrides})[0]


CASES = [
    pytest.param(full_panel(range(0, 5)), {"as_of_day": 5.3}, {}, Status.NOT_MET, {},
                 id="all-drawn-quiet"),
    pytest.param(full_panel(range(0, 5), skip={("ferritin", 4)}), {"as_of_day": 5.3}, {},
                 Status.MET, {"ferritin": [4]}, id="ferritin-missing-yesterday"),
    pytest.param(full_panel(range(0, 5), skip={("ferritin", 4)}),
                 {"as_of_day": 5.3, "missing": [("ferritin", 4, "haemolysed")]}, {},
                 Status.NOT_MET, {}, id="quiet-with-recorded-reason"),
    pytest.param(full_panel(range(0, 5), skip={("anc", 4), ("platelets", 4)}),
                 {"as_of_day": 5.3, "missing": [("cbc", 4, "not_drawn")]}, {},
                 Status.NOT_MET, {}, id="panel-reason-covers-cbc"),
    pytest.param(full_panel(range(0, 5), skip={("anc", 4)}),
                 {"as_of_day": 5.3, "missing": [("ferritin", 4, "not_drawn")]}, {},
                 Status.MET, {"anc": [4]}, id="reason-for-other-analyte-does-not-cover"),
    pytest.param(full_panel(range(0, 5), skip={("ferritin", 4)}) + [("ferritin", 5.25, 900)],
                 {"as_of_day": 5.3}, {}, Status.NOT_MET, {}, id="todays-result-clears-gap"),
    pytest.param(full_panel(range(0, 5)), {"as_of_day": 5.9}, {}, Status.NOT_MET, {},
                 id="day-in-progress-never-overdue"),
    pytest.param(full_panel(range(0, 5)), {"as_of_day": 5 + END_OF_DAY}, {}, Status.MET,
                 {a: [5] for a in DEFAULT_DAILY}, id="end-of-day-5-without-labs"),
    pytest.param(full_panel(range(0, 15)), {"as_of_day": 16.3}, {}, Status.NOT_MET, {},
                 id="day-15-outside-default-schedule"),
    pytest.param(full_panel(range(0, 15)), {"as_of_day": 16.3}, {"last_day": 21},
                 Status.MET, {a: [15] for a in DEFAULT_DAILY}, id="site-extends-schedule"),
    pytest.param(full_panel(range(0, 5), skip={("ferritin", 4)}), {"as_of_day": 5.3},
                 {"every_ferritin_days": 2}, Status.NOT_MET, {},
                 id="every-other-day-ferritin-not-due"),
    pytest.param(full_panel(range(0, 5), skip={("ferritin", 4)}), {"as_of_day": 5.3},
                 {"every_ferritin_days": 0}, Status.NOT_MET, {},
                 id="ferritin-not-scheduled"),
    pytest.param(full_panel(range(0, 5)), {"as_of_day": 5.3}, {"every_crp_days": 1},
                 Status.MET, {"crp": [4]}, id="site-adds-daily-crp"),
    pytest.param(full_panel(range(0, 5), skip={("ast", 3), ("ast", 4)}), {"as_of_day": 5.3},
                 {"lookback_days": 2}, Status.MET, {"ast": [3, 4]},
                 id="lookback-2-lists-both-days"),
    pytest.param([], {"as_of_day": -1.5}, {}, Status.NOT_MET, {}, id="before-day-0"),
]


@pytest.mark.parametrize("labs, kw, overrides, status, overdue", CASES)
def test_lab_overdue(labs, kw, overrides, status, overdue):
    f = run(make_course(labs=labs, **kw), **overrides)
    assert f.status is status
    assert f.extra.get("overdue", {}) == overdue
    if status is Status.MET:
        assert f.missing and all("record why it was not drawn" in m for m in f.missing)


def test_lab_overdue_episode_is_stable_while_the_gap_lasts():
    labs = full_panel(range(0, 8), skip={("ferritin", d) for d in range(4, 8)})
    keys = [run(make_course(labs=labs, as_of_day=d + 0.3)).episode_key for d in (5, 6, 7)]
    assert keys == ["since-day-4"] * 3
    labs += [("ferritin", 8.2, 500)] + full_panel([8], skip={("ferritin", 8)})
    labs += full_panel([9], skip={("ferritin", 9)})
    assert run(make_course(labs=labs, as_of_day=9.3)).status is Status.NOT_MET
    again = run(make_course(labs=labs, as_of_day=10.3))
    assert again.status is Status.MET and again.episode_key == "since-day-9"


def test_lab_overdue_evidence_in_nurse_words():
    f = run(make_course(labs=full_panel(range(0, 5), skip={("fibrinogen", 4)}), as_of_day=5.3))
    assert f.evidence[0].why == "no Fibrinogen result for day 4"
    assert f.missing == ["day 4: Fibrinogen (enter the result, or record why it was not drawn)"]
    quiet = run(make_course(labs=full_panel(range(0, 5), skip={("fibrinogen", 4)}),
                            as_of_day=5.3, missing=[("fibrinogen", 4, "not_drawn")]))
    assert quiet.evidence[0].why == "Fibrinogen for day 4 not available: not drawn (recorded)"


def test_open_ended_course_uses_latest_data_day():
    f = run(make_course(labs=full_panel(range(0, 5)) + [("anc", 6.3, 2.0)]))
    assert f.status is Status.MET and 5 in f.extra["overdue"]["ferritin"]


def test_default_schedule_is_the_daily_labs_on_days_0_to_14():
    t = Thresholds(RULE)
    assert {a for a in ANALYTES if every(t, a)} == set(DEFAULT_DAILY)
    assert all(every(t, a) == 1 for a in DEFAULT_DAILY)
    assert (t["first_day"], t["last_day"], t["lookback_days"]) == (0, 14, 1)
    assert RULES[0].rule.id == "lab_overdue" and RULE.is_provisional


def test_site_table_becomes_threshold_overrides():
    from core.site_config import schedule_overrides

    o = schedule_overrides({"last_day": 21, "daily": ["anc", "platelets"], "every": {"crp": 2}})
    assert o["last_day"] == 21 and o["every_anc_days"] == 1 and o["every_ferritin_days"] == 0
    assert o["every_crp_days"] == 2
    f = run(make_course(labs=full_panel(range(0, 5), skip={("ferritin", 4)}), as_of_day=5.3),
            **o)
    assert f.status is Status.MET and set(f.extra["overdue"]) == {"crp"}
    with pytest.raises(ValueError, match="unknown analyte"):
        schedule_overrides({"daily": ["cbc_typo"]})
    with pytest.raises(ValueError, match="unknown key"):
        schedule_overrides({"last_dya": 21})


def test_site_lab_overdue_table_reaches_the_rule_through_site_overrides(tmp_path):
    from core.config import Settings
    from core.rules.engine import evaluate_course
    from core.site_config import SiteConfigError, parse_site_config, site_overrides

    path = tmp_path / "site.toml"
    path.write_text('[lab_overdue]\nlast_day = 21\ndaily = ["anc"]\n', encoding="utf-8")
    overrides = site_overrides(Settings(site_config=path))
    assert overrides["lab_overdue"]["last_day"] == 21
    assert overrides["lab_overdue"]["every_ferritin_days"] == 0
    # day 18 is past the default schedule (days 0-14) but inside the site's (days 0-21)
    course = make_course(labs=[("anc", d, 1.0) for d in range(0, 18)], as_of_day=19.3)
    by_default = evaluate_course(course, RULES)[0]
    with_site = evaluate_course(course, RULES, overrides)[0]
    assert by_default.status is Status.NOT_MET
    assert with_site.status is Status.MET and with_site.extra["overdue"] == {"anc": [18]}
    # an explicit [thresholds.lab_overdue] key wins over the schedule table
    both = parse_site_config("[thresholds.lab_overdue]\nlast_day = 10\n"
                             "[lab_overdue]\nlast_day = 21\n")
    assert both.overrides["lab_overdue"]["last_day"] == 10
    with pytest.raises(SiteConfigError, match="unknown analyte"):
        parse_site_config('[lab_overdue]\ndaily = ["cbc_typo"]\n')

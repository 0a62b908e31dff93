"""hscore: HScore (criteria.md §4): worked example §4.3, bin tests, probability table."""

from __future__ import annotations

import pytest

from core.rules import hlh
from core.rules.base import Status
from core.rules.engine import evaluate_course, replay_course
from core.vocabulary.course import make_course
from core.vocabulary.units import convert

SPEC = next(s for s in hlh.RULES if s.rule.id == "hscore")
TG = lambda mmol: convert(mmol, "triglycerides", "mmol/L")  # noqa: E731
EXAMPLE_LABS = [("hemoglobin", 5.3, 8.5), ("wbc", 5.3, 1.2), ("platelets", 5.3, 40),
                ("ferritin", 5.3, 12_000), ("triglycerides", 5.3, TG(3.2)),
                ("fibrinogen", 5.3, convert(1.4, "fibrinogen", "g/L")), ("ast", 5.3, 180)]
EXAMPLE_OBS = [("immunosuppression", 5.3, 1), ("temperature", 5.3, 39.0),
               ("organomegaly", 5.3, "none")]


def evaluate(course, overrides=None):
    return evaluate_course(course, [SPEC], {SPEC.rule.id: overrides or {}})[0]


def replay(course, days):
    replayed = dict(replay_course(course, [SPEC]))
    return [replayed[day][0] for day in days]


def run(labs=EXAMPLE_LABS, obs=EXAMPLE_OBS):
    return evaluate(make_course(labs=labs, observations=obs))


def test_worked_example_scores_228():
    f = run()
    assert f.score == 228
    assert f.status is Status.MET
    assert f.extra["above_169"] is True
    assert f.extra["probability_table"] == "96–98 %"
    assert f.extra["probability"] == pytest.approx(0.976)
    assert f.extra["probability_fit"] == pytest.approx(0.978, abs=0.001)
    assert f.extra["missing_items"] == ["hemophagocytosis"]
    assert f.extra["breakdown"] == {"immunosuppression": 18, "temperature": 33,
                                    "organomegaly": 0, "cytopenias": 34, "ferritin": 50,
                                    "triglycerides": 44, "fibrinogen": 30, "ast": 19,
                                    "hemophagocytosis": None}


def _with(analyte, value, kind="lab"):
    if kind == "lab":
        return run([x for x in EXAMPLE_LABS if x[0] != analyte] + [(analyte, 5.3, value)])
    return run(obs=[x for x in EXAMPLE_OBS if x[0] != analyte] + [(analyte, 5.3, value)])


@pytest.mark.parametrize(
    ("item", "value", "kind", "points"),
    [
        pytest.param("ferritin", 6000, "lab", 35, id="ferritin-6000-35"),
        pytest.param("ferritin", 6001, "lab", 50, id="ferritin-6001-50"),
        pytest.param("ferritin", 2000, "lab", 35, id="ferritin-2000-35"),
        pytest.param("ferritin", 1999, "lab", 0, id="ferritin-1999-0"),
        pytest.param("temperature", 39.4, "obs", 33, id="temp-39.4-33"),
        pytest.param("temperature", 39.5, "obs", 49, id="temp-39.5-49"),
        pytest.param("temperature", 38.4, "obs", 33, id="temp-38.4-33"),
        pytest.param("temperature", 38.3, "obs", 0, id="temp-38.3-0"),
        pytest.param("triglycerides", TG(1.5), "lab", 44, id="tg-1.5-mmol-44"),
        pytest.param("triglycerides", TG(4.0), "lab", 44, id="tg-4.0-mmol-44"),
        pytest.param("triglycerides", TG(4.1), "lab", 64, id="tg-4.1-mmol-64"),
        pytest.param("triglycerides", 132.6, "lab", 0, id="tg-132.6-mgdl-0"),
        pytest.param("fibrinogen", 250, "lab", 30, id="fibrinogen-2.5-gl-30"),
        pytest.param("fibrinogen", 251, "lab", 0, id="fibrinogen-above-2.5-0"),
        pytest.param("ast", 30, "lab", 19, id="ast-30-19"),
        pytest.param("ast", 29, "lab", 0, id="ast-29-0"),
        pytest.param("organomegaly", "both", "obs", 38, id="organomegaly-both-38"),
        pytest.param("organomegaly", "splenomegaly", "obs", 23, id="splenomegaly-23"),
    ],
)
def test_hscore_bins(item, value, kind, points):
    assert _with(item, value, kind).extra["breakdown"][item] == points


MGDL = lambda mg_dl: convert(mg_dl, "triglycerides", "mg/dL")  # noqa: E731


# Triglycerides are binned in mmol/L (criteria §4.1): < 1.5 -> 0, 1.5-4 -> 44, > 4 -> 64,
# from the canonical mg/dL value / 88.57, whichever unit the lab reported in.
@pytest.mark.parametrize(
    ("stored", "points"),
    [
        pytest.param(TG(1.49), 0, id="1.49-mmol-0"),
        pytest.param(TG(1.5), 44, id="1.5-mmol-44"),
        pytest.param(TG(4.0), 44, id="4.0-mmol-44"),
        pytest.param(TG(4.01), 64, id="4.01-mmol-64"),
        pytest.param(MGDL(131.97), 0, id="1.49-as-131.97-mgdl-0"),
        pytest.param(MGDL(132.855), 44, id="1.5-as-132.855-mgdl-44"),
        pytest.param(MGDL(354.28), 44, id="4.0-as-354.28-mgdl-44"),
        pytest.param(MGDL(355.17), 64, id="4.01-as-355.17-mgdl-64"),
        # whole mg/dL as labs report them, either side of each edge
        pytest.param(MGDL(132), 0, id="132-mgdl-is-1.490-mmol-0"),
        pytest.param(MGDL(133), 44, id="133-mgdl-is-1.502-mmol-44"),
        pytest.param(MGDL(354), 44, id="354-mgdl-is-3.997-mmol-44"),
        pytest.param(MGDL(355), 64, id="355-mgdl-is-4.008-mmol-64"),
        # the rounded mg/dL edge of the §4.1 table is not used: the mmol/L table wins
        pytest.param(MGDL(132.7), 0, id="132.7-mgdl-is-1.498-mmol-0"),
    ],
)
def test_triglycerides_are_binned_in_mmol_per_litre(stored, points):
    f = _with("triglycerides", stored)
    assert f.extra["breakdown"]["triglycerides"] == points
    assert [e.why for e in f.evidence if e.analyte == "triglycerides"] == [f"{points} points"]


def test_triglyceride_edges_are_declared_in_mg_dl_from_the_mmol_table():
    t = {x.key: x for x in SPEC.rule.thresholds}
    assert t["tg_mid"].value == pytest.approx(132.855) and t["tg_mid"].op == ">="
    assert t["tg_high"].value == pytest.approx(354.28) and t["tg_high"].op == ">"
    assert hlh.hscore.tg_mmol(TG(1.49)) == 1.49


# Temperature: the highest in the 24 h up to the as-of instant (criteria §4.1 [DESIGN]).
# Labs and the other items at day 5.3 as in the worked example; as of day 5.5 (12:00).
AS_OF = 5.5
H = 1 / 24


def temp_course(*temps):
    obs = [x for x in EXAMPLE_OBS if x[0] != "temperature"]
    obs += [("temperature", day, value) for day, value in temps]
    return evaluate(make_course(labs=EXAMPLE_LABS, observations=obs, as_of_day=AS_OF))


@pytest.mark.parametrize(
    ("temps", "points", "decided_by"),
    [
        pytest.param([(AS_OF - 20 * H, 39.6), (AS_OF - 2 * H, 37.2)], 49, AS_OF - 20 * H,
                     id="max-yesterday-evening-beats-lower-latest"),
        pytest.param([(AS_OF - 10 * H, 38.9), (AS_OF - 6 * H, 39.5), (AS_OF - 1 * H, 37.0)],
                     49, AS_OF - 6 * H, id="max-earlier-today-beats-lower-latest"),
        pytest.param([(AS_OF - 23 * H, 39.0), (AS_OF - 1 * H, 37.0)], 33, AS_OF - 23 * H,
                     id="max-23h-old-counts"),
        pytest.param([(AS_OF - 25 * H, 39.8), (AS_OF - 1 * H, 37.0)], 0, AS_OF - 1 * H,
                     id="max-25h-old-does-not-count"),
        pytest.param([(AS_OF - 25 * H, 39.8), (AS_OF - 3 * H, 38.5), (AS_OF - 1 * H, 38.0)],
                     33, AS_OF - 3 * H, id="25h-old-max-out-next-highest-in"),
        pytest.param([(AS_OF - 12 * H, 39.0), (AS_OF - 2 * H, 39.0)], 33, AS_OF - 12 * H,
                     id="equal-highs-earliest-shown"),
    ],
)
def test_temperature_is_the_highest_in_the_24_hours_before_as_of(temps, points, decided_by):
    f = temp_course(*temps)
    assert f.extra["breakdown"]["temperature"] == points
    [ev] = [e for e in f.evidence if e.analyte == "temperature"]
    assert ev.day == pytest.approx(decided_by) and ev.why == f"{points} points"


def test_a_temperature_older_than_24_hours_is_missing_not_zero():
    f = temp_course((AS_OF - 25 * H, 39.8))
    assert f.extra["breakdown"]["temperature"] is None
    assert "temperature" in f.extra["missing_items"]
    assert f.score == 228 - 33  # the worked example without its temperature points
    assert f.status is Status.MET  # still >= 169 without it


def test_temperature_window_follows_the_replayed_day():
    """Replay: each day as of its end; a 39.8 on day 4 counts on day 4, not on day 5."""
    obs = [x for x in EXAMPLE_OBS if x[0] != "temperature"]
    obs += [("temperature", 4.9, 39.8), ("temperature", 5.2, 37.0)]
    labs = [(a, 4.2, v) for a, _d, v in EXAMPLE_LABS]
    course = make_course(labs=labs, observations=obs)
    day4, day5 = replay(course, [4, 5])
    assert day4.extra["breakdown"]["temperature"] == 49
    assert day5.extra["breakdown"]["temperature"] == 0
    evaluated = evaluate(make_course(labs=labs, observations=obs, as_of_day=5.95))
    assert evaluated.extra["breakdown"] == day5.extra["breakdown"]


@pytest.mark.parametrize(
    ("hb", "wbc", "plt", "points"),
    [
        pytest.param(9.2, 5.0, 110, 34, id="three-lineages-at-limits-34"),
        pytest.param(9.3, 5.0, 110, 24, id="two-lineages-24"),
        pytest.param(9.3, 5.1, 110, 0, id="one-lineage-0"),
    ],
)
def test_hscore_cytopenia_bins(hb, wbc, plt, points):
    labs = [x for x in EXAMPLE_LABS if x[0] not in ("hemoglobin", "wbc", "platelets")]
    labs += [("hemoglobin", 5.3, hb), ("wbc", 5.3, wbc), ("platelets", 5.3, plt)]
    assert run(labs).extra["breakdown"]["cytopenias"] == points


@pytest.mark.parametrize(
    ("score", "text", "p"),
    [
        pytest.param(90, "< 1 %", 0.01, id="90"),
        pytest.param(169, "40–54 %", 0.526, id="169"),
        pytest.param(170, "54 %", 0.54, id="170"),
        pytest.param(250, "> 99 %", 0.99, id="250"),
    ],
)
def test_probability_from_published_table(score, text, p):
    prob, shown = hlh.hscore.probability_from_table(score)
    assert shown == text and prob == pytest.approx(p, abs=1e-3)


# The example less immunosuppression (-18), AST (-19) and fibrinogen (-30): 161 points
LOW_LABS = ([x for x in EXAMPLE_LABS if x[0] not in ("ast", "fibrinogen")]
            + [("ast", 5.3, 20), ("fibrinogen", 5.3, 300)])
LOW_OBS = [("immunosuppression", 5.3, 0), ("temperature", 5.3, 39.0),
           ("organomegaly", 5.3, "none"), ("hemophagocytosis", 5.3, 0)]
# The rule's outcome: met at or above the cutoff (169 by default, inclusive).
OUTCOME_CASES = [
    pytest.param(EXAMPLE_LABS, EXAMPLE_OBS, {}, 228, "met", id="worked-example-228"),
    pytest.param(LOW_LABS, LOW_OBS, {}, 161, "not_met", id="161-below-169"),
    pytest.param(LOW_LABS, LOW_OBS, {"cutoff": 161}, 161, "met",
                 id="161-at-a-site-cutoff-of-161-inclusive"),
]


@pytest.mark.parametrize(("labs", "obs", "overrides", "score", "status"), OUTCOME_CASES)
def test_hscore_outcome(labs, obs, overrides, score, status):
    f = evaluate(make_course(labs=labs, observations=obs), overrides)
    assert (f.score, f.status) == (score, Status(status))
    assert f.extra["above_169"] is (status == "met")


def test_missing_items_make_it_not_evaluable_not_not_met():
    f = run(labs=[("ferritin", 5.3, 500)], obs=[])
    assert f.status is Status.NOT_EVALUABLE
    assert f.missing and f.missing[0].startswith("log known immunosuppression (yes/no), "
                                                 "temperature, organomegaly")
    assert f.missing[0].endswith("to complete the HScore")

"""hscore: HScore (criteria.md §4): worked example §4.3, bin tests, probability table."""

from __future__ import annotations

import pytest

from core.course import make_course
from core.rules import hlh
from core.rules.base import Status, Thresholds
from core.units import convert

SPEC = next(s for s in hlh.RULES if s.rule.id == "hscore")
TG = lambda mmol: convert(mmol, "triglycerides", "mmol/L")  # noqa: E731
EXAMPLE_LABS = [("hemoglobin", 5.3, 8.5), ("wbc", 5.3, 1.2), ("platelets", 5.3, 40),
                ("ferritin", 5.3, 12_000), ("triglycerides", 5.3, TG(3.2)),
                ("fibrinogen", 5.3, convert(1.4, "fibrinogen", "g/L")), ("ast", 5.3, 180)]
EXAMPLE_OBS = [("immunosuppression", 5.3, 1), ("temperature", 5.3, 39.0),
               ("organomegaly", 5.3, "none")]


def run(labs=EXAMPLE_LABS, obs=EXAMPLE_OBS):
    return SPEC.evaluate(make_course(labs=labs, observations=obs), Thresholds(SPEC.rule))


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
    prob, shown = hlh.probability_from_table(score)
    assert shown == text and prob == pytest.approx(p, abs=1e-3)


def test_cutoff_169_inclusive_both_sides():
    # 168 vs 169 from the example: drop immunosuppression (-18) and AST (-19) -> 191 ...
    base = run()
    assert base.score - 19 - 18 - 30 + 0 == 161
    f_low = run(obs=[("immunosuppression", 5.3, 0), ("temperature", 5.3, 39.0),
                     ("organomegaly", 5.3, "none"), ("hemophagocytosis", 5.3, 0)],
                labs=[x for x in EXAMPLE_LABS if x[0] not in ("ast", "fibrinogen")]
                + [("ast", 5.3, 20), ("fibrinogen", 5.3, 300)])
    assert f_low.score == 161 and f_low.status is Status.NOT_MET
    t = Thresholds(SPEC.rule, {"cutoff": 161})
    f_at = SPEC.evaluate(make_course(labs=[x for x in EXAMPLE_LABS if x[0] not in (
        "ast", "fibrinogen")] + [("ast", 5.3, 20), ("fibrinogen", 5.3, 300)], observations=[
        ("immunosuppression", 5.3, 0), ("temperature", 5.3, 39.0), ("organomegaly", 5.3, "none"),
        ("hemophagocytosis", 5.3, 0)]), t)
    assert f_at.status is Status.MET and f_at.extra["above_169"] is True


def test_missing_items_make_it_not_evaluable_not_not_met():
    f = run(labs=[("ferritin", 5.3, 500)], obs=[])
    assert f.status is Status.NOT_EVALUABLE
    assert f.missing and f.missing[0].startswith("log known immunosuppression (yes/no), "
                                                 "temperature, organomegaly")
    assert f.missing[0].endswith("to complete the HScore")

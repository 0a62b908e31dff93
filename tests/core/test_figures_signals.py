"""Colour is never the only signal on the timeline figure: every distinction a colour draws is
also drawn by a dash pattern, a marker shape or words (WCAG 1.4.1, issue 17)."""

from __future__ import annotations

from datetime import date

import pytest

from core.views.figures import STYLE, timeline_figure
from core.views.timeline_content import THRESHOLD_LINES, threshold_lines
from core.vocabulary.course import make_course

LABS = [("ferritin", 1, 500), ("ferritin", 2, 12000), ("fibrinogen", 1, 300),
        ("fibrinogen", 2, 120), ("ast", 1, 30), ("ast", 2, 250), ("alt", 1, 40),
        ("alt", 2, 320), ("bilirubin", 1, 0.8), ("ldh", 1, 300), ("anc", 1, 0.3),
        ("wbc", 1, 1.1), ("alc", 1, 0.2), ("platelets", 1, 40), ("hemoglobin", 1, 9),
        ("crp", 1, 40), ("il6", 1, 90), ("ferritin", 3, 100000, None, None, ">")]
COURSE = make_course(date(2026, 1, 1), labs=LABS, episodes=[("CRS", 2, 1, 3)],
                     treatments=[("tocilizumab", 2, 8, "mg/kg"), ("dexamethasone", 2, 10, "mg"),
                                 ("anakinra", 3, 100, "mg")])
SUGGESTED = [{"kind": "IEC-HS", "grade": None, "onset_day": 2.0}]


def spec(course=COURSE, **kw) -> dict:  # noqa: ANN001
    return timeline_figure(course, analytes=list(STYLE), suggested=SUGGESTED,
                           **kw).to_plotly_json()


def test_the_sample_rules_have_both_kinds_of_threshold() -> None:
    """The checks below compare provisional and confirmed lines: both must be drawn."""
    kinds = {ln.provisional for ln in threshold_lines(COURSE)}
    assert kinds == {True, False}
    assert len(threshold_lines(COURSE)) == len(THRESHOLD_LINES)


def test_provisional_lines_are_dotted_and_say_so_confirmed_ones_dashed() -> None:
    shapes = {s["name"]: s for s in spec()["layout"]["shapes"]
              if s.get("name", "").startswith("threshold:")}
    assert len(shapes) == len(THRESHOLD_LINES)
    for ln in threshold_lines(COURSE):
        shape = shapes[f"threshold:{ln.rule_id}.{ln.key}:{ln.analyte}"]
        label = shape["label"]["text"]
        assert shape["line"]["dash"] == ("dot" if ln.provisional else "dash"), label
        assert label.endswith("· provisional") == ln.provisional, label
        assert ("provisional" in label) == ln.provisional, label
    # one colour for every threshold line: the colour says nothing, dash and words do
    assert len({s["line"]["color"] for s in shapes.values()}) == 1


def test_documented_and_suggested_windows_differ_in_edge_and_words() -> None:
    layout = spec()["layout"]
    bands = {s["name"]: s for s in layout["shapes"] if s.get("name", "").startswith("episode:")}
    labels = {a["name"]: a["text"] for a in layout["annotations"]
              if a.get("name", "").startswith("episode-label:")}
    documented, suggested = bands["episode:CRS:documented"], bands["episode:IEC-HS:suggested"]
    assert documented["line"]["dash"] == "solid" and suggested["line"]["dash"] == "dot"
    assert suggested["line"]["width"] > 0
    assert labels["episode-label:CRS:documented"] == "<b>CRS grade 2</b>"
    assert "suggested by rules" in labels["episode-label:IEC-HS:suggested"]
    assert "ongoing" in labels["episode-label:IEC-HS:suggested"]  # no end: said in words


def test_traces_sharing_a_panel_differ_in_dash_not_only_colour() -> None:
    values = [t for t in spec()["data"] if (t.get("meta") or {}).get("role") == "values"]
    by_panel: dict[str, list[dict]] = {}
    for t in values:
        by_panel.setdefault(t["xaxis"], []).append(t)
    shared = [ts for ts in by_panel.values() if len(ts) > 1]
    assert len(shared) >= 4  # AST/ALT, bilirubin/LDH, ANC/WBC/ALC, CRP/IL-6
    for traces in shared:
        dashes = [t["line"]["dash"] for t in traces]
        assert len(set(dashes)) == len(dashes), [(t["name"], t["line"]) for t in traces]
    # and no two traces of the whole figure share both colour and dash
    styles = [(t["line"]["color"], t["line"]["dash"]) for t in values]
    assert len(set(styles)) == len(styles)


@pytest.mark.parametrize(("verified", "corrected", "symbol"), [
    (True, False, "circle"),
    (False, False, "circle-open"),  # not yet verified: hollow
    (True, True, "diamond"),  # a corrected result
    (False, True, "diamond-open"),
])
def test_result_state_is_a_marker_shape(verified: bool, corrected: bool, symbol: str) -> None:
    course = make_course(date(2026, 1, 1), labs=[("ferritin", 1, 500), ("ferritin", 2, 900)])
    course.labs.loc[course.labs["day"] == 2.0, "verified"] = verified
    lab_id = int(course.labs.loc[course.labs["day"] == 2.0, "lab_id"].iloc[0])
    fig = timeline_figure(course, analytes=["ferritin"],
                          corrected={lab_id: "typo"} if corrected else None).to_plotly_json()
    trace = next(t for t in fig["data"] if (t.get("meta") or {}).get("role") == "values")
    assert list(trace["marker"]["symbol"]) == ["circle", symbol]
    assert ("not yet verified" in trace["hovertext"][1]) == (not verified)
    assert ("CORRECTED" in trace["hovertext"][1]) == corrected


def test_censored_results_are_triangles_labelled_with_the_qualifier() -> None:
    censored = [t for t in spec()["data"] if (t.get("meta") or {}).get("role") == "censored"]
    assert len(censored) == 1
    assert list(censored[0]["marker"]["symbol"]) == ["triangle-up"]
    assert list(censored[0]["text"]) == [">100,000"]


def test_treatments_differ_in_marker_shape_and_are_named_on_their_row() -> None:
    fig = spec()
    markers = [t for t in fig["data"] if (t.get("meta") or {}).get("role") == "treatment"]
    assert len(markers) == 3
    assert len({t["marker"]["symbol"] for t in markers}) == 3
    assert {tuple(t["y"])[0] for t in markers} == {"Tocilizumab", "Dexamethasone", "Anakinra"}


def test_infusion_and_today_lines_differ_in_dash_and_are_labelled() -> None:
    layout = spec(today_day=4.3)["layout"]
    lines = {s["name"]: s["line"]["dash"] for s in layout["shapes"]
             if s.get("name") in ("infusion", "today")}
    assert lines == {"infusion": "dash", "today": "solid"}
    texts = {a.get("name"): a["text"] for a in layout["annotations"]}
    assert texts["infusion"] == "<b>infusion</b>" and texts["today"] == "<b>today, day +4</b>"

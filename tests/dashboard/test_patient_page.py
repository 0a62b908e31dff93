"""The patient page: the figure itself for every sample patient, alert actions, exports."""

import json
import shutil
from datetime import date

import pandas as pd
import pytest
from sqlmodel import select

from core.config import SAMPLE_DIR
from core.rules.catalog import spec_by_id
from core.store.db import make_engine, session_scope
from core.store.models import Alert, AlertState, Patient
from core.views.exporting import figure_image
from core.views.figures import timeline_figure
from core.views.timeline_content import THRESHOLD_LINES
from core.vocabulary.units import fmt
from tests.conftest import missing_dependency

SAMPLE_IDS = list(pd.read_csv(SAMPLE_DIR / "patients.csv")["patient_id"])
EPISODES = pd.read_csv(SAMPLE_DIR / "episodes.csv")
TREATMENTS = pd.read_csv(SAMPLE_DIR / "treatments.csv")
STRIP_DRUGS = {"tocilizumab", "dexamethasone", "anakinra", "ruxolitinib", "emapalumab",
               "etoposide", "rbc_transfusion", "platelet_transfusion", "cryoprecipitate",
               "gcsf", "levetiracetam", "methylprednisolone"}


def figure(at) -> dict:
    charts = at.get("plotly_chart")
    assert charts, "no chart on the page"
    return json.loads(charts[0].proto.spec)


def open_patient(app, patient_id: str):
    app.session_state["patient_id"] = patient_id
    app.switch_page("pages/patient.py").run()
    assert not app.exception, app.exception
    return app


def rerun(app, patient_id: str):
    app.session_state["patient_id"] = patient_id  # AppTest drops the sidebar pick between runs
    app.run()
    assert not app.exception, app.exception
    return app


@pytest.mark.parametrize("patient_id", SAMPLE_IDS)
def test_patient_figure_has_panels_bands_thresholds_and_treatments(app, patient_id):
    spec = figure(open_patient(app, patient_id))
    values = {t["name"] for t in spec["data"] if (t.get("meta") or {}).get("role") == "values"}
    assert {"Ferritin", "Fibrinogen", "AST", "ALT", "ANC", "Platelets", "Hemoglobin"} <= values
    assert not {"WBC", "ALC (lymphocytes)"} & values  # on demand only
    titles = {a["text"] for a in spec["layout"]["annotations"]}
    for panel in ("Ferritin", "Fibrinogen", "AST and ALT", "Bilirubin", "ANC", "Platelets",
                  "Haemoglobin", "Treatments"):
        assert any(panel in t for t in titles), panel
    # one band per documented episode, labelled with kind and grade
    shapes = spec["layout"]["shapes"]
    documented = EPISODES[EPISODES["patient_id"] == patient_id]
    bands = [s for s in shapes if s.get("name", "").endswith(":documented")]
    assert len(bands) == len(documented)
    for ep in documented.itertuples():
        assert any(t.startswith(f"<b>{ep.kind} grade {ep.grade}") for t in titles), ep
    # rule thresholds, labelled, values straight from the catalogue's Threshold rows
    lines = {s["name"]: s for s in shapes if s.get("name", "").startswith("threshold:")}
    for ls in THRESHOLD_LINES:
        line = lines[f"threshold:{ls.rule_id}.{ls.key}:{ls.analyte}"]
        t = next(t for t in spec_by_id(ls.rule_id).rule.thresholds if t.key == ls.key)
        assert line["label"]["text"].startswith(ls.label)
        if not ls.per_uln:
            assert line["y0"] == pytest.approx(t.value)
        assert ("provisional" in line["label"]["text"]) == t.is_provisional
    # treatments as markers, drug and dose on hover
    drugs = set(TREATMENTS[TREATMENTS["patient_id"] == patient_id]["drug"]) & STRIP_DRUGS
    markers = [t for t in spec["data"] if (t.get("meta") or {}).get("role") == "treatment"]
    assert {t["meta"]["drug"] for t in markers} == drugs
    for t in markers:
        assert all(t["name"] in h for h in t["hovertext"])
    # each trace in a panel looks different (colour and dash), never the same blue twice
    styles = [(t["line"]["color"], t["line"].get("dash")) for t in spec["data"]
              if (t.get("meta") or {}).get("role") == "values"]
    assert len(styles) == len(set(styles))
    assert "Screening flag for clinician review — not a diagnosis." in [
        w.value for w in app.warning]


def test_censored_value_is_drawn_with_its_qualifier(app):
    spec = figure(open_patient(app, "SYN-005"))
    cens = [t for t in spec["data"] if (t.get("meta") or {}).get("role") == "censored"]
    assert cens and cens[0]["text"] == [">100,000"]
    assert cens[0]["marker"]["symbol"] == ["triangle-up"]


def test_other_units_show_the_original_on_hover(app):
    spec = figure(open_patient(app, "SYN-010"))
    fib = next(t for t in spec["data"] if t.get("name") == "Fibrinogen")
    assert any("entered as" in h and "g/L" in h for h in fib["hovertext"])


def test_wbc_and_alc_on_demand_and_range_control(app):
    open_patient(app, "SYN-004")
    app.multiselect(key="patient_analytes").select("wbc").select("alc")
    app.slider(key="patient_days").set_value((-7, 60))
    spec = figure(rerun(app, "SYN-004"))
    names = {t.get("name") for t in spec["data"]}
    assert {"WBC", "ALC (lymphocytes)"} <= names
    assert spec["layout"]["xaxis"]["range"] == [-7, 60]


def test_suggested_windows_look_different_from_documented(app):
    spec = figure(open_patient(app, "SYN-004"))  # IEC-HS fever read as CRS on days 10-12
    rects = {s["name"]: s for s in spec["layout"]["shapes"] if s["type"] == "rect"}
    sugg = [s for n, s in rects.items() if n.endswith(":suggested")]
    docs = [s for n, s in rects.items() if n.endswith(":documented")]
    assert sugg and docs
    assert all(s["line"]["dash"] == "dot" for s in sugg)
    app.checkbox(key="patient_suggested").uncheck()
    assert not [s for s in figure(rerun(app, "SYN-004"))["layout"]["shapes"]
                if s.get("name", "").endswith(":suggested")]


def _alert(url: str, alert_id: int) -> Alert:
    with session_scope(make_engine(url)) as s:
        a = s.get(Alert, alert_id)
        s.expunge(a)
        return a


def _first_open_alert(url: str, patient_id: str) -> int:
    with session_scope(make_engine(url)) as s:
        pk = s.scalars(select(Patient.id).where(Patient.patient_id == patient_id)).one()
        return s.scalars(select(Alert.id).where(Alert.patient_pk == pk,
                                                Alert.state == AlertState.FIRING)).first()


def test_acknowledge_from_the_page_changes_the_stored_alert(app, sample_url):
    alert_id = _first_open_alert(sample_url, "SYN-004")
    open_patient(app, "SYN-004")
    app.text_input(key=f"patient_ack_note_{alert_id}").input("seen on round")
    app.button(key=f"patient_ack_{alert_id}").click()
    rerun(app, "SYN-004")
    a = _alert(sample_url, alert_id)
    assert a.state == AlertState.ACKNOWLEDGED
    assert (a.acknowledged_by, a.ack_note) == ("dr.lee", "seen on round")  # signed in
    assert any("acknowledged" in s.value for s in app.success)


def test_snooze_needs_a_reason_and_then_changes_the_stored_alert(app, sample_url):
    alert_id = _first_open_alert(sample_url, "SYN-005")
    open_patient(app, "SYN-005")
    app.button(key=f"patient_snooze_{alert_id}").click()
    rerun(app, "SYN-005")
    assert any("needs a reason" in e.value for e in app.error)
    assert _alert(sample_url, alert_id).state == AlertState.FIRING
    app.text_input(key=f"patient_snooze_reason_{alert_id}").input("known, on anakinra")
    app.number_input(key=f"patient_snooze_hours_{alert_id}").set_value(6)
    app.button(key=f"patient_snooze_{alert_id}").click()
    rerun(app, "SYN-005")
    a = _alert(sample_url, alert_id)
    assert a.state == AlertState.SNOOZED
    assert a.snooze_reason == "known, on anakinra" and a.snoozed_until is not None


def test_scores_panel_lists_every_score_with_prompts(app):
    open_patient(app, "SYN-005")
    text = " ".join(m.value for m in app.markdown)
    for title in ("IEC-HS screen", "HScore", "HLH-2004", "Neelapu 2018", "ICAHT"):
        assert title in text
    assert "of 8 met" in text and "To complete it, log:" in text


@pytest.mark.parametrize("fmt,magic", [("pdf", b"%PDF"), ("png", b"\x89PNG\r\n\x1a\n")])
def test_snapshot_export_is_a_valid_file(sample_url, fmt, magic):
    if shutil.which("chromium") is None:
        missing_dependency("Debian's chromium (kaleido draws the snapshot with it)")
    from core.views.exporting import patient_snapshot

    data = patient_snapshot(make_engine(sample_url), "SYN-004", "UTC", fmt)
    assert data.startswith(magic) and len(data) > 10_000


def test_figure_image_refuses_unknown_formats():
    from core.vocabulary.course import make_course

    with pytest.raises(ValueError, match="png or pdf"):
        figure_image(timeline_figure(make_course()), "svg")


def test_the_chart_has_a_description_and_its_values_table_right_below(app, sample_url):
    app.session_state["patient_values_table"] = True  # opened: the table is built on opening
    open_patient(app, "SYN-004")
    chart = app.get("plotly_chart")[0]
    assert chart.proto.alt.startswith("Timeline chart of Ferritin, Fibrinogen")
    assert "Values as a table" in chart.proto.alt
    documented = len(EPISODES[EPISODES["patient_id"] == "SYN-004"])
    assert f" {documented} documented CRS, ICANS or IEC-HS windows" in chart.proto.alt
    assert any(c.value == chart.proto.alt for c in app.caption)  # the same, visible
    expander = next(e for e in app.expander if e.label == "Values as a table")
    table, context = (t.value for t in expander.table)
    assert {"Date", "Ferritin (ng/mL)", "Fibrinogen (mg/dL)"} <= set(table.columns)
    assert list(context.columns) == ["Date", "Windows", "Treatments"]
    # every ferritin result the chart draws is in the table, formatted as on the chart
    spec = figure(app)
    trace = next(t for t in spec["data"] if t.get("name") == "Ferritin"
                 and (t.get("meta") or {}).get("role") == "values")
    shown = " ".join(table["Ferritin (ng/mL)"])
    for y in trace["y"]:
        assert fmt(y) in shown, fmt(y)
    assert any("IEC-HS grade 3" in w for w in context["Windows"])
    assert any("Anakinra" in t for t in context["Treatments"])
    assert set(context.index) < set(table.index)  # only the days with a window or a dose
    lines = " ".join(m.value for m in expander.markdown)
    assert "Threshold lines on the chart" in lines and "provisional" in lines


def test_values_table_spells_out_what_the_markers_show():
    from core.vocabulary.course import make_course
    from dashboard.chart_text import CORRECTED_MARK, UNVERIFIED_MARK, values_table

    course = make_course(
        date(2026, 1, 1), labs=[("ferritin", 1.2, 500), ("ferritin", 1.8, 700),
                                ("ferritin", 3, 100000, None, None, ">"), ("fibrinogen", 2, 90),
                                ("ferritin", 40, 1)],
        episodes=[("CRS", 2, 1, 3)], treatments=[("anakinra", 2.1, 100, "mg"),
                                                 ("anakinra", 2.6, 100, "mg")])
    course.labs.loc[course.labs["day"] == 1.8, "verified"] = False
    corrected = {int(course.labs.loc[course.labs["day"] == 2.0, "lab_id"].iloc[0]): "typo"}
    table = values_table(course, (-7, 30), ("ferritin", "fibrinogen", "ast"),
                         [{"kind": "ICANS", "grade": 1, "onset_day": 2.5,
                           "resolved_day": 4.0}], corrected)
    assert list(table.index) == ["+1", "+2", "+3"]  # day 40 is outside the days shown
    assert list(table.columns) == ["Date", "Ferritin (ng/mL)", "Fibrinogen (mg/dL)",
                                   "Windows", "Treatments"]  # no AST result: no column
    assert table.at["+1", "Date"] == "Fri\u00a002\u00a0Jan"
    assert table.at["+1", "Ferritin (ng/mL)"] == f"500 · 700\u00a0{UNVERIFIED_MARK}"
    assert table.at["+2", "Fibrinogen (mg/dL)"] == f"90\u00a0{CORRECTED_MARK}"
    assert table.at["+3", "Ferritin (ng/mL)"] == ">100,000"
    assert table.at["+1", "Windows"] == "CRS grade 2"
    assert table.at["+2", "Windows"] == "CRS grade 2; ICANS grade 1 (suggested)"
    assert table.at["+3", "Windows"] == "ICANS grade 1 (suggested)"
    assert table.at["+2", "Treatments"] == "Anakinra 100 mg ×2"
    assert values_table(course, (50, 60), ("ferritin",)).empty

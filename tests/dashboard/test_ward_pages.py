"""AppTest: ward overview, huddle wall (no identifiers, paging, stale banner), alert inbox."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from core.config import SAMPLE_DIR

PATIENTS = pd.read_csv(SAMPLE_DIR / "patients.csv")


def all_output(at) -> str:
    """Every element's proto as text (markdown, captions, tables, widgets), main and sidebar."""
    out = []

    def walk(node) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            out.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(out)


def concern_order(url: str) -> pd.DataFrame:
    """The ward in concern order as core computes it (the page must show the same order)."""
    from core.store.db import make_engine, session_scope
    from core.views.ward import ward_summary

    with session_scope(make_engine(url)) as s:
        return ward_summary(s, "UTC")


def alert_row(url: str, alert_id: int) -> dict:
    with create_engine(url).connect() as c:
        return dict(c.execute(text("SELECT * FROM alert WHERE id = :i"), {"i": alert_id})
                    .mappings().one())


def test_overview_lists_active_patients_sorted_by_concern(app, sample_url):
    app.switch_page("pages/overview.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    assert len(table) == 13  # SYN-012 is discharged
    assert table["Concern"].is_monotonic_decreasing
    top = concern_order(sample_url)["patient_id"].iloc[0]
    assert table["Open"].iloc[0] == f"/patient?patient={top}"
    assert any("No labs today" in w.value and "4B-03" in w.value for w in app.warning)


def test_overview_filters_by_product_and_status(app):
    app.switch_page("pages/overview.py").run()
    app.multiselect(key="overview_product").set_value(["cilta-cel"]).run()
    assert set(app.dataframe[0].value["Open"].str[-7:]) == {"SYN-005", "SYN-014"}
    app.multiselect(key="overview_status").set_value(["CRS"]).run()
    assert list(app.dataframe[0].value["Open"].str[-7:]) == ["SYN-014"]


def test_huddle_shows_initials_and_beds_but_no_identifier(app):
    app.query_params["page_size"] = "24"
    app.switch_page("pages/huddle.py").run()
    assert not app.exception
    shown = all_output(app)
    assert "SYN-" not in shown
    for pid in PATIENTS["patient_id"]:
        assert pid not in shown
    active = PATIENTS[PATIENTS["patient_id"] != "SYN-012"]
    for initials, bed in active[["initials", "bed"]].itertuples(index=False):
        assert f">{initials}<" in shown and f">{bed}<" in shown
    assert "not a diagnosis" in shown and "updated" in shown
    assert not app.sidebar.selectbox  # the patient picker is not rendered on the wall


def test_huddle_pages_through_tiles_on_each_refresh_and_sorts_by_concern(app, sample_url):
    app.query_params["page_size"] = "4"
    app.switch_page("pages/huddle.py").run()
    first = all_output(app)
    assert "page 1/4" in first and first.count('class=\\"tile\\"') == 4
    beds = list(concern_order(sample_url)["bed"].iloc[:3])
    positions = [first.index(f">{bed}<") for bed in beds]
    assert positions == sorted(positions)
    app.run()
    assert "page 2/4" in all_output(app)


def test_huddle_warns_when_data_is_older_than_the_limit(app):
    app.query_params["stale_hours"] = "0.01"
    app.query_params["theme"] = "light"
    app.switch_page("pages/huddle.py").run()
    assert "DATA MAY BE OUT OF DATE" in all_output(app)


def test_inbox_acknowledges_with_a_note(app, sample_url):
    app.switch_page("pages/alerts.py").run()
    assert not app.exception
    assert any("not a diagnosis" in w.value for w in app.warning)
    alert_id = app.selectbox(key="alerts_selected").value
    app.text_area(key="alerts_ack_note").input("team aware")
    next(b for b in app.button if b.label == "Acknowledge").click().run()
    assert not app.exception
    row = alert_row(sample_url, alert_id)  # the signed-in clinician, not a typed name
    assert row["state"] == "acknowledged" and row["acknowledged_by"] == "dr.lee"
    assert row["ack_note"] == "team aware"
    assert any("acknowledged by dr.lee" in s.value for s in app.success)


def test_inbox_refuses_a_snooze_without_reason_then_snoozes_with_one(app, sample_url):
    app.switch_page("pages/alerts.py").run()
    alert_id = app.selectbox(key="alerts_selected").value
    next(b for b in app.button if b.label == "Snooze").click().run()
    assert any("needs a reason" in e.value for e in app.error)
    assert alert_row(sample_url, alert_id)["state"] == "firing"
    app.text_input(key="alerts_snooze_reason").input("repeat draw at 14:00")
    next(b for b in app.button if b.label == "Snooze").click().run()
    row = alert_row(sample_url, alert_id)
    assert row["state"] == "snoozed" and row["snooze_reason"] == "repeat draw at 14:00"
    assert row["snoozed_until"] is not None


def test_inbox_filters_by_rule_and_shows_history(app, sample_url):
    app.switch_page("pages/alerts.py").run()
    from core.views.ward import short_name

    with create_engine(sample_url).connect() as c:
        expected = {r[0] for r in c.execute(text(
            "SELECT p.patient_id FROM alert a JOIN patient p ON p.id = a.patient_pk "
            "WHERE a.rule_id = 'icaht_early' AND a.state IN ('firing', 'escalated')"))}
    assert len(expected) >= 2
    app.multiselect(key="alerts_rule").set_value([short_name("icaht_early")]).run()
    assert set(app.dataframe[0].value["Patient"]) == expected
    shown = all_output(app)
    assert "Rejeski" in shown and "fired" in shown


LEVEL_CASES = [  # (escalated, severe, warning, info) -> level, words, border pattern
    ((1, 1, 0, 0), "severe", "▲ ESCALATED", "double"),
    ((0, 2, 3, 1), "severe", "▲ SEVERE", "double"),
    ((0, 0, 3, 1), "warning", "◆ WARNING", "dashed"),
    ((0, 0, 0, 1), "info", "● INFO", "dotted"),
    ((0, 0, 0, 0), "none", "○ ALL SEEN", "solid"),
]


@pytest.mark.parametrize(("counts", "level", "words", "border"), LEVEL_CASES)
def test_tile_severity_is_a_word_a_shape_and_a_border_pattern_not_only_a_colour(
        counts, level, words, border):
    from core.views.huddle import HuddleTile
    from dashboard.huddle_wall import tile_html
    from dashboard.ward_view import SEVERITY_COLOURS, severity_label, severity_level

    escalated, severe, warning, info = counts
    fields = {"bed": "4A-01", "initials": "AB", "day": 5, "crs_grade": None,
              "icans_grade": None, "iec_hs": None, "hlh": None, "icaht_grade": None,
              "ferritin": 900.0, "ferritin_trend": "↑", "ferritin_series": [1.0, 2.0],
              "fibrinogen": 300.0, "fibrinogen_trend": "↓", "fibrinogen_series": [2.0, 1.0],
              "unack_severe": severe, "unack_warning": warning, "unack_info": info,
              "escalated": escalated, "no_labs_today": False}
    assert severity_level(fields) == level and severity_label(fields) == words
    html = tile_html(HuddleTile(fields=fields, alerts=[], changes=[]), "dark")
    assert f'data-level="{level}"' in html
    assert f'<span class="sev sev-{level}">{words}</span>' in html
    assert f"border-left-color:{SEVERITY_COLOURS[level]};border-left-style:{border}" in html


def test_each_severity_level_has_its_own_symbol_word_and_border():
    from dashboard.ward_view import SEVERITY_COLOURS, SEVERITY_SIGNS

    assert set(SEVERITY_SIGNS) == set(SEVERITY_COLOURS)
    for part in range(3):  # symbol, word, border style: all distinct across levels
        values = [sign[part] for sign in SEVERITY_SIGNS.values()]
        assert len(set(values)) == len(values), values


def test_huddle_tiles_show_the_severity_in_words(app, sample_url):
    app.query_params["page_size"] = "24"
    app.switch_page("pages/huddle.py").run()
    shown = all_output(app)
    summary = concern_order(sample_url)
    severe = int(((summary["unack_severe"] > 0) | (summary["escalated"] > 0)).sum())
    assert severe > 0 and shown.count("▲ SEVERE") + shown.count("▲ ESCALATED") == severe
    assert shown.count('class=\\"sev sev-') == len(summary)


def test_overview_level_column_says_the_level_beside_the_concern_bar(app, sample_url):
    from dashboard.ward_view import severity_label

    app.switch_page("pages/overview.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    summary = concern_order(sample_url)
    expected = {f"/patient?patient={r['patient_id']}": severity_label(r)
                for r in summary.to_dict("records")}
    assert dict(zip(table["Open"], table["Level"], strict=True)) == expected
    assert {"▲ SEVERE", "◆ WARNING"} <= set(table["Level"])
    order = list(app.dataframe[0].proto.column_order)
    assert order.index("Level") == order.index("Concern") + 1

"""AppTest: the rules page shows what runs (site overrides, provisional numbers); backtesting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP, sign_in

DESIGN_RULE_IDS = [
    "crs_grade", "icans_grade", "iec_hs", "cartox_hlh", "hlh_2004", "hscore", "icaht_early",
    "icaht_late", "ticaht_early", "ticaht_late", "prolonged_cytopenia", "car_hematotox",
    "ferritin_kinetics", "supportive_thresholds", "therapy_response", "lab_overdue",
]


def frame(at: AppTest, column: str, value: object = None):
    """The first table with `column` (holding `value`, when given)."""
    return next(d.value for d in at.dataframe if column in d.value.columns
                and (value is None or (d.value[column] == value).any()))


def test_rules_page_lists_every_design_rule_and_marks_provisional_thresholds(app):
    app.switch_page("pages/rules.py").run()
    assert not app.exception
    table = app.dataframe[0].value
    for rule_id in DESIGN_RULE_IDS:
        assert rule_id in set(table["rule_id"])
    assert any(re.fullmatch(r"ctcae_\w+", r) for r in table["rule_id"])
    numbers = app.dataframe[-1].value  # every threshold in force
    provisional = numbers[numbers["provisional"]]
    assert {"DESIGN", "UNCONFIRMED"} >= set(provisional["evidence"])
    assert not provisional.empty and not numbers[~numbers["provisional"]].empty
    assert any("provisional" in e.proto.body for e in app.markdown
               if "badge" in e.proto.body)
    assert not numbers["overridden"].any()


def test_rules_page_filters_by_text_and_evidence(app):
    app.switch_page("pages/rules.py").run()
    app.text_input(key="rules_text").input("fibrinogen").run()
    ids = set(app.dataframe[0].value["rule_id"])
    assert "ctcae_fibrinogen" in ids and "crs_grade" not in ids
    app.text_input(key="rules_text").input("").run()
    app.multiselect(key="rules_evidence").set_value(["C"]).run()
    assert "ctcae_ast" in set(app.dataframe[0].value["rule_id"])
    assert "hscore" not in set(app.dataframe[0].value["rule_id"])


def test_rules_page_shows_a_site_override_with_its_value(sample_url, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site.toml"
    site.write_text("[thresholds.cartox_hlh]\nentry_ferritin = 7500\n")
    monkeypatch.setenv("CARTWATCH_SITE_CONFIG", str(site))
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "viewer.vic")
    at.run()
    at.switch_page("pages/rules.py").run()
    assert not at.exception
    numbers = at.dataframe[-1].value
    row = numbers[(numbers["rule_id"] == "cartox_hlh") & (numbers["key"] == "entry_ferritin")]
    assert row["value"].item() == 7500 and row["default"].item() == 10000
    assert row["overridden"].item()
    assert numbers["overridden"].sum() == 1
    own = frame(at, "in_force", "> 7500 ng/mL  (site; default 10000)")  # cartox_hlh's table
    assert own["status"].tolist().count("SITE") == 1
    assert any("1 threshold(s) overridden" in i.value for i in at.info)


def test_backtest_page_shows_burden_per_rule_and_a_what_if_changes_it(app):
    app.switch_page("pages/backtest.py").run()
    assert not app.exception
    burden = frame(app, "Per 100 patient-days")
    assert {"iec_hs", "crs_grade", "lab_overdue"} <= set(burden["Rule"])
    assert "car_hematotox" not in set(burden["Rule"])  # informational: never alerts
    assert burden["Alerts"].sum() > 0
    assert len(app.get("plotly_chart")) == 1
    before = burden.set_index("Rule").at["cartox_hlh", "Alerts"]

    app.selectbox(key="backtest_rule").set_value("cartox_hlh").run()
    app.selectbox(key="backtest_key").set_value("entry_ferritin").run()
    app.number_input(key="backtest_value_cartox_hlh_entry_ferritin").set_value(1000.0).run()
    app.button(key="backtest_run").click().run()
    assert not app.exception
    compare = frame(app, "Alerts before").set_index("Rule")
    assert compare.at["cartox_hlh", "Alerts before"] == before
    assert compare.at["cartox_hlh", "Alerts after"] > before
    assert not list(Path(".").glob("*.toml.new"))

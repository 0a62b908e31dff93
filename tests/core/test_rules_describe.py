"""The rules page's tables are built from the catalogue and the overrides in force."""

from __future__ import annotations

import pytest

from core.rules.catalog import all_specs
from core.views.rule_tables import catalogue_frame, filter_catalogue, thresholds_frame


def test_every_rule_and_threshold_of_the_catalogue_is_listed_once():
    catalogue, numbers = catalogue_frame(), thresholds_frame()
    assert catalogue["rule_id"].tolist() == [s.rule.id for s in all_specs()]
    assert len(numbers) == sum(len(s.rule.thresholds) for s in all_specs())
    assert not numbers.duplicated(["rule_id", "key"]).any()
    assert (numbers["value"] == numbers["default"]).all() and not numbers["overridden"].any()


def test_provisional_means_an_unconfirmed_or_design_number():
    numbers = thresholds_frame()
    assert set(numbers.loc[numbers["provisional"], "evidence"]) == {"UNCONFIRMED", "DESIGN"}
    assert set(numbers.loc[~numbers["provisional"], "evidence"]) <= {"C", "C2"}


def test_a_site_override_is_in_force_and_keeps_its_default_beside_it():
    numbers = thresholds_frame({"cartox_hlh": {"entry_ferritin": 7500.0}})
    row = numbers[numbers["overridden"]].iloc[0]
    assert (row["rule_id"], row["key"], row["value"], row["default"]) == \
        ("cartox_hlh", "entry_ferritin", 7500.0, 10000.0)
    assert row["in_force"] == "> 7500 ng/mL  (site; default 10000)"
    catalogue = catalogue_frame({"cartox_hlh": {"entry_ferritin": 7500.0}})
    assert catalogue.set_index("rule_id")["overridden"].to_dict()["cartox_hlh"] == 1


def test_an_unknown_override_key_is_refused_not_shown():
    with pytest.raises(KeyError):
        thresholds_frame({"cartox_hlh": {"entry_feritin": 1.0}})


def test_inputs_are_named_in_words():
    crs = catalogue_frame().set_index("rule_id").loc["crs_grade"]
    assert "Temperature" in crs["observations"] and "temperature" not in crs["observations"]
    ferritin = catalogue_frame().set_index("rule_id").loc["ferritin_kinetics"]
    assert ferritin["labs"] == "Ferritin"


def test_filter_by_text_reaches_threshold_keys_and_by_evidence_tag():
    catalogue, numbers = catalogue_frame(), thresholds_frame()
    ids = set(filter_catalogue(catalogue, numbers, "entry_ferritin")["rule_id"])
    assert ids == {"cartox_hlh"}
    ids = set(filter_catalogue(catalogue, numbers, evidence=["C"])["rule_id"])
    assert "ctcae_ast" in ids and "hscore" not in ids
    assert filter_catalogue(catalogue, numbers, provisional_only=True)["provisional"].all()

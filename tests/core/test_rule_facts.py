"""Facts about a rule (short name, syndrome, informational, episode kind) are declared on its
`Rule` row, and the ward, alerts, backtest and episode views read them from the catalogue.

The table is what the ward, core/monitoring/alerts.py and core/views/suggested_episodes.py
held in their own lists before the facts moved onto the rules (issue 15): the same strings,
sets and kinds.
"""

from __future__ import annotations

import pytest

from core.monitoring.alerts import is_alertable
from core.monitoring.backtest import alert_episodes, burden_table
from core.rules.base import Finding, Status
from core.rules.catalog import (
    all_rules,
    all_specs,
    episode_kinds,
    informational_ids,
    rules_by_id,
    syndrome_ids,
)
from core.store.models import EpisodeKind
from core.views.ward import short_name

# rule id -> (short name, syndrome kind, informational, episode kind)
FACTS: dict[str, tuple[str, str | None, bool, str | None]] = {
    "crs_grade": ("CRS", "graded", False, "CRS"),
    "icans_grade": ("ICANS", "graded", False, "ICANS"),
    "iec_hs": ("IEC-HS screen", "met", False, "IEC-HS"),
    "cartox_hlh": ("HLH/MAS", "met", False, None),
    "hlh_2004": ("HLH-2004", "listed", False, None),
    "hscore": ("HScore", "listed", False, None),
    "ferritin_kinetics": ("Ferritin kinetics", "listed", False, None),
    "therapy_response": ("No response to therapy", "met", False, None),
    "supportive_thresholds": ("Supportive-care thresholds", "listed", False, None),
    "icaht_early": ("Early ICAHT", None, False, None),
    "icaht_late": ("Late ICAHT", None, False, None),
    "ticaht_early": ("Early T-ICAHT", None, False, None),
    "ticaht_late": ("Late T-ICAHT", None, False, None),
    "prolonged_cytopenia": ("Prolonged cytopenia", None, False, None),
    "car_hematotox": ("CAR-HEMATOTOX", None, True, None),
    "ctcae_ast": ("CTCAE AST", None, False, None),
    "ctcae_alt": ("CTCAE ALT", None, False, None),
    "ctcae_bilirubin": ("CTCAE Bilirubin", None, False, None),
    "ctcae_creatinine": ("CTCAE Creatinine", None, False, None),
    "ctcae_fibrinogen": ("CTCAE Fibrinogen", None, False, None),
    "ctcae_anc": ("CTCAE ANC", None, False, None),
    "ctcae_platelets": ("CTCAE Platelets", None, False, None),
    "ctcae_hemoglobin": ("CTCAE Hb", None, False, None),
    "ctcae_alc": ("CTCAE ALC", None, False, None),
    "ctcae_wbc": ("CTCAE WBC", None, False, None),
    "ctcae_triglycerides": ("CTCAE TG", None, False, None),
    "lab_overdue": ("Lab overdue", None, False, None),
}


def test_the_table_covers_the_catalogue_in_display_order() -> None:
    assert [r.id for r in all_rules()] == list(FACTS)


@pytest.mark.parametrize("rule_id", list(FACTS))
def test_each_rule_declares_its_facts(rule_id: str) -> None:
    rule = rules_by_id()[rule_id]
    assert (rule.short_name, rule.syndrome, rule.informational, rule.episode_kind) == (
        FACTS[rule_id])
    assert short_name(rule_id) == FACTS[rule_id][0]


def test_short_names_are_set_unique_and_fit_one_line() -> None:
    names = [r.short_name for r in all_rules()]
    assert all(names) and len(set(names)) == len(names)
    assert max(map(len, names)) <= 30


def test_a_rule_no_longer_in_the_catalogue_shows_its_id() -> None:
    assert short_name("retired_rule") == "retired_rule"


def test_the_sets_the_views_read_are_derived_from_the_rows() -> None:
    assert informational_ids() == {"car_hematotox"}
    assert syndrome_ids("met") == {"iec_hs", "cartox_hlh", "therapy_response"}
    assert syndrome_ids("graded") == {"crs_grade", "icans_grade"}
    assert syndrome_ids() == {"crs_grade", "icans_grade", "iec_hs", "cartox_hlh",
                              "therapy_response", "hlh_2004", "hscore", "ferritin_kinetics",
                              "supportive_thresholds"}
    assert dict(episode_kinds()) == {"crs_grade": "CRS", "icans_grade": "ICANS",
                                     "iec_hs": "IEC-HS"}
    assert set(episode_kinds().values()) == {k.value for k in EpisodeKind}


@pytest.mark.parametrize(("rule_id", "status", "alertable"), [
    ("crs_grade", Status.MET, True),
    ("ctcae_alc", Status.MET, True),
    ("car_hematotox", Status.MET, False),  # informational: never an alert
    ("crs_grade", Status.NOT_MET, False),
    ("crs_grade", Status.NOT_EVALUABLE, False),
])
def test_only_met_findings_of_rules_that_are_not_informational_alert(
        rule_id: str, status: Status, alertable: bool) -> None:
    assert is_alertable(Finding(rule=rule_id, status=status)) is alertable


def test_the_backtest_counts_no_informational_rule() -> None:
    met = [Finding(rule=r, status=Status.MET, since_day=1.0) for r in FACTS]
    episodes = alert_episodes([("P1", [(1, met)])])
    assert set(episodes["rule_id"]) == set(FACTS) - {"car_hematotox"}
    burden = burden_table(episodes, patients=1, patient_days=1, specs=all_specs())
    assert list(burden["rule_id"]) == [r for r in FACTS if r != "car_hematotox"]

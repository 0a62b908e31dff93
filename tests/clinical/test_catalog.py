"""Catalogue meta-tests: what the rules page shows is complete, cited and well-formed."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from core.rules.base import Status
from core.rules.catalog import all_rules, all_specs
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES, Evidence

ROOT = Path(__file__).resolve().parents[2]
DESIGN_MD = ROOT.parent / "shared" / "design.md"

# The rule ids of design.md's table (ctcae_<analyte> expands to the graded analytes).
DESIGN_IDS = {
    "crs_grade", "icans_grade", "iec_hs", "cartox_hlh", "hlh_2004", "hscore", "icaht_early",
    "icaht_late", "ticaht_early", "ticaht_late", "prolonged_cytopenia", "car_hematotox",
    "ferritin_kinetics", "supportive_thresholds", "therapy_response", "lab_overdue",
}
GRADED = {"crs_grade", "icans_grade", "icaht_early", "icaht_late", "ticaht_early",
          "ticaht_late"}
SCORED = {"hscore", "car_hematotox"}
# Units a threshold may use besides the canonical analyte units and observation units.
DIMENSIONLESS = {"x ULN", "x LLN", "x baseline", "fold", "fraction", "ratio", "% decrease",
                 "day", "days", "hours", "years", "points", "count", "results", "grade",
                 "logit", "logit/point"}
KNOWN_UNITS = ({a.unit for a in ANALYTES.values()}
               | {k.unit for k in OBSERVATION_KINDS.values() if k.unit} | DIMENSIONLESS)
RANK = {Evidence.C: 0, Evidence.C2: 1, Evidence.UNCONFIRMED: 2, Evidence.DESIGN: 2}


def test_rule_ids_are_unique():
    ids = [r.id for r in all_rules()]
    assert len(ids) == len(set(ids))


def test_every_design_rule_id_is_in_the_catalogue():
    ids = {r.id for r in all_rules()}
    assert DESIGN_IDS <= ids
    assert any(i.startswith("ctcae_") for i in ids)
    assert all(i in DESIGN_IDS or i.startswith("ctcae_") for i in ids)


def test_design_md_table_matches_the_list_above():
    if not DESIGN_MD.exists():
        from tests.conftest import missing_dependency

        missing_dependency("../shared/design.md beside the project")
    text = DESIGN_MD.read_text(encoding="utf-8")
    table = text[text.index("| rule id |"):text.index("Every rule declares")]
    found = set(re.findall(r"`([a-z0-9_<>]+)`", table)) - {"ctcae_<analyte>"}
    assert found == DESIGN_IDS


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_rule_is_declared_as_data(rule):
    assert rule.title and rule.version
    assert rule.citation.source and rule.citation.section
    assert "§" in rule.citation.section or "design" in rule.citation.section.lower()
    assert rule.inputs
    keys = [t.key for t in rule.thresholds]
    assert len(keys) == len(set(keys))
    for t in rule.thresholds:
        assert t.unit in KNOWN_UNITS, f"{rule.id}.{t.key}: unknown unit {t.unit!r}"
        assert isinstance(t.evidence, Evidence) and t.description
        assert t.op in ("", ">", ">=", "<", "<=")
    weakest = max((RANK[t.evidence] for t in rule.thresholds if not t.operational),
                  default=0)
    assert RANK[rule.evidence] >= weakest, f"{rule.id}: evidence stronger than its numbers"
    assert rule.graded == (rule.id in GRADED or rule.id.startswith("ctcae_"))
    assert rule.scored == (rule.id in SCORED)


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_provisional_numbers_make_the_rule_provisional(rule):
    if any(t.evidence.is_provisional for t in rule.thresholds if not t.operational):
        assert rule.is_provisional
    for t in rule.thresholds:
        if t.operational:  # an operational setting is a design default, never a clinical number
            assert t.evidence is Evidence.DESIGN, f"{rule.id}.{t.key}"


MY_RULES = {"crs_grade", "icans_grade", "iec_hs", "cartox_hlh", "hlh_2004", "hscore",
            "ferritin_kinetics", "therapy_response", "supportive_thresholds"}


@pytest.mark.parametrize("rule", [r for r in all_rules() if r.id in MY_RULES],
                         ids=lambda r: r.id)
def test_open_choices_are_recorded(rule):
    assert rule.choices, f"{rule.id} records no choice"


# --- every rule has a firing and a non-firing case in its own case table ---------------------
# A rule's worked examples are a table (a module-level list of pytest.param rows passed to
# pytest.mark.parametrize) in the rule's own module under tests/clinical. Tables state their
# expectation differently, so each entry names the column that states it and how to read it:
# a status column (met fires, not_met does not) or a grade column (>= 1 fires, 0 does not).
# A not_evaluable or None row is neither. This reads the tables; it runs no rule.


def stated_status(value: object) -> Status | None:
    return Status(value) if value in (Status.MET, Status.NOT_MET) else None


def stated_grade(value: object) -> Status | None:
    if value is None:
        return None
    return Status.MET if value >= 1 else Status.NOT_MET


@dataclass(frozen=True)
class CaseTable:
    module: str  # tests/clinical/<module>.py
    table: str  # its module-level list of rows
    test: str  # the test that the table parametrizes
    column: str  # the parameter that states the expected outcome
    read: Callable[[object], Status | None] = stated_status
    rule_column: str | None = None  # a table shared by several rules names each row's rule


def _cytopenia(table: str, test: str) -> tuple[CaseTable, ...]:
    return (CaseTable("test_cytopenia", table, test, "status"),)


CTCAE = (CaseTable("test_ctcae", "RULE_CASES", "test_ctcae_rule_grades_latest_result",
                   "status", rule_column="rule_id"),)
# Every rule of the catalogue needs an entry here.
CASE_TABLES: dict[str, tuple[CaseTable, ...]] = {
    "crs_grade": (CaseTable("test_crs_grade", "CRS_CASES", "test_crs_grade", "expected",
                            stated_grade),),
    "icans_grade": (CaseTable("test_icans_grade", "ICANS_CASES", "test_icans_grade",
                              "expected", stated_grade),),
    "iec_hs": (CaseTable("test_iec_hs", "FEATURE_CASES", "test_iec_hs_features", "status"),
               CaseTable("test_iec_hs", "CYTOPENIA_CASES",
                         "test_new_cytopenia_is_a_fall_from_the_recent_best", "status")),
    "cartox_hlh": (CaseTable("test_cartox_hlh", "CARTOX_CASES", "test_cartox_cases",
                             "status"),),
    "ferritin_kinetics": (CaseTable("test_ferritin_kinetics", "RAPID_RISE_CASES",
                                    "test_rapid_rise_flag", "status"),),
    "therapy_response": (CaseTable("test_therapy_response", "THERAPY_CASES",
                                   "test_therapy_response", "status"),),
    "supportive_thresholds": (CaseTable("test_supportive_thresholds", "SUPPORTIVE_CASES",
                                        "test_supportive_thresholds", "status"),),
    "icaht_early": _cytopenia("EARLY_CASES", "test_icaht_early")
    + _cytopenia("SPARSE_CASES", "test_icaht_early_sparse_sampling"),
    "icaht_late": _cytopenia("LATE_CASES", "test_icaht_late"),
    "ticaht_early": _cytopenia("TICAHT_EARLY_CASES", "test_ticaht_early"),
    "ticaht_late": _cytopenia("TICAHT_LATE_CASES", "test_ticaht_late"),
    "prolonged_cytopenia": _cytopenia("PROLONGED_CASES", "test_prolonged_cytopenia")
    + _cytopenia("CENSOR_CASES",
                 "test_prolonged_cytopenia_is_censored_at_progression_next_therapy_or_death"),
    "car_hematotox": _cytopenia("HEMATOTOX_EXAMPLES", "test_car_hematotox_examples"),
    **{f"ctcae_{a}": CTCAE for a in ("ast", "alt", "bilirubin", "creatinine", "fibrinogen",
                                     "anc", "platelets", "hemoglobin", "alc", "wbc",
                                     "triglycerides")},
    "lab_overdue": (CaseTable("test_lab_overdue", "CASES", "test_lab_overdue", "status"),),
    "hlh_2004": (CaseTable("test_hlh_2004", "OUTCOME_CASES", "test_hlh_2004_outcome",
                           "status"),),
    "hscore": (CaseTable("test_hscore", "OUTCOME_CASES", "test_hscore_outcome", "status"),),
}

def _clinical_module(name: str) -> ModuleType:
    return importlib.import_module(f"tests.clinical.{name}")


def table_rows(entry: CaseTable, module: ModuleType) -> list[dict[str, object]]:
    """The table's rows as {parameter: value}, named by the parametrize mark that uses it."""
    table = getattr(module, entry.table)
    test = getattr(module, entry.test)
    marks = [m for m in getattr(test, "pytestmark", [])
             if m.name == "parametrize" and m.args[1] is table]
    if not marks:
        raise LookupError(f"{entry.module}.{entry.test} is not parametrized by {entry.table}")
    names = marks[0].args[0]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",")]
    return [dict(zip(names, getattr(row, "values", row), strict=True)) for row in table]


def rule_gaps(rule_id: str, entries: tuple[CaseTable, ...],
              load: Callable[[str], ModuleType] = _clinical_module) -> list[str]:
    """What the rule's own tables lack: a firing row, a non-firing row, or any row at all."""
    stated: set[Status] = set()
    gaps = []
    for entry in entries:
        where = f"{entry.module}.{entry.table}"
        rows = [r for r in table_rows(entry, load(entry.module))
                if entry.rule_column is None or r[entry.rule_column] == rule_id]
        if not rows:
            gaps.append(f"{rule_id}: {where} lists no case")
        stated |= {entry.read(r[entry.column]) for r in rows} - {None}
    where = ", ".join(f"{e.module}.{e.table}" for e in entries)
    if Status.MET not in stated:
        gaps.append(f"{rule_id}: no firing case in {where}")
    if Status.NOT_MET not in stated:
        gaps.append(f"{rule_id}: no non-firing case in {where}")
    return gaps


def test_every_rule_in_the_catalogue_names_its_own_case_tables():
    ids = {spec.rule.id for spec in all_specs()}
    declared = set(CASE_TABLES)
    assert not ids - declared, (f"no case table declared for {sorted(ids - declared)}: add "
                                "the rule's table (a firing and a non-firing row) to CASE_TABLES")
    assert not declared - ids, f"declared but not in the catalogue: {sorted(declared - ids)}"


@pytest.mark.parametrize("rule_id", list(CASE_TABLES))
def test_every_rule_has_a_firing_and_a_non_firing_case_in_its_own_table(rule_id):
    assert rule_gaps(rule_id, CASE_TABLES[rule_id]) == []


def test_rule_gaps_fails_when_a_table_loses_its_firing_or_non_firing_rows():
    """The check on fabricated copies of the crs_grade table: it must be able to fail."""
    from tests.clinical.test_crs_grade import CRS_CASES

    def fabricated(rows):
        @pytest.mark.parametrize(("obs", "treatments", "expected"), rows)
        def test_fake(obs, treatments, expected):
            pass
        return SimpleNamespace(CASES=rows, test_fake=test_fake)

    entry = CaseTable("fake", "CASES", "test_fake", "expected", stated_grade)
    quiet = [p for p in CRS_CASES if p.values[2] == 0]
    firing = [p for p in CRS_CASES if p.values[2] >= 1]
    assert quiet and firing
    assert rule_gaps("crs_grade", (entry,), lambda _: fabricated(CRS_CASES)) == []
    assert rule_gaps("crs_grade", (entry,), lambda _: fabricated(quiet)) == [
        "crs_grade: no firing case in fake.CASES"]
    assert rule_gaps("crs_grade", (entry,), lambda _: fabricated(firing)) == [
        "crs_grade: no non-firing case in fake.CASES"]
    unknown = [pytest.param([], None, None, id="not-evaluable")]
    assert rule_gaps("crs_grade", (entry,), lambda _: fabricated(unknown)) == [
        "crs_grade: no firing case in fake.CASES", "crs_grade: no non-firing case in fake.CASES"]
    with pytest.raises(LookupError, match="not parametrized by CASES"):
        rule_gaps("crs_grade", (entry,),
                  lambda _: SimpleNamespace(CASES=CRS_CASES, test_fake=lambda: None))


def test_rule_gaps_reads_only_the_rules_own_rows_of_a_shared_table():
    rows = [("ctcae_anc", Status.MET), ("ctcae_anc", Status.NOT_EVALUABLE),
            ("ctcae_wbc", Status.NOT_MET)]

    @pytest.mark.parametrize("rule_id, status", rows)
    def test_fake(rule_id, status):
        pass

    fake = SimpleNamespace(CASES=rows, test_fake=test_fake)
    entry = CaseTable("fake", "CASES", "test_fake", "status", rule_column="rule_id")
    assert rule_gaps("ctcae_anc", (entry,), lambda _: fake) == [
        "ctcae_anc: no non-firing case in fake.CASES"]
    assert rule_gaps("ctcae_alc", (entry,), lambda _: fake) == [
        "ctcae_alc: fake.CASES lists no case", "ctcae_alc: no firing case in fake.CASES",
        "ctcae_alc: no non-firing case in fake.CASES"]


# Alarm policy [DESIGN] (core.monitoring.alerts.severity_of): (severity, escalates_at_grade) per
# rule.
ALARM_POLICY = {
    "crs_grade": ("warning", 3), "icans_grade": ("warning", 3),
    "icaht_early": ("warning", 3), "icaht_late": ("warning", 3),
    "ticaht_early": ("warning", 3), "ticaht_late": ("warning", 3),
    "ctcae_alc": ("info", None), "ctcae_wbc": ("info", None),
}


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r.id)
def test_alarm_policy_is_declared_on_the_rule(rule):
    if rule.id in ALARM_POLICY:
        expected = ALARM_POLICY[rule.id]
    elif rule.id.startswith("ctcae_"):
        expected = ("warning", 4)
    else:
        expected = (rule.severity.value, None)
    assert (rule.severity.value, rule.escalates_at_grade) == expected
    if rule.escalates_at_grade is not None:
        assert rule.graded
        assert any("Alarm policy [DESIGN]" in c for c in rule.choices)

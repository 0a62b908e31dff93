"""Catalogue meta-tests: what the rules page shows is complete, cited and well-formed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.observations import OBSERVATION_KINDS
from core.rules.base import Status
from core.rules.catalog import all_rules, all_specs
from core.units import ANALYTES, Evidence

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


RECORDER = textwrap.dedent("""
    import json, sys
    import pytest
    from core.rules import base
    seen = set()
    original = base.Finding.__init__
    def record(self, *a, **k):
        original(self, *a, **k)
        seen.add((self.rule, str(self.status)))
    base.Finding.__init__ = record
    code = pytest.main(sys.argv[2:])
    json.dump(sorted(seen), open(sys.argv[1], "w"))
    sys.exit(int(code))
""")


def test_every_rule_has_a_firing_and_a_non_firing_case_in_tests_clinical(tmp_path):
    """Runs tests/clinical (without this file) recording every finding the rules produce."""
    out = tmp_path / "seen.json"
    here = Path(__file__).name
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", RECORDER, str(out), "-q", "-x", "-p", "no:cacheprovider",
         str(ROOT / "tests" / "clinical"), f"--ignore={ROOT / 'tests' / 'clinical' / here}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    seen = {tuple(x) for x in json.loads(out.read_text())}
    lacking = []
    for spec in all_specs():
        rid = spec.rule.id
        if (rid, str(Status.MET)) not in seen:
            lacking.append(f"{rid}: no firing case")
        if (rid, str(Status.NOT_MET)) not in seen:
            lacking.append(f"{rid}: no non-firing case")
    assert not lacking, "; ".join(lacking)


# Alarm policy [DESIGN] (core/alerts.severity_of): (severity, escalates_at_grade) per rule.
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

"""The rule catalogue: every RuleSpec the engine runs, in display order.

Pages and the CLI render the catalogue from here, so what clinicians read is what runs.
"""

from __future__ import annotations

from functools import cache

from core.rules import (
    crs,
    ctcae,
    cytopenia,
    ferritin,
    hlh,
    icans,
    iec_hs,
    lab_overdue,
    supportive,
)
from core.rules.base import Rule, RuleSpec

# Modules that export RULES: tuple[RuleSpec, ...], in display order.
RULE_MODULES = (crs, icans, iec_hs, hlh, ferritin, supportive, cytopenia, ctcae, lab_overdue)


@cache
def all_specs() -> tuple[RuleSpec, ...]:
    """Every rule declaration with its evaluator; ids are unique."""
    specs = tuple(spec for module in RULE_MODULES for spec in module.RULES)
    ids = [s.rule.id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate rule ids in the catalogue: {dupes}")
    return specs


def all_rules() -> tuple[Rule, ...]:
    return tuple(s.rule for s in all_specs())


def spec_by_id(rule_id: str) -> RuleSpec:
    for s in all_specs():
        if s.rule.id == rule_id:
            return s
    raise KeyError(f"unknown rule {rule_id!r}")

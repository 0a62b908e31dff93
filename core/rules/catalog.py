"""The rule catalogue: every RuleSpec the engine runs, in display order.

Pages and the CLI render the catalogue from here, so what clinicians read is what runs.
"""

from __future__ import annotations

import importlib
from functools import cache

from core.rules.base import Rule, RuleSpec

# Modules that export RULES: tuple[RuleSpec, ...], in display order (imported on first use so
# that importing the catalogue stays cheap for pages that only need one rule).
RULE_MODULES = (
    "core.rules.crs",
    "core.rules.icans",
    "core.rules.iec_hs",
    "core.rules.hlh",
    "core.rules.ferritin",
    "core.rules.supportive",
    "core.rules.cytopenia",
    "core.rules.ctcae",
    "core.rules.lab_overdue",
)


@cache
def all_specs() -> tuple[RuleSpec, ...]:
    """Every rule declaration with its evaluator; ids are unique."""
    specs: list[RuleSpec] = []
    for name in RULE_MODULES:
        specs.extend(importlib.import_module(name).RULES)
    ids = [s.rule.id for s in specs]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"duplicate rule ids in the catalogue: {dupes}")
    return tuple(specs)


def all_rules() -> tuple[Rule, ...]:
    return tuple(s.rule for s in all_specs())


def spec_by_id(rule_id: str) -> RuleSpec:
    for s in all_specs():
        if s.rule.id == rule_id:
            return s
    raise KeyError(f"unknown rule {rule_id!r}")

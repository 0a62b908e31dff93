"""The rule catalogue: every RuleSpec the engine runs, in display order.

Pages and the CLI render the catalogue from here, so what clinicians read is what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from types import MappingProxyType

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
    therapy_response,
)
from core.rules.base import Rule, RuleSpec, Syndrome

# Modules that export RULES: tuple[RuleSpec, ...], in display order.
RULE_MODULES = (crs, icans, iec_hs, hlh, ferritin, therapy_response, supportive, cytopenia, ctcae,
                lab_overdue)


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


# The facts other views read are declared on each Rule (short_name, syndrome, informational,
# episode_kind); these are the sets they read, made once.


@cache
def rules_by_id() -> Mapping[str, Rule]:
    """Every rule of the catalogue by id (read-only)."""
    return MappingProxyType({r.id: r for r in all_rules()})


@cache
def informational_ids() -> frozenset[str]:
    """Rules whose findings never raise an alert (Rule.informational)."""
    return frozenset(r.id for r in all_rules() if r.informational)


@cache
def syndrome_ids(*kinds: Syndrome) -> frozenset[str]:
    """Rules declared as a syndrome of any of `kinds`; of any kind when none is given."""
    return frozenset(r.id for r in all_rules()
                     if r.syndrome is not None and (not kinds or r.syndrome in kinds))


@cache
def episode_kinds() -> Mapping[str, str]:
    """Rule id -> the episode kind its met stretches suggest (Rule.episode_kind)."""
    return MappingProxyType({r.id: r.episode_kind for r in all_rules()
                             if r.episode_kind is not None})

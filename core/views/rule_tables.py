"""The rule catalogue as tables, for the rules page: exactly what the engine runs.

Both frames are built from `all_specs()` and the site overrides actually loaded (the same
mapping `run_evaluate` hands the engine), so a value shown here is a value in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from core.rules.base import Rule, RuleSpec, Thresholds
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES

Overrides = Mapping[str, Mapping[str, float]]

CATALOGUE_COLUMNS = [
    "rule_id", "title", "version", "citation", "source", "section", "doi", "evidence",
    "provisional", "severity", "output", "labs", "observations", "other_inputs", "choices",
    "description", "thresholds", "overridden",
]
THRESHOLD_COLUMNS = [
    "rule_id", "key", "value", "default", "unit", "op", "evidence", "provisional",
    "overridden", "in_force", "description",
]


def _specs(specs: Sequence[RuleSpec] | None) -> Sequence[RuleSpec]:
    if specs is None:
        from core.rules.catalog import all_specs

        return all_specs()
    return specs


def output_kind(rule: Rule) -> str:
    """'grade', 'score' or 'flag': what the rule's finding carries besides met/not met."""
    return "grade" if rule.graded else "score" if rule.scored else "flag"


def inputs_in_words(rule: Rule) -> dict[str, str]:
    """The rule's inputs split into lab names, observation names and anything else."""
    labs, obs, other = [], [], []
    for code in rule.inputs:
        if code in ANALYTES:
            labs.append(ANALYTES[code].name)
        elif code in OBSERVATION_KINDS:
            obs.append(OBSERVATION_KINDS[code].label)
        else:
            other.append(code.replace("_", " "))
    return {"labs": ", ".join(labs), "observations": ", ".join(obs),
            "other_inputs": ", ".join(other)}


def _fmt(value: float) -> str:
    return f"{value:g}"


def catalogue_frame(overrides: Overrides | None = None,
                    specs: Sequence[RuleSpec] | None = None) -> pd.DataFrame:
    """One row per rule in display order (columns: CATALOGUE_COLUMNS).

    `provisional` is True when the rule or any threshold in force rests on an [UNCONFIRMED]
    or [DESIGN] number; `overridden` counts the thresholds the site changed.
    """
    overrides = overrides or {}
    rows = []
    for spec in _specs(specs):
        r = spec.rule
        site = Thresholds(r, overrides.get(r.id))  # validates the keys like the engine does
        c = r.citation
        rows.append({
            "rule_id": r.id, "title": r.title, "version": r.version,
            "citation": f"{c.source} — {c.section}", "source": c.source,
            "section": c.section, "doi": c.doi or "", "evidence": r.evidence.value,
            "provisional": r.is_provisional, "severity": r.severity.value,
            "output": output_kind(r), **inputs_in_words(r), "choices": list(r.choices),
            "description": r.description, "thresholds": len(r.thresholds),
            "overridden": len(site.overridden),
        })
    return pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)


def thresholds_frame(overrides: Overrides | None = None,
                     specs: Sequence[RuleSpec] | None = None) -> pd.DataFrame:
    """One row per threshold in force (columns: THRESHOLD_COLUMNS).

    `value` is what runs; `default` is the value in code; `overridden` says the value came
    from the site configuration. `in_force` is a readable "value unit" with "(site; default
    X)" when overridden.
    """
    overrides = overrides or {}
    rows = []
    for spec in _specs(specs):
        r = spec.rule
        site = Thresholds(r, overrides.get(r.id))
        for t in r.thresholds:
            value = float(site[t.key])
            is_site = t.key in site.overridden
            shown = f"{t.op} {_fmt(value)} {t.unit}".strip()
            if is_site:
                shown += f"  (site; default {_fmt(t.value)})"
            rows.append({
                "rule_id": r.id, "key": t.key, "value": value, "default": float(t.value),
                "unit": t.unit, "op": t.op, "evidence": t.evidence.value,
                "provisional": t.is_provisional, "overridden": is_site, "in_force": shown,
                "description": t.description,
            })
    return pd.DataFrame(rows, columns=THRESHOLD_COLUMNS)


def filter_catalogue(catalogue: pd.DataFrame, thresholds: pd.DataFrame, text: str = "",
                     evidence: Sequence[str] = (),
                     provisional_only: bool = False) -> pd.DataFrame:
    """The catalogue rows matching a free-text query and evidence tags.

    Text matches (case-insensitive) a rule's id, title, citation, inputs, choices or the
    key/description of any of its thresholds. `evidence` keeps rules whose own tag or any
    threshold's tag is listed; `provisional_only` keeps rules with a provisional number.
    """
    keep = pd.Series(True, index=catalogue.index)
    if text.strip():
        needle = text.strip().lower()
        fields = ["rule_id", "title", "citation", "labs", "observations", "other_inputs",
                  "description"]
        hay = catalogue[fields].astype(str).agg(" ".join, axis=1)
        hay = hay + " " + catalogue["choices"].map(" ".join)
        per_rule = (thresholds["key"] + " " + thresholds["description"]).groupby(
            thresholds["rule_id"]).agg(" ".join)
        hay = hay + " " + catalogue["rule_id"].map(per_rule).fillna("")
        keep &= hay.str.lower().str.contains(needle, regex=False)
    if evidence:
        tags = set(evidence)
        by_threshold = set(thresholds.loc[thresholds["evidence"].isin(tags), "rule_id"])
        keep &= catalogue["evidence"].isin(tags) | catalogue["rule_id"].isin(by_threshold)
    if provisional_only:
        keep &= catalogue["provisional"]
    return catalogue[keep]

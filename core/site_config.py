"""The site's configuration file (TOML): the rules' threshold overrides and schedules, and
the sections other parts read (SECTIONS). Read here, outside the rules, which take only the
overrides (core.rules.engine.thresholds_for).

Format (the file named by Settings.site_config / CARTWATCH_SITE_CONFIG)::

    [thresholds.iec_hs]
    ferritin_x_uln = 3.0          # a key of the rule's Threshold rows, canonical unit

    [thresholds.crs_grade]
    fever_c = 38.0

    [lab_overdue]                 # optional monitoring schedule, read by the lab_overdue rule
    last_day = 21                 # (merged into the rule's thresholds: see
    daily = ["anc", "platelets"]  #  schedule_overrides below)

An unknown rule id, an unknown threshold key or a non-numeric value is an error that names
the file, the rule and the key, with the keys that would have been accepted: a typo must never
silently leave a default in force.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.rules.base import RuleSpec
from core.rules.lab_overdue import THRESHOLDS as OVERDUE_THRESHOLDS
from core.vocabulary.units import ANALYTES

SECTIONS = ("thresholds", "lab_overdue", "notify", "oidc", "fhir", "hl7")
# notify: core.monitoring.notify.config; oidc: core.access.identity; fhir: core.capture.fhirsync;
# hl7: core.capture.hl7


class SiteConfigError(ValueError):
    """The site configuration file cannot be used as written."""


@dataclass(frozen=True)
class SiteConfig:
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    lab_overdue: dict[str, Any] = field(default_factory=dict)
    source: str = "<defaults>"

    @property
    def overrides(self) -> dict[str, dict[str, float]]:
        """rule_id -> {threshold key: value} the engine runs with: the [thresholds.<rule>]
        tables, plus the [lab_overdue] schedule as the lab_overdue rule's thresholds (an
        explicit [thresholds.lab_overdue] key wins)."""
        out = {rule: dict(values) for rule, values in self.thresholds.items()}
        if self.lab_overdue:
            out["lab_overdue"] = {**schedule_overrides(self.lab_overdue),
                                  **out.get("lab_overdue", {})}
        return out


def schedule_overrides(table: Mapping[str, Any]) -> dict[str, float]:
    """Threshold overrides for the lab_overdue rule from the site's `[lab_overdue]` table.

    Accepts `first_day`, `last_day`, `lookback_days`, `every_<analyte>_days`, and two
    shorthands: `daily = ["anc", "crp", ...]` (exactly these daily, the others not expected)
    and `every = {ferritin = 2}`. Raises ValueError naming an unknown key or analyte.
    """
    out: dict[str, float] = {}
    known = {t.key for t in OVERDUE_THRESHOLDS}

    def analyte(code: object) -> str:
        if str(code) not in ANALYTES:
            raise ValueError(f"[lab_overdue] names unknown analyte {code!r}; "
                             f"known: {', '.join(ANALYTES)}")
        return str(code)

    for key, value in table.items():
        if key == "daily":
            chosen = {analyte(a) for a in value}
            out.update({f"every_{a}_days": float(a in chosen) for a in ANALYTES})
        elif key == "every":
            out.update({f"every_{analyte(a)}_days": float(n) for a, n in value.items()})
        elif key in known:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"[lab_overdue] {key} must be a number, not {value!r}")
            out[key] = float(value)
        else:
            raise ValueError(f"[lab_overdue] has unknown key {key!r}; accepted: daily, every, "
                             f"{', '.join(sorted(known))}")
    return out


def _specs(specs: Sequence[RuleSpec] | None) -> Sequence[RuleSpec]:
    if specs is None:
        from core.rules.catalog import all_specs

        return all_specs()
    return specs


def parse_site_config(text: str, specs: Sequence[RuleSpec] | None = None,
                      source: str = "<string>") -> SiteConfig:
    """Parse and validate site configuration TOML text against the rule catalogue."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SiteConfigError(f"{source}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise SiteConfigError(f"{source}: unknown section(s) {unknown}; "
                              f"expected [thresholds.<rule_id>] or [lab_overdue]")
    by_id = {s.rule.id: s.rule for s in _specs(specs)}
    raw = data.get("thresholds", {})
    if not isinstance(raw, dict):
        raise SiteConfigError(f"{source}: 'thresholds' must be a table of [thresholds.<rule>]")
    out: dict[str, dict[str, float]] = {}
    for rule_id, values in raw.items():
        rule = by_id.get(rule_id)
        if rule is None:
            raise SiteConfigError(f"{source}: [thresholds.{rule_id}] names an unknown rule; "
                                  f"known rules: {', '.join(sorted(by_id))}")
        if not isinstance(values, dict):
            raise SiteConfigError(f"{source}: [thresholds.{rule_id}] must be a table")
        keys = {t.key: t for t in rule.thresholds}
        for key, value in values.items():
            if key not in keys:
                raise SiteConfigError(
                    f"{source}: [thresholds.{rule_id}] has unknown key {key!r}; "
                    f"{rule_id} accepts: {', '.join(sorted(keys)) or '(no thresholds)'}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise SiteConfigError(
                    f"{source}: [thresholds.{rule_id}] {key} must be a number in "
                    f"{keys[key].unit}, not {value!r}")
        out[rule_id] = {k: float(v) for k, v in values.items()}
    lab = data.get("lab_overdue", {})
    if not isinstance(lab, dict):
        raise SiteConfigError(f"{source}: [lab_overdue] must be a table")
    if lab:
        try:
            schedule_overrides(lab)
        except ValueError as exc:
            raise SiteConfigError(f"{source}: {exc}") from None
    return SiteConfig(thresholds=out, lab_overdue=dict(lab), source=source)


def load_site_config(path: Path | str | None,
                     specs: Sequence[RuleSpec] | None = None) -> SiteConfig:
    """The site configuration in `path` (no path: the defaults in code)."""
    if path is None:
        return SiteConfig()
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise SiteConfigError(f"cannot read site configuration {p}: {exc.strerror}") from None
    return parse_site_config(text, specs, source=str(p))


def load_overrides(path: Path | str | None,
                   specs: Sequence[RuleSpec] | None = None) -> dict[str, dict[str, float]]:
    """rule_id -> {threshold key: value} overrides from the file in `path` (the
    [lab_overdue] schedule included, see SiteConfig.overrides)."""
    return load_site_config(path, specs).overrides


def site_overrides(settings: Settings,
                   specs: Sequence[RuleSpec] | None = None) -> dict[str, dict[str, float]]:
    """The overrides configured for this deployment (Settings.site_config)."""
    return load_overrides(settings.site_config, specs)

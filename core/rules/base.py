"""The shapes every rule shares: declaration as data, thresholds, and findings.

A rule module declares `RULE = Rule(...)` (or several) and, in its RuleSpec, how it is judged:
`judge(ward, t)` over every course-day of a ward at once (core.rules.frames.Ward) and
`explain(ward, row, t)`, the finding of one day. The engine (core/rules/engine.py) is the only
code that runs them; pages and the CLI read `Rule` rows to show what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.vocabulary.units import Evidence

if TYPE_CHECKING:
    from core.rules.frames import Ward


class Status(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    NOT_EVALUABLE = "not_evaluable"


def status_where(met: np.ndarray, not_met: np.ndarray) -> np.ndarray:
    """Per row: met where `met`, else not met where `not_met`, else not evaluable."""
    return np.where(met, Status.MET.value, np.where(not_met, Status.NOT_MET.value,
                                                    Status.NOT_EVALUABLE.value))


def graded_status(grade: np.ndarray) -> np.ndarray:
    """The status of each graded day: met from grade 1, not met at 0, not evaluable without
    a grade (NaN)."""
    return status_where(grade >= 1, ~np.isnan(grade))


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    SEVERE = "severe"


# How the ward weighs a syndrome rule [DESIGN]; the huddle lists every syndrome's alerts and
# changes before lab grades, as they are what the team discusses. "graded": its grade is a
# column of the ward list and weighs the concern score; "met": being met (an open alert)
# weighs the concern score; "listed": listed first in the huddle only.
Syndrome = Literal["graded", "met", "listed"]


@dataclass(frozen=True)
class Citation:
    source: str  # short reference, e.g. "Lee et al., Biol Blood Marrow Transplant 2019"
    section: str  # the section or table of the source, and of criteria.md
    doi: str | None = None


@dataclass(frozen=True)
class Threshold:
    """One number a rule compares against, in a canonical unit, with its evidence tag."""

    key: str
    value: float
    # canonical unit from core/vocabulary/units.py, or "x ULN", "days", "points", "fold", ...
    unit: str
    evidence: Evidence
    description: str
    op: str = ""  # ">", ">=", "<", "<=" where a comparison direction applies
    # An operational setting (e.g. when a rule stops prompting for missing inputs): it never
    # changes a grade, score or status of met, so it does not weaken the rule's evidence.
    operational: bool = False

    @property
    def is_provisional(self) -> bool:
        return self.evidence.is_provisional


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    version: str
    citation: Citation
    evidence: Evidence  # the weakest tag among the numbers it relies on
    severity: Severity
    thresholds: tuple[Threshold, ...]
    inputs: tuple[str, ...]  # analytes and observation kinds it reads
    graded: bool = False
    scored: bool = False
    choices: tuple[str, ...] = ()  # open choices criteria.md left to us, and what we chose
    description: str = ""
    # A met finding of this grade or more raises a severe alert (graded rules); None = the
    # alert keeps `severity` whatever the grade [DESIGN alarm policy, see
    # core/monitoring/alerts.py].
    escalates_at_grade: int | None = None
    # The rule's name on one line of a wall display (ward, huddle, inbox), e.g. "CTCAE ANC".
    short_name: str = ""
    # A syndrome the ward huddle lists before lab grades (see Syndrome); None = not one.
    syndrome: Syndrome | None = None
    # Findings inform the patient page but never raise an alert [DESIGN]
    # (core/monitoring/alerts.py).
    informational: bool = False
    # The episode kind (core.store.models.EpisodeKind value, e.g. "CRS") its met stretches suggest
    # on the timeline (core/views/suggested_episodes.py); None = it suggests no episodes.
    episode_kind: str | None = None

    @property
    def is_provisional(self) -> bool:
        return self.evidence.is_provisional or any(
            t.is_provisional for t in self.thresholds if not t.operational)


class Thresholds(Mapping[str, float]):
    """A rule's thresholds in force: code defaults, with site overrides applied."""

    def __init__(self, rule: Rule, overrides: Mapping[str, float] | None = None) -> None:
        self._values = {t.key: t.value for t in rule.thresholds}
        unknown = set(overrides or {}) - set(self._values)
        if unknown:
            raise KeyError(f"{rule.id}: unknown threshold(s) {sorted(unknown)}")
        self._values.update(overrides or {})
        self.overridden = frozenset(overrides or {})

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(slots=True)  # slots: a replay makes tens of thousands
class EvidenceItem:
    """A value that decided a rule, in canonical and original units."""

    why: str
    analyte: str | None = None  # analyte or observation kind
    day: float | None = None
    value: float | str | None = None
    unit: str | None = None
    original_value: str | None = None
    original_unit: str | None = None
    verified: bool | None = None
    lab: int | None = None  # the lab row (ward position) whose fields are still to `record`

    def record(self, qualifier: Any, original_value: Any, original_unit: Any,
               verified: Any) -> None:
        """The lab row's recorded fields: its qualifier before the value ("<0.1"), the value
        and unit as received, and whether it was verified."""
        if qualifier:
            self.value = f"{qualifier}{self.value:g}"
        self.original_value = None if original_value is None else str(original_value)
        self.original_unit = None if original_unit is None else str(original_unit)
        self.verified, self.lab = None if verified is None else bool(verified), None

    def to_json(self) -> dict[str, Any]:
        # the fields are flat scalars: no need for asdict's recursive deep copy
        return {k: v for k in _EVIDENCE_FIELDS if (v := getattr(self, k)) is not None}


_EVIDENCE_FIELDS = tuple(f.name for f in fields(EvidenceItem) if f.name != "lab")


@dataclass
class Finding:
    """The result of one rule for one patient as of one day (design.md JSON contract)."""

    rule: str
    status: Status
    since_day: float | None = None
    grade: int | None = None
    score: float | None = None
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # probability, breakdown, risk group...
    episode_key: str | None = None  # distinguishes separate alert episodes of one rule

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rule": self.rule,
            "status": str(self.status),
            "since_day": self.since_day,
            "grade": self.grade,
            "score": self.score,
            "evidence": [e.to_json() for e in self.evidence],
            "missing": list(self.missing),
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Inputs:
    """What a rule reads of other rules: the rows of those it `reads`, judged over the same
    ward (aligned with its own, since_day included), and the thresholds in force of those
    and of its `thresholds_of`."""

    frames: Mapping[str, Mapping[str, Any]]  # rule id -> its columns (arrays, by name)
    thresholds: Mapping[str, Thresholds]


# A rule judged by columns: its columns (frames.Columns) with one value per grid row of the
# ward (Ward.days, same order): `status` (a Status value) and any its `explain` reads; a
# `since_day` column replaces the engine's met stretch (core.rules.engine.met_since), an
# `episode_key` column the key a met row's alert episode gets from its since_day.
Judge = Callable[["Ward", Thresholds], Mapping[str, Any]]
# A rule that reads other rules (IEC-HS reads the CRS course, CTCAE grades, ...)
JudgeWith = Callable[["Ward", Thresholds, Inputs], Mapping[str, Any]]
# The finding of one judged row: the row is the grid row's columns (key, day, end, until,
# first, last), the judge's, and `since_day`. The engine sets the finding's rule id, since_day and
# episode_key.
Explain = Callable[["Ward", Mapping[str, Any], Thresholds], Finding]


@dataclass(frozen=True)
class RuleSpec:
    """A rule's declaration and how the engine judges it: `judge` over a whole ward (one row
    per course-day), `explain` for the rows shown or alerted, and the rules it reads."""

    rule: Rule
    judge: Judge | JudgeWith  # a JudgeWith when `reads` or `thresholds_of` names rules
    explain: Explain
    reads: tuple[str, ...] = ()  # ids of the rules whose rows `judge` reads (Inputs)
    thresholds_of: tuple[str, ...] = ()  # ids of the rules whose thresholds alone it reads
    # each row judged from its instant alone, with its own since_day: evaluate judges it on
    # the closing rows only (Ward.closing)
    by_instant: bool = False

"""The shapes every rule shares: declaration as data, thresholds, and findings.

A rule module declares `RULE = Rule(...)` (or several) and a pure function
`evaluate(course: Course, t: Thresholds) -> Finding`. The engine (core/rules/engine.py) is
the only code that runs them; pages and the CLI read `Rule` rows to show what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from core.vocabulary.course import Course
from core.vocabulary.units import Evidence

if TYPE_CHECKING:
    from core.rules.frames import Ward


class Status(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    NOT_EVALUABLE = "not_evaluable"


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
    # on the timeline (core/rules/episodes.py); None = it suggests no episodes.
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

    def to_json(self) -> dict[str, Any]:
        # the fields are flat scalars: no need for asdict's recursive deep copy
        return {k: v for k in _EVIDENCE_FIELDS if (v := getattr(self, k)) is not None}


_EVIDENCE_FIELDS = tuple(f.name for f in fields(EvidenceItem))


# A finding's evidence, or a function that makes it (see Finding)
EvidenceSource = list[EvidenceItem] | Callable[[], list[EvidenceItem]]


@dataclass(init=False)
class Finding:
    """The result of one rule for one patient as of one day (design.md JSON contract).

    `evidence` may be given as a function that makes the list: it runs the first time the
    evidence is read, once. A backtest reads only status, since_day and episode_key of the
    tens of thousands of findings a replay makes, so their evidence (values, units and text)
    is never built there; everything else reads `evidence` as a plain list.

    Findings are read-only: a rule may hand out one finding, cached, for several days and
    evaluations (e.g. a CTCAE grade until the next result, core.rules.stretches.dated for a day
    with no met stretch to carry), so whoever needs a changed finding makes one with `copy`.
    """

    rule: str
    status: Status
    since_day: float | None = None
    grade: int | None = None
    score: float | None = None
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # probability, breakdown, risk group...
    episode_key: str | None = None  # distinguishes separate alert episodes of one rule

    def __init__(self, rule: str, status: Status, since_day: float | None = None,
                 grade: int | None = None, score: float | None = None,
                 evidence: EvidenceSource | None = None, missing: list[str] | None = None,
                 extra: dict[str, Any] | None = None, episode_key: str | None = None) -> None:
        # by hand: the generated __init__ stores evidence through the property (a call per
        # finding, and a replay makes hundreds of thousands)
        self.rule, self.status, self.since_day, self.grade, self.score = (
            rule, status, since_day, grade, score)
        self._evidence = [] if evidence is None else evidence
        self.missing = [] if missing is None else missing
        self.extra = {} if extra is None else extra
        self.episode_key = episode_key

    def copy(self, **changes: Any) -> Finding:
        """A distinct finding equal to this one but for `changes` (e.g. since_day), sharing
        its evidence, missing and extra (findings are read-only; evidence given as a
        function is made once, for both)."""
        f = object.__new__(Finding)  # the fields as they are, without __init__'s work
        f.__dict__.update(self.__dict__)
        f.__dict__["_evidence"] = shared_evidence(self)
        for name, value in changes.items():
            setattr(f, name, value)
        return f

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


def _evidence_of(self: Finding) -> list[EvidenceItem]:
    ev = self.__dict__["_evidence"]
    if not isinstance(ev, list):
        ev = self.__dict__["_evidence"] = ev()
    return ev


def _set_evidence(self: Finding, ev: EvidenceSource) -> None:
    self.__dict__["_evidence"] = ev


# the dataclass field `evidence` stores through this property, so __init__, ==, repr and
# to_json see the list whichever way it was given
Finding.evidence = property(_evidence_of, _set_evidence)  # type: ignore[assignment]


def shared_evidence(f: Finding | Any) -> EvidenceSource:
    """f's evidence (a Finding's, or that of any result with `.evidence`) for another finding:
    the same list, read-only as findings are, or while f's is not made yet a function that
    makes it (once, for both)."""
    ev = getattr(f, "__dict__", {}).get("_evidence")
    if isinstance(ev, list):
        return ev
    if ev is None:  # not a Finding
        return f.evidence
    return lambda: f.evidence


Evaluator = Callable[[Course, Thresholds], Finding]
# Findings as of the end of each of `days` (ascending ward days), computed in one pass over
# the full course. Must equal `evaluate` on the course cut at the end of each day (the engine
# test `test_replay_hooks_equal_evaluating_each_day` holds every hook to that).
Replayer = Callable[[Course, Thresholds, Sequence[int]], list[Finding]]
# A rule judged by columns: one row per grid row of the ward (Ward.days, same order and
# length) with the column `status` (a Status value) and any the rule's `explain` reads; a
# `since_day` column replaces the engine's met stretch (core.rules.frames.met_since), an
# `episode_key` column the key a met row's alert episode gets from its since_day.
Judge = Callable[["Ward", Thresholds], pd.DataFrame]


@dataclass(frozen=True)
class Inputs:
    """What a rule reads of the rules it depends on (RuleSpec.reads), judged over the same
    ward: their rows (aligned with its own, since_day included) and thresholds in force."""

    frames: Mapping[str, pd.DataFrame]
    thresholds: Mapping[str, Thresholds]


# A rule that reads other rules (IEC-HS reads the CRS course, CTCAE grades, ...)
JudgeWith = Callable[["Ward", Thresholds, Inputs], pd.DataFrame]
# The finding of one judged row: the row is the grid row's columns (key, day, end, first),
# the judge's, and `since_day`. The engine sets the finding's rule id, since_day and
# episode_key.
Explain = Callable[["Ward", Mapping[str, Any], Thresholds], Finding]


@dataclass(frozen=True)
class RuleSpec:
    """A rule's declaration and how it is evaluated: by columns over a whole ward (`judge`
    and `explain`), or, for rules not yet judged that way, course by course (`evaluate`,
    optionally with a one-pass `replay`)."""

    rule: Rule
    evaluate: Evaluator | None = None
    replay: Replayer | None = None
    judge: Judge | JudgeWith | None = None  # a JudgeWith when `reads` names rules
    explain: Explain | None = None
    reads: tuple[str, ...] = ()  # ids of the rules whose rows `judge` reads (Inputs)

"""The rules engine: judges every rule over a ward's courses, as of now or as of every day.

The engine is the only code that runs rules. Each rule is judged once per ward, by columns
(RuleSpec.judge over core.rules.frames.Ward: one row per course-day), then:
- the met stretch (since_day) of every row, unless the rule gives its own;
- evaluate: the finding of each course's last row (the day it is evaluated on), on which
  alone a rule judged by instant (RuleSpec.by_instant) is judged;
- replay: the findings of every day (backtesting, suggested episodes), or only their
  statuses (`replay_statuses`), without making findings;
- a rule that reads others (RuleSpec.reads) gets their rows, each judged once;
- one rule raising never stops the others: on the courses it fails for, its findings come
  back not evaluable, naming the error (the ward is re-judged course by course to find them).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
import pandas as pd

from core.rules.base import (
    Finding,
    Inputs,
    Judge,
    JudgeWith,
    RuleSpec,
    Status,
    Thresholds,
)
from core.rules.catalog import all_specs, spec_by_id
from core.rules.frames import Columns, Ward, episode_key
from core.vocabulary.course import Course

log = logging.getLogger(__name__)

Overrides = Mapping[str, Mapping[str, float]]
STATUS_COLUMNS = ["key", "day", "rule", "status", "since_day", "episode_key"]

__all__ = ["STATUS_COLUMNS", "evaluate_course", "evaluate_courses", "evaluate_ward",
           "judge_rules", "met_since", "replay_course", "replay_courses",
           "replay_statuses", "thresholds_for", "ward_statuses"]


def thresholds_for(specs: Sequence[RuleSpec],
                   overrides: Overrides | None = None) -> dict[str, Thresholds]:
    """Each rule's thresholds in force (defaults with site overrides): the rules of `specs`
    and of the catalogue, run or not (a rule reads others', e.g. iec_hs the CTCAE rules')."""
    overrides = overrides or {}
    rules = {s.rule.id: s.rule for s in (*all_specs(), *specs)}
    unknown = sorted(set(overrides) - set(rules))
    if unknown:
        raise KeyError(f"site overrides name unknown rule(s): {unknown}")
    return {r: Thresholds(rule, overrides.get(r)) for r, rule in rules.items()}


def met_since(days: Mapping[str, Any], status: np.ndarray) -> np.ndarray:
    """Per grid row: the first day of the met stretch the row belongs to (NaN unless met).

    A not-evaluable day neither starts nor breaks a stretch (a day without the input is not
    evidence that the condition cleared); a not-met day ends it. A stretch starts no earlier
    than the course's first data day.
    """
    met, not_met = status == "met", status == "not_met"
    key, day, first = (np.asarray(days[c]) for c in ("key", "day", "first"))
    fresh = np.concatenate(([True], (key[1:] != key[:-1]) | not_met[:-1])) | ~(day >= first)
    n = len(met)
    # a stretch is the rows from a fresh row to the next; its run starts at its first met row
    start = np.minimum.reduceat(np.where(met, np.arange(n), n), np.flatnonzero(fresh))
    run = start[np.cumsum(fresh) - 1]
    return np.where(met, day[np.minimum(run, n - 1)], np.nan).astype(float)


def _error(rule_id: str, exc: Exception) -> Finding:
    """The finding of a rule that raised: not evaluable, naming the error and where."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return Finding(
        rule=rule_id, status=Status.NOT_EVALUABLE,
        missing=[f"rule error: {type(exc).__name__}: {exc}"],
        extra={"error": f"{type(exc).__name__}: {exc} "
                        f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"},
    )


def _columns(judged: Mapping[str, Any], rows: int) -> Columns:
    """A judge's columns as arrays of `rows` values (a scalar repeated on every row)."""
    out = {}
    for name, value in judged.items():
        if isinstance(value, list | tuple):  # of anything, tuples included: one per row
            column = np.fromiter(value, dtype=object, count=len(value))
        else:
            column = np.asarray(value)
        if not column.ndim:
            column = np.full(rows, value, dtype=object if column.dtype.kind == "U"
                             else column.dtype)
        out[str(name)] = column
    return out


class _Judged:
    """One rule's rows over a ward's grid: the judge's columns with since_day, and the
    error of each course the rule failed on."""

    def __init__(self, spec: RuleSpec, ward: Ward, t: Thresholds,
                 inputs: Inputs | None = None) -> None:
        self.spec, self.ward, self.t, self.inputs = spec, ward, t, inputs
        self.errors: dict[int, Exception] = {}
        cols = self._judge(ward)
        if cols is None:  # one course at a time, to isolate the ones it fails on
            parts: list[Columns] = []
            for key in range(len(ward)):
                one = ward.only(key)
                part = self._judge(one, key)
                parts.append(part if part is not None else {"status": np.full(
                    one.size, Status.NOT_EVALUABLE.value, dtype=object)})
            names = list(dict.fromkeys(c for p in parts for c in p))  # a failed course's
            cols = {c: np.concatenate([p[c] if c in p else np.full(  # rows have only status
                len(p["status"]), None, dtype=object) for p in parts]) for c in names}
        self.own_since = "since_day" in cols
        if not self.own_since:
            cols["since_day"] = met_since(ward.days, cols["status"].astype(object))
        self.cols = cols


    def _judge(self, ward: Ward, key: int | None = None) -> Columns | None:
        judge = self.spec.judge
        try:
            if self.inputs is None:
                judged = cast(Judge, judge)(ward, self.t)
            else:
                inputs = self.inputs if key is None else _at(
                    self.inputs, np.flatnonzero(self.ward.days["key"] == key))
                judged = cast(JudgeWith, judge)(ward, self.t, inputs)
            cols = _columns(judged, ward.size)
            wrong = {c: len(v) for c, v in cols.items() if len(v) != ward.size}
            if wrong or "status" not in cols:
                raise ValueError(f"judged columns {wrong or 'without status'} for "
                                 f"{ward.size} course-days")
        except Exception as exc:  # one rule must never take the others down
            if key is None and len(ward) > 1:
                log.warning("rule %s failed over %d courses; judging them one by one: %s",
                            self.spec.rule.id, len(ward), exc)
                return None
            log.exception("rule %s failed for %s", self.spec.rule.id,
                          ward.patients[0].patient_id if len(ward) else "no course")
            self.errors[0 if key is None else key] = exc
            return None
        return cols

    def findings(self, rows: np.ndarray, *, met_only: bool = False) -> list[Finding]:
        """The findings of the grid rows `rows` (positions), evidence included; with
        `met_only`, a row not met (and not failed) is only its status."""
        grid = self.ward.days
        names = [*grid, *self.cols]
        values = [v[rows].tolist() for v in (*grid.values(), *self.cols.values())]
        judged = (dict(zip(names, row, strict=True)) for row in zip(*values, strict=True))
        return [self._finding(row) if not met_only or row["status"] == Status.MET.value
                or row["key"] in self.errors else Finding(self.spec.rule.id, Status(row["status"]))
                for row in judged]

    def _finding(self, row: dict[str, Any]) -> Finding:
        rule_id = self.spec.rule.id
        failed = self.errors.get(row["key"])
        if failed is not None:
            return _error(rule_id, failed)
        since = row["since_day"]
        since = None if since is None or since != since else (
            since if self.own_since else int(since))
        row["since_day"] = since
        try:
            f = self.spec.explain(self.ward, row, self.t)
        except Exception as exc:  # one rule must never take the others down
            log.exception("rule %s could not explain day %s", rule_id, row["day"])
            return _error(rule_id, exc)
        f.rule = rule_id
        if f.status is Status.MET:
            f.since_day = since
            f.episode_key = row.get("episode_key") or f.episode_key or episode_key(since)
        elif not self.own_since:  # a rule with its own since_day owns its other findings'
            f.since_day = f.episode_key = None
        return f


def _at(inputs: Inputs, rows: np.ndarray) -> Inputs:
    """The inputs of these grid rows alone."""
    return Inputs({r: {c: np.asarray(v)[rows] for c, v in cols.items()}
                   for r, cols in inputs.frames.items()}, inputs.thresholds)


def judge_rules(ward: Ward, specs: Sequence[RuleSpec], ts: Mapping[str, Thresholds],
                closing: bool = False) -> dict[str, _Judged]:
    """The rules of `specs` judged over the ward, each once, with the rules whose rows they
    read (RuleSpec.reads; those too once, whether run or not); with `closing`, those of
    `specs` judged by instant (RuleSpec.by_instant) over its closing rows alone."""
    done: dict[tuple[str, bool], _Judged] = {}
    last = ward.closing() if closing else ward
    run = {s.rule.id: s for s in specs}

    def spec_of(rule_id: str) -> RuleSpec:
        return run[rule_id] if rule_id in run else spec_by_id(rule_id)

    def check(spec: RuleSpec, path: tuple[str, ...]) -> None:
        rid = spec.rule.id
        if rid in path:
            raise ValueError(f"rules read each other in a circle: {' -> '.join(path + (rid,))}")
        for r in spec.reads:
            check(spec_of(r), (*path, rid))

    def judged(spec: RuleSpec, whole: bool = True) -> _Judged:
        rid = spec.rule.id
        if (rid, whole) not in done:
            inputs = None
            if spec.reads or spec.thresholds_of:
                inputs = Inputs({r: judged(spec_of(r)).cols for r in spec.reads},
                                {r: ts[r] for r in (*spec.reads, *spec.thresholds_of)})
                if not whole:
                    inputs = _at(inputs, ward.closing_rows())
            done[rid, whole] = _Judged(spec, ward if whole else last, ts[rid], inputs)
        return done[rid, whole]

    for s in specs:
        check(s, ())
    return {s.rule.id: judged(s, not (closing and s.by_instant)) for s in specs}


def _prepare(specs: Sequence[RuleSpec] | None,
             overrides: Overrides | None) -> tuple[Sequence[RuleSpec], dict[str, Thresholds]]:
    specs = all_specs() if specs is None else specs
    return specs, thresholds_for(specs, overrides)


# --- evaluate: each course as of its as-of instant --------------------------------------


def evaluate_ward(ward: Ward, specs: Sequence[RuleSpec] | None = None,
                  overrides: Overrides | None = None, *,
                  met_only: bool = False) -> list[list[Finding]]:
    """Every rule's finding for each course of the ward (made `evaluating`) as of its as-of
    day, in `specs` order. `met_only`: only met findings are explained (evidence, grade,
    prompts); the others are their rule and status, all an alert sync reads of them."""
    specs, ts = _prepare(specs, overrides)
    if not len(ward):
        return []
    judged = judge_rules(ward, specs, ts, closing=True)
    found = [(j := judged[s.rule.id]).findings(j.ward.closing_rows(), met_only=met_only)
             for s in specs]
    return [[column[i] for column in found] for i in range(len(ward))]


def evaluate_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                     overrides: Overrides | None = None) -> list[list[Finding]]:
    """Every rule's finding for each course as of its `as_of_day`, in `specs` order."""
    return evaluate_ward(Ward.of(list(courses), evaluating=True), specs, overrides)


def evaluate_course(course: Course, specs: Sequence[RuleSpec] | None = None,
                    overrides: Overrides | None = None) -> list[Finding]:
    """Every rule's finding for the course as of its `as_of_day`."""
    return evaluate_courses([course], specs, overrides)[0]


# --- replay: as of the end of every day ---------------------------------------------------


def replay_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                   overrides: Overrides | None = None
                   ) -> Iterator[tuple[Course, list[tuple[int, list[Finding]]]]]:
    """(course, [(day, findings as of the end of that day), ...]) for each course, its
    days from day 0 (or its first data day, if later) to its last data day (or as-of day, if
    earlier); the rules judged over all the courses at once."""
    specs, ts = _prepare(specs, overrides)
    courses = list(courses)
    if not courses:
        return
    ward = Ward.of(courses, evaluating=False)
    judged = judge_rules(ward, specs, ts)
    replayed = ward.replay_rows()
    bounds = np.searchsorted(ward.days["key"][replayed], np.arange(len(courses) + 1))
    for key, course in enumerate(courses):
        rows = replayed[bounds[key]:bounds[key + 1]]
        found = [judged[s.rule.id].findings(rows) for s in specs]
        days = ward.days["day"][rows].tolist()
        yield course, [(day, [column[k] for column in found]) for k, day in enumerate(days)]


def replay_course(course: Course, specs: Sequence[RuleSpec] | None = None,
                  overrides: Overrides | None = None) -> list[tuple[int, list[Finding]]]:
    """Findings as of the end of every day of the course, oldest first (replay_courses)."""
    return next(replay_courses([course], specs, overrides))[1]


def replay_statuses(courses: Sequence[Course], specs: Sequence[RuleSpec] | None = None,
                    overrides: Overrides | None = None) -> pd.DataFrame:
    """`ward_statuses` of the courses."""
    return ward_statuses(Ward.of(list(courses), evaluating=False), specs, overrides)


def ward_statuses(ward: Ward, specs: Sequence[RuleSpec] | None = None,
                  overrides: Overrides | None = None) -> pd.DataFrame:
    """Every rule's status on every replay day of the ward's courses (made not
    `evaluating`), without making findings (for backtesting): STATUS_COLUMNS, `key` the
    course's position; since_day is NaN and episode_key None unless met (then the judged
    key, else None: its since_day's). Rows are in course, day and rule order."""
    specs, ts = _prepare(specs, overrides)
    if not len(ward) or not specs:
        return pd.DataFrame({c: [] for c in STATUS_COLUMNS})
    judged = judge_rules(ward, specs, ts)
    rows = ward.replay_rows()
    n, k = len(rows), len(specs)
    status = np.empty((n, k), dtype=object)
    since = np.full((n, k), np.nan)
    keys = np.full((n, k), None, dtype=object)
    for j, s in enumerate(specs):
        cols = judged[s.rule.id].cols
        status[:, j] = cols["status"][rows]
        met = status[:, j] == Status.MET.value
        day = pd.to_numeric(pd.Series(cols["since_day"][rows]), errors="coerce").to_numpy()
        since[:, j] = np.where(met, day, np.nan)
        if "episode_key" in cols:
            keys[:, j] = np.where(met, cols["episode_key"][rows], None)
    return pd.DataFrame({  # rows x rules, flattened row by row: course, day, rule order
        "key": np.repeat(ward.days["key"][rows], k),
        "day": np.repeat(ward.days["day"][rows], k),
        "rule": np.tile(np.array([s.rule.id for s in specs], dtype=object), n),
        "status": status.ravel(), "since_day": since.ravel(), "episode_key": keys.ravel()})

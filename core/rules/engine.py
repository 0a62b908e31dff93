"""The rules engine: runs every RuleSpec over a Course, as of now or as of every day.

The engine is the only code that interprets rule rows. One rule raising never stops the
others: its finding comes back not evaluable, naming the error.

Replay evaluates as of the end of every ward day. It does not re-filter the frames per day:
it builds the course's column index once (core.rules.reading.CourseIndex) and hands each day a
`DayView` (core.rules.stretches), a Course whose frames are cut lazily at the as-of instant,
sharing that index. Rules that read through core.rules.reading never touch pandas in the loop;
rules that read the frames directly still see exactly the rows known that day.
"""

from __future__ import annotations

import gc
import logging
import math
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from core.rules.frames import Ward, met_since
from core.rules.reading import END_OF_DAY, course_index
from core.rules.stretches import day_view, episode_key
from core.vocabulary.course import Course

log = logging.getLogger(__name__)

Overrides = Mapping[str, Mapping[str, float]]


class FastThresholds(dict):
    """A rule's thresholds in force as a plain dict (C-speed lookups in the replay loop).

    Built from a validated `Thresholds` and registered as one, so evaluators see the same
    mapping interface (and `overridden`).
    """

    def __init__(self, t: Thresholds) -> None:
        super().__init__(t.items())
        self.overridden = t.overridden


Thresholds.register(FastThresholds)


def _fast(t: Thresholds) -> Thresholds:
    """`t` as a FastThresholds, typed as the Thresholds it is registered as (type checkers
    do not follow ABCMeta.register)."""
    return cast(Thresholds, FastThresholds(t))


def thresholds_for(specs: Sequence[RuleSpec],
                   overrides: Overrides | None = None) -> dict[str, Thresholds]:
    """Each rule's thresholds in force (defaults with site overrides).

    Overrides may also name catalogue rules that are not being run (a rule that reuses
    another's logic, e.g. iec_hs reading the CRS course, then sees the site's values).
    """
    overrides = overrides or {}
    ts = {s.rule.id: _fast(Thresholds(s.rule, overrides.get(s.rule.id))) for s in specs}
    rest = set(overrides) - set(ts)
    if rest:
        from core.rules.catalog import all_specs

        known = {s.rule.id: s.rule for s in all_specs()}
        unknown = sorted(rest - set(known))
        if unknown:
            raise KeyError(f"site overrides name unknown rule(s): {unknown}")
        ts.update({r: _fast(Thresholds(known[r], overrides[r])) for r in rest})
    return ts


def _error(rule_id: str, exc: Exception) -> Finding:
    """The finding of a rule that raised: not evaluable, naming the error and where."""
    where = traceback.extract_tb(exc.__traceback__)[-1]
    return Finding(
        rule=rule_id, status=Status.NOT_EVALUABLE,
        missing=[f"rule error: {type(exc).__name__}: {exc}"],
        extra={"error": f"{type(exc).__name__}: {exc} "
                        f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"},
    )


def _run(spec: RuleSpec, course: Course, t: Thresholds) -> Finding:
    assert spec.evaluate is not None  # a rule judged by columns runs through _judged
    try:
        finding = spec.evaluate(course, t)
        finding.evidence  # noqa: B018 - a lazy evidence list is made here, its errors reported
    except Exception as exc:  # one rule must never take the others down
        return _error(spec.rule.id, exc)
    if finding.rule != spec.rule.id:
        finding.rule = spec.rule.id
    return finding


# --- rules judged by columns over a whole ward --------------------------------------------


Columns = dict[str, np.ndarray]


def _columns(judged: Mapping[str, Any]) -> Columns:
    """A judge's result (a frame, or any mapping of column name to array) as arrays."""
    return {str(c): np.asarray(judged[c]) for c in judged}


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
                    len(one.days), Status.NOT_EVALUABLE.value, dtype=object)})
            names = list(dict.fromkeys(c for p in parts for c in p))  # a failed course's
            cols = {c: np.concatenate([p[c] if c in p else np.full(  # rows have only status
                len(p["status"]), None, dtype=object) for p in parts]) for c in names}
        self.own_since = "since_day" in cols
        if not self.own_since:
            cols["since_day"] = met_since(ward.days, cols["status"].astype(object))
        self.cols = cols

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a frame (for the rules that read this one)."""
        return pd.DataFrame(self.cols, copy=False)

    def _judge(self, ward: Ward, key: int | None = None) -> Columns | None:
        judge = self.spec.judge
        assert judge is not None
        try:
            if self.inputs is None:
                judged = cast(Judge, judge)(ward, self.t)
            else:
                inputs = self.inputs if key is None else Inputs(
                    {r: _rows_of(f, ward, key, self.ward) for r, f in self.inputs.frames.items()},
                    self.inputs.thresholds)
                judged = cast(JudgeWith, judge)(ward, self.t, inputs)
            cols = _columns(judged)
            wrong = {c: len(v) for c, v in cols.items() if len(v) != len(ward.days)}
            if wrong or "status" not in cols:
                raise ValueError(f"judged columns {wrong or 'without status'} for "
                                 f"{len(ward.days)} course-days")
        except Exception as exc:  # one rule must never take the others down
            if key is None and len(ward) > 1:
                log.warning("rule %s failed over %d courses; judging them one by one: %s",
                            self.spec.rule.id, len(ward), exc)
                return None
            log.exception("rule %s failed for %s", self.spec.rule.id,
                          ward.courses[0].patient.patient_id if len(ward) else "no course")
            self.errors[0 if key is None else key] = exc
            return None
        return cols

    def findings(self, rows: np.ndarray) -> list[Finding]:
        """The findings of the grid rows `rows` (positions), evidence included."""
        grid = self.ward.days
        names = [*grid.columns, *self.cols]
        values = [grid[c].to_numpy()[rows].tolist() for c in grid.columns] + [
            v[rows].tolist() for v in self.cols.values()]
        return [self._finding(dict(zip(names, row, strict=True)))
                for row in zip(*values, strict=True)]

    def _finding(self, row: dict[str, Any]) -> Finding:
        rule_id = self.spec.rule.id
        failed = self.errors.get(row["key"])
        if failed is not None:
            return _error(rule_id, failed)
        explain = self.spec.explain
        assert explain is not None
        since = row["since_day"]
        since = None if since is None or since != since else (
            since if self.own_since else int(since))
        row["since_day"] = since
        try:
            f = explain(self.ward, row, self.t)
            f.evidence  # noqa: B018 - a lazy evidence list is made here, its errors reported
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


def _rows_of(frame: pd.DataFrame, one: Ward, key: int, ward: Ward) -> pd.DataFrame:
    """The rows of course `key` of a frame judged over `ward`, for its one-course ward."""
    rows = np.flatnonzero(ward.grid_keys == key)
    assert len(rows) == len(one.days)
    return frame.iloc[rows].reset_index(drop=True)


def judge_rules(ward: Ward, specs: Sequence[RuleSpec],
                ts: Mapping[str, Thresholds]) -> dict[str, _Judged]:
    """The rules of `specs` judged by columns over the ward, each once, with the rules they
    read (RuleSpec.reads) judged before them (those too once, whether run or not)."""
    done: dict[str, _Judged] = {}
    run = {s.rule.id: s for s in specs}

    def spec_of(rule_id: str) -> RuleSpec:
        if rule_id in run:
            return run[rule_id]
        from core.rules.catalog import spec_by_id

        return spec_by_id(rule_id)

    def check(spec: RuleSpec, path: tuple[str, ...]) -> None:
        rid = spec.rule.id
        if rid in path:
            raise ValueError(f"rules read each other in a circle: {' -> '.join(path + (rid,))}")
        for r in spec.reads:
            check(spec_of(r), (*path, rid))

    for s in specs:
        check(s, ())

    def judged(spec: RuleSpec, path: tuple[str, ...]) -> _Judged:
        rid = spec.rule.id
        if rid not in done:
            inputs = None
            if spec.reads:
                frames = _OnDemand(spec.reads, lambda r: judged(spec_of(r), (*path, rid)).frame)
                inputs = Inputs(frames, {r: _thresholds(r, ts) for r in spec.reads})
            done[rid] = _Judged(spec, ward, _thresholds(rid, ts), inputs)
        return done[rid]

    return {s.rule.id: judged(s, ()) for s in specs if s.judge is not None}


class _OnDemand(Mapping[str, pd.DataFrame]):
    """The rows of the rules a rule reads, each judged when first asked for (a rule may
    read only another's thresholds)."""

    def __init__(self, rules: Sequence[str], judge: Callable[[str], pd.DataFrame]) -> None:
        self._rules, self._judge = tuple(rules), judge
        self._made: dict[str, pd.DataFrame] = {}

    def __getitem__(self, rule_id: str) -> pd.DataFrame:
        if rule_id not in self._rules:
            raise KeyError(f"{rule_id!r} is not among the rules this one reads")
        if rule_id not in self._made:
            self._made[rule_id] = self._judge(rule_id)
        return self._made[rule_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)


def _thresholds(rule_id: str, ts: Mapping[str, Thresholds]) -> Thresholds:
    """The rule's thresholds in force: as prepared for the run, else its defaults (a rule
    read by another but not run, and not overridden by the site)."""
    found = ts.get(rule_id)
    if found is None:
        from core.rules.catalog import spec_by_id

        found = _fast(Thresholds(spec_by_id(rule_id).rule))
    return found


def _closing_rows(ward: Ward) -> np.ndarray:
    """The last grid row of each course (the day it is evaluated on), in course order."""
    key = ward.days["key"].to_numpy()
    return np.flatnonzero(np.r_[key[1:] != key[:-1], True]) if len(key) else key


def _prepare(specs: Sequence[RuleSpec] | None,
             overrides: Overrides | None) -> tuple[Sequence[RuleSpec], dict[str, Thresholds]]:
    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    return specs, thresholds_for(specs, overrides)


def _evaluate(courses: Sequence[Course], specs: Sequence[RuleSpec],
              ts: dict[str, Thresholds]) -> list[list[Finding]]:
    judged: dict[str, list[Finding]] = {}
    if courses and any(s.judge is not None for s in specs):
        ward = Ward.of(courses, evaluating=True)
        rows = _closing_rows(ward)
        judged = {rid: j.findings(rows) for rid, j in judge_rules(ward, specs, ts).items()}
    out = []
    for i, course in enumerate(courses):
        object.__setattr__(course, "_cw_thresholds", ts)
        out.append([judged[s.rule.id][i] if s.judge is not None
                    else _run(s, course, ts[s.rule.id]) for s in specs])
    return out


def evaluate_course(course: Course, specs: Sequence[RuleSpec] | None = None,
                    overrides: Overrides | None = None) -> list[Finding]:
    """Every rule's finding for the course as of its `as_of_day`."""
    specs, ts = _prepare(specs, overrides)
    return _evaluate([course], specs, ts)[0]


def evaluate_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                     overrides: Overrides | None = None) -> list[list[Finding]]:
    """evaluate_course for each course, the rules judged by columns over all at once."""
    specs, ts = _prepare(specs, overrides)
    return _evaluate(list(courses), specs, ts)


def replay_days(course: Course) -> range:
    """Ward days to replay: from day 0 (or the first data day, if later) to the last data day."""
    idx = course_index(course)
    if not math.isfinite(idx.last_day):
        return range(0)
    last = math.floor(idx.last_day)
    if math.isfinite(course.as_of_day):
        last = min(last, math.floor(course.as_of_day))
    first = max(0, math.floor(idx.first_day())) if math.isfinite(idx.first_day()) else 0
    return range(first, last + 1)


def _replay_spec(spec: RuleSpec, course: Course, t: Thresholds,
                 days: Sequence[int], evidence: bool = True) -> list[Finding] | None:
    """The rule's own one-pass replay, or None when it has none or it failed (the engine
    then evaluates day by day, which reports any error per day as a not-evaluable finding).
    With `evidence`, every finding's evidence is made here (lazy lists included)."""
    if spec.replay is None:
        return None
    try:
        found = spec.replay(course, t, days)
        if evidence:
            for f in found:
                f.evidence  # noqa: B018 - made here, so its errors take the per-day path
    except Exception:  # noqa: BLE001 - the per-day path reports the error
        return None
    if len(found) != len(days):
        return None
    for f in found:
        if f.rule != spec.rule.id:
            f.rule = spec.rule.id
    return found


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one course's replay or one evaluate run.

    Both build tens of thousands of small objects that live until the end, which the
    collector would rescan again and again (~15 % of a replay; 2-3 full collections, ~20 %,
    of a 60-patient ward's warm evaluate) while they leave next to no cycles behind (~20
    objects after a warm evaluate); what there is gets collected as usual afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def replay_course(course: Course, specs: Sequence[RuleSpec] | None = None,
                  overrides: Overrides | None = None,
                  days: Sequence[int] | None = None,
                  evidence: bool = True) -> list[tuple[int, list[Finding]]]:
    """Findings as of the end of every day of the course (backtesting), oldest first.

    Rules judged by columns are judged once over the course's days; rules with a `replay`
    hook compute their whole day series in one pass; the others are evaluated on a lazy day
    view of the course for each day. `evidence=False` leaves lazy evidence lists unmade
    until read: for callers that only read status, since_day and episode_key (the
    backtest); an error in making them then surfaces where they are read.
    """
    specs, ts = _prepare(specs, overrides)
    judged = _judge_all([course], specs, ts)
    return _replay_one(course, specs, ts, days, evidence, judged, 0)


def replay_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                   overrides: Overrides | None = None, evidence: bool = True
                   ) -> Iterator[tuple[Course, list[tuple[int, list[Finding]]]]]:
    """(course, replay_course of it) for each course, the thresholds in force made once and
    the rules judged by columns over all the courses at once."""
    specs, ts = _prepare(specs, overrides)
    courses = list(courses)
    judged = _judge_all(courses, specs, ts)
    for key, course in enumerate(courses):
        yield course, _replay_one(course, specs, ts, None, evidence, judged, key)


STATUS_COLUMNS = ["key", "day", "rule", "status", "since_day", "episode_key"]


def replay_statuses(courses: Sequence[Course], specs: Sequence[RuleSpec] | None = None,
                    overrides: Overrides | None = None) -> pd.DataFrame:
    """Every rule's status on every replay day of the courses, without making findings (for
    backtesting): STATUS_COLUMNS, `key` the course's position; since_day is NaN and
    episode_key None unless met (a judged rule's episode key is its since_day's). Rows are
    in course, day and rule order."""
    specs, ts = _prepare(specs, overrides)
    courses = list(courses)
    parts: list[pd.DataFrame] = []
    judged = _judge_all(courses, specs, ts)
    if judged:
        ward = next(iter(judged.values())).ward
        rows = ward.replay_rows()
        key, day = ward.grid_keys[rows], ward.days["day"].to_numpy()[rows]
        for rank, s in enumerate(specs):
            j = judged.get(s.rule.id)
            if j is None:
                continue
            status = j.cols["status"][rows].astype(object)
            since = pd.to_numeric(pd.Series(j.cols["since_day"][rows]), errors="coerce")
            met = status == Status.MET.value
            given = j.cols.get("episode_key")  # else a met row's key is its since_day's
            parts.append(pd.DataFrame({
                "key": key, "day": day, "rank": rank, "rule": s.rule.id, "status": status,
                "since_day": since.where(met).to_numpy(dtype=float),
                "episode_key": None if given is None else np.where(met, given[rows], None)}))
    rest = [s for s in specs if s.judge is None]
    if rest:
        rank_of = {s.rule.id: rank for rank, s in enumerate(specs)}
        found = []
        for key_, course in enumerate(courses):
            for d, findings in _replay_one(course, rest, ts, None, False, {}, key_):
                for f in findings:
                    met = f.status is Status.MET
                    found.append((key_, d, rank_of[f.rule], f.rule, f.status.value,
                                  float(f.since_day) if met and f.since_day is not None
                                  else math.nan, f.episode_key if met else None))
        parts.append(pd.DataFrame(found, columns=["key", "day", "rank", *STATUS_COLUMNS[2:]]))
    if not parts:
        return pd.DataFrame({c: [] for c in STATUS_COLUMNS})
    table = pd.concat(parts, ignore_index=True).sort_values(["key", "day", "rank"],
                                                              kind="stable")
    return table[STATUS_COLUMNS].reset_index(drop=True)


def _judge_all(courses: Sequence[Course], specs: Sequence[RuleSpec],
               ts: dict[str, Thresholds]) -> dict[str, _Judged]:
    """The rules judged by columns, over every day of the courses."""
    if not courses or not any(s.judge is not None for s in specs):
        return {}
    return judge_rules(Ward.of(courses, evaluating=False), specs, ts)


def _replay_one(course: Course, specs: Sequence[RuleSpec], ts: dict[str, Thresholds],
                days: Sequence[int] | None, evidence: bool, judged: dict[str, _Judged],
                key: int) -> list[tuple[int, list[Finding]]]:
    idx = course_index(course)
    in_use = bool(idx.memo)
    with gc_paused():
        try:
            return _replay(course, specs, ts, days, evidence, judged, key)
        finally:
            if not in_use:  # the per-day caches are only useful inside this replay
                idx.forget()
            course.__dict__.pop("_cw_thresholds", None)


def _replay(course: Course, specs: Sequence[RuleSpec], ts: dict[str, Thresholds],
            days: Sequence[int] | None, evidence: bool, judged: dict[str, _Judged],
            key: int) -> list[tuple[int, list[Finding]]]:
    """replay_course's work: judged rules from their rows, hooked rules in one pass each,
    the others day by day."""
    days = list(replay_days(course) if days is None else days)
    object.__setattr__(course, "_cw_thresholds", ts)
    columns: list[list[Finding] | None] = []
    for s in specs:
        j = judged.get(s.rule.id)
        if j is not None:
            columns.append(j.findings(j.ward.grid_rows(key, days)))
        else:
            columns.append(_replay_spec(s, course, ts[s.rule.id], days, evidence))
    daily_specs = [(i, s) for i, s in enumerate(specs) if columns[i] is None]
    out: list[tuple[int, list[Finding]]] = []
    for k, day in enumerate(days):
        row: list[Finding | None] = [None if col is None else col[k] for col in columns]
        if daily_specs:
            view = day_view(course, day + END_OF_DAY)
            object.__setattr__(view, "_cw_thresholds", ts)
            for i, s in daily_specs:
                row[i] = _run(s, view, ts[s.rule.id])
        out.append((day, cast("list[Finding]", row)))  # every None was filled just above
    return out

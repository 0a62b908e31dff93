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
import math
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import cast

from core.rules.base import Finding, RuleSpec, Status, Thresholds
from core.rules.reading import END_OF_DAY, course_index
from core.rules.stretches import day_view
from core.vocabulary.course import Course

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


def _run(spec: RuleSpec, course: Course, t: Thresholds) -> Finding:
    try:
        finding = spec.evaluate(course, t)
        finding.evidence  # noqa: B018 - a lazy evidence list is made here, its errors reported
    except Exception as exc:  # one rule must never take the others down
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return Finding(
            rule=spec.rule.id, status=Status.NOT_EVALUABLE,
            missing=[f"rule error: {type(exc).__name__}: {exc}"],
            extra={"error": f"{type(exc).__name__}: {exc} "
                            f"({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"},
        )
    if finding.rule != spec.rule.id:
        finding.rule = spec.rule.id
    return finding


def _prepare(specs: Sequence[RuleSpec] | None,
             overrides: Overrides | None) -> tuple[Sequence[RuleSpec], dict[str, Thresholds]]:
    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    return specs, thresholds_for(specs, overrides)


def _evaluate(course: Course, specs: Sequence[RuleSpec],
              ts: dict[str, Thresholds]) -> list[Finding]:
    object.__setattr__(course, "_cw_thresholds", ts)
    return [_run(s, course, ts[s.rule.id]) for s in specs]


def evaluate_course(course: Course, specs: Sequence[RuleSpec] | None = None,
                    overrides: Overrides | None = None) -> list[Finding]:
    """Every rule's finding for the course as of its `as_of_day`."""
    specs, ts = _prepare(specs, overrides)
    return _evaluate(course, specs, ts)


def evaluate_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                     overrides: Overrides | None = None) -> list[list[Finding]]:
    """evaluate_course for each course, the thresholds in force made once for all."""
    specs, ts = _prepare(specs, overrides)
    return [_evaluate(course, specs, ts) for course in courses]


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

    Rules with a `replay` hook compute their whole day series in one pass; the others are
    evaluated on a lazy day view of the course for each day. `evidence=False` leaves lazy
    evidence lists unmade until read: for callers that only read status, since_day and
    episode_key (the backtest); an error in making them then surfaces where they are read.
    """
    specs, ts = _prepare(specs, overrides)
    return _replay_one(course, specs, ts, days, evidence)


def replay_courses(courses: Iterable[Course], specs: Sequence[RuleSpec] | None = None,
                   overrides: Overrides | None = None, evidence: bool = True
                   ) -> Iterator[tuple[Course, list[tuple[int, list[Finding]]]]]:
    """(course, replay_course of it) for each course, the thresholds in force made once."""
    specs, ts = _prepare(specs, overrides)
    for course in courses:
        yield course, _replay_one(course, specs, ts, None, evidence)


def _replay_one(course: Course, specs: Sequence[RuleSpec], ts: dict[str, Thresholds],
                days: Sequence[int] | None, evidence: bool) -> list[tuple[int, list[Finding]]]:
    idx = course_index(course)
    in_use = bool(idx.memo)
    with gc_paused():
        try:
            return _replay(course, specs, ts, days, evidence)
        finally:
            if not in_use:  # the per-day caches are only useful inside this replay
                idx.forget()
            course.__dict__.pop("_cw_thresholds", None)


def _replay(course: Course, specs: Sequence[RuleSpec], ts: dict[str, Thresholds],
            days: Sequence[int] | None, evidence: bool) -> list[tuple[int, list[Finding]]]:
    """replay_course's work: hooked rules in one pass each, the others day by day."""
    days = list(replay_days(course) if days is None else days)
    object.__setattr__(course, "_cw_thresholds", ts)
    columns = [_replay_spec(s, course, ts[s.rule.id], days, evidence) for s in specs]
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

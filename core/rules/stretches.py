"""Machinery of the rules judged day by day: per-day caching, met stretches, replay.

A rule judged once per ward day (DailyRule) computes its result as of the end of each day;
the result of a complete day is cached on the course index (memo, daily) so that evaluate's
walk back to the first day of the met stretch (met_since) and a replay (met_since_days,
day_series, known_at_end_of) compute each day once. Also here: the thresholds a rule runs
with (configured_thresholds), the alert-episode key of a met stretch (episode_key), and the
course as known at a day's end that a replay hands each day (DayView, day_view).
Reading a course (values, baselines, the column index) is core.rules.reading.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import pandas as pd

from core.rules.base import Finding, Rule, RuleSpec, Status, Thresholds
from core.rules.reading import END_OF_DAY, Value, baseline, course_index, end_of_day
from core.vocabulary.course import Course


def _cut(name: str) -> property:
    full, cut = f"_full_{name}", f"_cut_{name}"

    def get(self: DayView) -> pd.DataFrame:
        d = self.__dict__
        if cut not in d:
            frame, end = d[full], self.as_of_day
            if name == "episodes":
                frame = frame[frame["onset_day"] <= end].copy()
                if len(frame):
                    frame.loc[frame["resolved_day"] > end, "resolved_day"] = float("nan")
            elif len(frame):
                frame = frame[frame["day"] <= end]
            d[cut] = frame
        return d[cut]

    def set_(self: DayView, frame: pd.DataFrame) -> None:
        self.__dict__[full] = frame
        self.__dict__.pop(cut, None)

    return property(get, set_)


FRAMES = ("labs", "observations", "episodes", "treatments", "events", "missing")


class DayView(Course):
    """A course as known at `as_of_day`: full frames kept, cut lazily on first access."""

    labs = _cut("labs")
    observations = _cut("observations")
    episodes = _cut("episodes")
    treatments = _cut("treatments")
    events = _cut("events")
    missing = _cut("missing")


def _full(course: Course, name: str) -> pd.DataFrame:
    if isinstance(course, DayView):
        return course.__dict__[f"_full_{name}"]
    return getattr(course, name)


def day_view(course: Course, as_of_day: float) -> DayView:
    """`course` as of `as_of_day`, sharing the full course's index (no frame filtering)."""
    view = DayView(
        patient=course.patient,
        **{name: _full(course, name) for name in FRAMES},
        as_of_day=min(as_of_day, course.as_of_day),
        tz=course.tz,
    )
    object.__setattr__(view, "_cw_index", course_index(course))
    return view


def evaluated_day(course: Course) -> int:
    """The ward day a finding is about: the as-of day, or the last data day if open-ended."""
    if math.isfinite(course.as_of_day):
        return math.floor(course.as_of_day)
    last = course_index(course).last_day
    return math.floor(last) if math.isfinite(last) else 0


def memo(course: Course, key: tuple, compute: Callable[[], Any]) -> Any:
    """A value cached on the course index (for per-day results of days already complete)."""
    cache = course_index(course).memo
    try:
        return cache[key]
    except KeyError:
        value = cache[key] = compute()
        return value


def thresholds_key(t: Mapping[str, float]) -> tuple:
    """A hashable key for a thresholds mapping (cached on the object)."""
    key = getattr(t, "_cw_key", None)
    if key is None:
        key = tuple(sorted(t.items()))
        try:
            object.__setattr__(t, "_cw_key", key)
        except AttributeError:
            pass
    return key


def daily(course: Course, key: tuple, day: int, compute: Callable[[], Any]) -> Any:
    """compute() for ward day `day`, cached once that day is complete as of the course."""
    if end_of_day(day) <= course.as_of_day:
        return memo(course, (*key, day), compute)
    return compute()


def met_since(course: Course, key: tuple, day: int, today: Status,
              status_of: Callable[[int], Status]) -> int | None:
    """First day of the met stretch that `day` belongs to, or None if `today` is not met.

    A not-evaluable day neither starts nor breaks a stretch (a day without the input is not
    evidence that the condition cleared); a not-met day ends it. `status_of(d)` gives the
    status as of the end of an earlier day d and should be cached with `daily`.
    """
    if today is not Status.MET:
        return None
    idx = course_index(course)
    first = math.floor(idx.first_day()) if math.isfinite(idx.first_day()) else day
    cache = idx.memo
    todo: list[int] = []
    run: int | None = None
    cur = day - 1
    while cur >= first:
        hit = cache.get((*key, "run", cur), cache)
        if hit is not cache:
            run = hit
            break
        todo.append(cur)
        cur -= 1
    for d in reversed(todo):
        st = status_of(d)
        if st is Status.MET:
            run = d if run is None else run
        elif st is Status.NOT_MET:
            run = None
        cache[(*key, "run", d)] = run
    return day if run is None else run


def episode_key(since_day: float | None) -> str | None:
    """Alert-episode key: stable while a condition lasts, new when it returns later."""
    return None if since_day is None else f"since-day-{int(math.floor(since_day))}"


class _HasStatus(Protocol):
    @property
    def status(self) -> Status: ...


R = TypeVar("R", bound=_HasStatus)  # a rule's result of one day


def met_since_days(course: Course, days: Sequence[int],
                   status_of: Callable[[int], Status]) -> list[int | None]:
    """`met_since` as of the end of each of `days` (ascending), in one walk over the course.

    For replay hooks (DailyRule.replay). `status_of(d)` is the status as of the end of day d;
    it is called once for every day from the course's first data day to the last of `days`,
    in order. Days before the first data day have no stretch behind them, as in met_since.
    """
    first_day = course_index(course).first_day()
    if not math.isfinite(first_day):  # no data day: every day is before the first one
        return [day if status_of(day) is Status.MET else None for day in days]
    first = math.floor(first_day)
    d = first  # the next day to walk
    run: int | None = None  # first day of the met stretch so far (None: not in one)
    today = Status.NOT_EVALUABLE
    out: list[int | None] = []
    for day in days:
        if day < first:  # before the first data day: no earlier day counts
            out.append(day if status_of(day) is Status.MET else None)
            continue
        while d <= day:
            today = status_of(d)
            if today is Status.MET:
                run = d if run is None else run
            elif today is Status.NOT_MET:
                run = None
            d += 1
        out.append(run if today is Status.MET else None)
    return out


def day_series(course: Course, days: Sequence[int],
               results: Callable[[list[int], list[float]], Sequence[R]]
               ) -> list[tuple[int, R, int | None]]:
    """(evaluated day, result, since_day) for each of `days` (ascending), in one forward pass.

    What evaluate gives on the course cut at the end of each day: the evaluated day is
    floor(min(day + END_OF_DAY, as_of_day)); `results(ds, ends)` gives the result of each
    day of `ds` (consecutive) as of its end in `ends`; since_day follows met_since (a met
    stretch counted from the first data day, which not-evaluable days neither start nor
    break), carried forward instead of walked back.
    """
    as_of = course.as_of_day
    wanted = [math.floor(min(d + END_OF_DAY, as_of)) for d in days]
    if not wanted:
        return []
    fd = course_index(course).first_day()
    first = math.floor(fd) if math.isfinite(fd) else None
    lo = wanted[0] if first is None else min(first, wanted[0])
    ds = list(range(lo, wanted[-1] + 1))
    found = results(ds, [min(end_of_day(d), as_of) for d in ds])
    by_day: dict[int, tuple[R, int | None]] = {}
    run: int | None = None
    met, not_met = Status.MET, Status.NOT_MET  # locals: enum attribute lookups cost
    for d, result in zip(ds, found, strict=True):
        if first is None or d < first:  # met_since looks no further back than the first day
            run = None
        if result.status is met:
            run = d if run is None else run
        elif result.status is not_met:
            run = None
        by_day[d] = (result, run if result.status is met else None)
    return [(d, *by_day[d]) for d in wanted]


def baseline_settled_at(course: Course) -> float:
    """The instant from which reading.baseline can no longer change: it reads the values before
    day 1, or before the day after the lymphodepletion start day if that is later."""
    ld = course.patient.lymphodepletion_day
    return 1.0 if ld is None else max(1.0, math.floor(ld) + 1.0)


def settled_baseline(course: Course, analyte: str) -> Value | None:
    """reading.baseline, cached per course once the as-of instant is past every baseline draw
    (then it is the same for the full course and every cut of it that late)."""
    if course.as_of_day < baseline_settled_at(course):
        return baseline(course, analyte)
    return memo(course, ("settled_baseline", analyte), lambda: baseline(course, analyte))


def known_at_end_of(course: Course, day: int) -> Course:
    """The course a replay hook evaluates ward day `day` on: the full course itself where that
    gives the same results as the course cut at the end of the day, else that cut.

    Rules judged day by day read the course's index only up to the day's end instant, except
    the baselines (reading.baseline), which read the values before day 1 (or before the day
    after the lymphodepletion start) up to the course's own as-of instant. Once the day's end
    is past those, nothing differs; before it (day 0 and earlier) a lazy day view is used.
    """
    end = min(end_of_day(day), course.as_of_day)
    if end == course.as_of_day or end >= baseline_settled_at(course):
        return course
    view = day_view(course, end)
    if "_cw_thresholds" in course.__dict__:
        object.__setattr__(view, "_cw_thresholds", course.__dict__["_cw_thresholds"])
    return view


def dated(today: Finding, since: int | None) -> Finding:
    """A day's cached finding with its met stretch: a copy that carries it, or the finding
    itself when there is none to carry (findings are read-only, see Finding)."""
    if since is None and today.since_day is None and today.episode_key is None:
        return today
    return today.copy(since_day=since, episode_key=episode_key(since))


def _dated_finding(course: Course, day: int, t: Thresholds, today: _HasStatus,
                   since: int | None) -> Finding:
    assert isinstance(today, Finding)  # the default `finish` is for rules whose day is one
    return dated(today, since)


@dataclass(frozen=True)
class DailyRule(Generic[R]):
    """A rule judged once per ward day, with since_day = the first day of its met stretch.

    `compute(course, day, t)` is the rule's result as of the end of ward day `day` (anything
    with a status); `day` caches it once that day is complete (`daily`, key: the rule id and
    thresholds), so evaluate's walk back to since_day (`met_since`) and a replay compute each
    day once. `finish(course, day, t, result, since)` makes the finding (default: `dated`,
    the day's finding with its since_day). With `cut_days` the replay computes each day on
    the course as known at its end (`known_at_end_of`), for rules reading baselines; without,
    on the full course, for rules whose day reads nothing after the day's end.
    """

    rule: Rule
    compute: Callable[[Course, int, Thresholds], R]
    finish: Callable[[Course, int, Thresholds, R, int | None], Finding] = _dated_finding
    cut_days: bool = True

    def day(self, course: Course, day: int, t: Thresholds) -> R:
        """The result as of the end of ward day `day`, cached once that day is complete."""
        return daily(course, (self.rule.id, thresholds_key(t)), day,
                     lambda: self.compute(course, day, t))

    def since(self, course: Course, day: int, t: Thresholds) -> tuple[R, int | None]:
        """The result as of the end of `day` and the first day of its met stretch (None
        unless met)."""
        today = self.day(course, day, t)
        return today, met_since(course, (self.rule.id, thresholds_key(t)), day, today.status,
                                lambda d: self.day(course, d, t).status)

    def evaluate(self, course: Course, t: Thresholds) -> Finding:
        day = evaluated_day(course)
        return self.finish(course, day, t, *self.since(course, day, t))

    def replay(self, course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        """`evaluate` as of the end of each of `days`: each day's result once, and the met
        stretch carried from day to day (met_since_days) instead of walked back every day."""
        results: dict[int, R] = {}  # each day's, looked up twice

        def today(d: int) -> R:
            r = results.get(d)
            if r is None:
                r = results[d] = self.day(known_at_end_of(course, d) if self.cut_days
                                          else course, d, t)
            return r

        since = met_since_days(course, days, lambda d: today(d).status)
        return [self.finish(course, d, t, today(d), s) for d, s in zip(days, since, strict=True)]

    def spec(self) -> RuleSpec:
        """The rule's declaration with this evaluate and replay."""
        return RuleSpec(self.rule, self.evaluate, self.replay)


def configured_thresholds(course: Course, rule: Rule) -> Thresholds:
    """The thresholds the engine runs `rule` with for this course (site overrides applied),
    or the rule's defaults outside the engine. For rules that reuse another rule's logic."""
    ts = course.__dict__.get("_cw_thresholds")
    found = None if ts is None else ts.get(rule.id)
    return found if found is not None else _default_thresholds(rule)


_DEFAULTS: dict[str, tuple[Rule, Thresholds]] = {}


def _default_thresholds(rule: Rule) -> Thresholds:
    cached = _DEFAULTS.get(rule.id)
    if cached is None or cached[0] is not rule:
        cached = _DEFAULTS[rule.id] = (rule, Thresholds(rule))
    return cached[1]

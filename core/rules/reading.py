"""Reading a course, as the rules do: lab values, baselines, observations, doses, episodes.

- Value and Obs: one lab value (canonical unit, reference limits) or bedside observation,
  each able to give its evidence item;
- the column index of a course (CourseIndex: LabSeries and ObsSeries per analyte and kind,
  drug days, episodes, events), built once for a ward by `index_courses` or on first use by
  `course_index`, and read by bisection at any as-of instant (`end_of_day`, END_OF_DAY);
- the readers over it: `lab_series`, `baseline`, `latest_until`, `latest_observation`,
  `treatment_days`, `episodes_until`.
The machinery of rules judged day by day (caching per day, met stretches, DailyRule) is
core.rules.stretches, which builds on this module.

Conventions of criteria.md §0.2 [DESIGN]:
- baseline = the last value on or before the lymphodepletion start day (a draw that morning
  precedes the chemotherapy); if there is none, the last value on or before the infusion day
  (day < 1);
- ULN/LLN come from the lab result's own reference range; without one the catalogue default
  (core/vocabulary/units.py) is used and the evidence says "default reference range used".
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from core.rules.base import EvidenceItem
from core.vocabulary.course import Course, PatientInfo
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES


@dataclass(frozen=True)
class Value:
    """One lab value as the rules use it (canonical unit) with where it came from."""

    analyte: str
    day: float
    value: float
    qualifier: str | None = None
    ref_low: float | None = None
    ref_high: float | None = None
    original_value: str | None = None
    original_unit: str | None = None
    verified: bool | None = None
    default_range: bool = False

    @property
    def unit(self) -> str:
        return ANALYTES[self.analyte].unit

    def evidence(self, why: str) -> EvidenceItem:
        if self.default_range:
            why += " (default reference range used)"
        q = self.qualifier
        # positional: EvidenceItem(why, analyte, day, value, unit, original_value,
        # original_unit, verified), the cheaper call for the many a replay makes
        return EvidenceItem(why, self.analyte, self.day, f"{q}{self.value:g}" if q else self.value,
                            ANALYTES[self.analyte].unit, self.original_value,
                            self.original_unit, self.verified)


def baseline(course: Course, analyte: str) -> Value | None:
    """Last value on or before the lymphodepletion start day, else the last value on or
    before the infusion day (day < 1) [DESIGN §0.2].

    A draw on the lymphodepletion start day is taken as drawn before the chemotherapy (the
    morning draw precedes the infusion of fludarabine/cyclophosphamide), as car_hematotox does.
    """
    s = lab_series(course, analyte)
    if s is None:
        return None
    k_end = s.count(course.as_of_day)
    ld = course.patient.lymphodepletion_day
    if ld is not None:
        k = min(bisect.bisect_left(s.days, math.floor(ld) + 1.0), k_end)
        if k:
            return s.at(k - 1)
    k = min(bisect.bisect_left(s.days, 1.0), k_end)
    return s.at(k - 1) if k else None


# --- Fast per-course access -------------------------------------------------------------
# A replay evaluates every rule as of the end of every day. Re-filtering pandas frames per
# day is far too slow, so each course gets one index of numpy/list columns per analyte,
# observation kind and drug, built once and sliced by bisection at `course.as_of_day`.
# The index is cached on the Course object (frames are never mutated after construction).

END_OF_DAY = 1.0 - 1e-6  # "as of the end of day N" = N + END_OF_DAY (0.09 s before midnight)


def end_of_day(day: float) -> float:
    """The as-of instant that stands for the end of day `day`."""
    return math.floor(day) + END_OF_DAY


def _float_col(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame:
        return np.full(len(frame), np.nan)
    column = frame[col]
    if column.dtype == np.float64:  # the loaded frames' numbers: no parsing needed
        return column.to_numpy()
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _obj_col(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A column as Python objects with every missing value (None, NaN, NA) as None."""
    if col not in frame:
        return np.full(len(frame), None, dtype=object)
    return frame[col].to_numpy(dtype=object, na_value=None)


class LabSeries:
    """One analyte's values in time order, as columns; `Value`s are built on demand."""

    __slots__ = ("analyte", "days", "vals", "qual", "low", "high", "ov", "ou", "ver", "_cache")

    def __init__(self, analyte: str, days: list[float], vals: list[float], qual: list,
                 low: list[float], high: list[float], ov: list, ou: list, ver: list) -> None:
        self.analyte, self.days, self.vals, self.qual = analyte, days, vals, qual
        self.low, self.high, self.ov, self.ou, self.ver = low, high, ov, ou, ver
        self._cache: list[Value | None] = [None] * len(days)

    def count(self, end: float) -> int:
        """Number of values with day <= end."""
        return bisect.bisect_right(self.days, end)

    def at(self, i: int) -> Value:
        v = self._cache[i]
        if v is None:
            low: float | None = self.low[i]
            high: float | None = self.high[i]
            low = None if low != low else low  # NaN -> None
            high = None if high != high else high
            default = low is None and high is None
            if default:
                a = ANALYTES[self.analyte]
                low, high = a.ref_low, a.ref_high
            ver = self.ver[i]
            # Value is frozen: its generated __init__ sets each field through
            # object.__setattr__ (~4x the cost); filling the instance dict is the same object
            v = object.__new__(Value)
            v.__dict__.update(
                analyte=self.analyte, day=self.days[i], value=self.vals[i],
                qualifier=self.qual[i], ref_low=low, ref_high=high,
                original_value=None if self.ov[i] is None else str(self.ov[i]),
                original_unit=None if self.ou[i] is None else str(self.ou[i]),
                verified=None if ver is None else bool(ver), default_range=default,
            )
            self._cache[i] = v
        return v


class ObsSeries:
    """One observation kind in time order: day, numeric value (NaN if none), text value."""

    __slots__ = ("days", "nums", "texts")

    def __init__(self, days: list[float], nums: list[float], texts: list) -> None:
        self.days, self.nums, self.texts = days, nums, texts

    def count(self, end: float) -> int:
        return bisect.bisect_right(self.days, end)


class Obs(NamedTuple):
    """One bedside observation as the rules use it (a tuple: several times cheaper to make
    than a frozen dataclass, and a replay makes one per input per day)."""

    kind: str
    day: float
    num: float | None
    text: str | None

    @property
    def shown(self) -> float | str | None:
        return self.text if self.text is not None else self.num

    @property
    def is_yes(self) -> bool:
        return self.num is not None and self.num >= 1

    def evidence(self, why: str) -> EvidenceItem:
        kind = OBSERVATION_KINDS.get(self.kind)
        return EvidenceItem(why, self.kind, self.day, self.shown,
                            kind.unit if kind and self.num is not None else None)


class CourseIndex:
    """Columns of one course, sorted by day, for bisection at any as-of instant.

    Built by `index_courses` (for a whole ward at once, as the loader does) or, for any other
    course, on first use by `course_index`.
    """

    def __init__(self, patient: PatientInfo) -> None:
        self.patient = patient
        self.memo: dict = {}
        self.labs: dict[str, LabSeries] = {}
        self.obs: dict[str, ObsSeries] = {}
        self.drugs: dict[str, list[float]] = {}
        self.episodes: list[tuple[str, int | None, float, float, str]] = []
        self.events: list[tuple[str, float]] = []
        self.last_day = -math.inf  # stays -inf when the course holds no data

    def first_day(self) -> float:
        firsts = [s.days[0] for s in self.labs.values()] + [
            s.days[0] for s in self.obs.values()] + [d[0] for d in self.drugs.values()]
        return min(firsts) if firsts else math.inf

    def forget(self) -> None:
        """Drop what the rules cached here (memo, built Values); the columns stay."""
        self.memo.clear()
        for s in self.labs.values():
            s._cache = [None] * len(s.days)

    def _saw(self, last: float) -> None:
        if last > self.last_day:  # a NaN day is ignored, as np.nanmax does
            self.last_day = last


def index_courses(patients: Mapping[int, PatientInfo], frames: Mapping[str, pd.DataFrame],
                  owner: str | None = None) -> dict[int, CourseIndex]:
    """The indexes of many courses at once, from frames holding all their rows.

    `frames` has the Course frame names (labs, observations, treatments, episodes, events);
    the column `owner` says whose row it is (None: every row is the one patient's, key 0).
    Each column is converted to Python once for all the courses: per course, pandas'
    overhead alone costs ~2.5 ms. Rows of unknown owners are skipped.
    """
    out = {k: CourseIndex(p) for k, p in patients.items()}
    _index_labs(out, frames["labs"], owner)
    _index_obs(out, frames["observations"], owner)
    _index_drugs(out, frames["treatments"], owner)
    _index_episodes(out, frames["episodes"], owner)
    _index_events(out, frames["events"], owner)
    return out


def _owners(frame: pd.DataFrame, owner: str | None) -> np.ndarray:
    if owner is None:
        return np.zeros(len(frame), dtype=np.int64)
    return frame[owner].to_numpy(dtype=np.int64)


def _factorize(column: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes of a text column (cheaper to sort than the text) and the texts."""
    codes, uniques = pd.factorize(column)
    return codes, [str(u) for u in uniques]


def _runs(*keys: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of rows equal in every key (rows sorted by the keys)."""
    n = len(keys[0])
    change = np.zeros(max(n - 1, 0), dtype=bool)
    for k in keys:
        change |= k[1:] != k[:-1]
    bounds = np.flatnonzero(change) + 1
    return list(zip(np.r_[0, bounds].tolist(), np.r_[bounds, n].tolist(), strict=True))


def _index_labs(out: dict[int, CourseIndex], labs: pd.DataFrame, owner: str | None) -> None:
    """One LabSeries per (course, analyte), in day order (ties in row order)."""
    if not len(labs):
        return
    who, days = _owners(labs, owner), _float_col(labs, "day")
    codes, names = _factorize(labs["analyte"])
    order = np.lexsort((days, codes, who))
    who, codes, days = who[order], codes[order], days[order]
    runs = _runs(who, codes)
    tops = np.fmax.reduceat(days, [s for s, _ in runs]).tolist()  # NaN-ignoring max per run
    cols = {c: _float_col(labs, c)[order].tolist() for c in ("value", "ref_low", "ref_high")}
    for c in ("qualifier", "original_value", "original_unit", "verified"):
        cols[c] = _obj_col(labs, c)[order].tolist()
    day_list, who_list, code_list = days.tolist(), who.tolist(), codes.tolist()
    for (s, e), top in zip(runs, tops, strict=True):
        idx = out.get(who_list[s])
        if idx is None:
            continue
        a = names[code_list[s]]
        idx.labs[a] = LabSeries(
            a, day_list[s:e], cols["value"][s:e], cols["qualifier"][s:e],
            cols["ref_low"][s:e], cols["ref_high"][s:e], cols["original_value"][s:e],
            cols["original_unit"][s:e], cols["verified"][s:e])
        idx._saw(top)


def _index_obs(out: dict[int, CourseIndex], obs: pd.DataFrame, owner: str | None) -> None:
    """One ObsSeries per (course, kind), in day order (ties in row order)."""
    if not len(obs):
        return
    who, days = _owners(obs, owner), _float_col(obs, "day")
    codes, names = _factorize(obs["kind"])
    order = np.lexsort((days, codes, who))
    who, codes, days = who[order], codes[order], days[order]
    runs = _runs(who, codes)
    tops = np.fmax.reduceat(days, [s for s, _ in runs]).tolist()
    nums = _float_col(obs, "value_num")[order].tolist()
    texts = _obj_col(obs, "value_text")[order].tolist()
    day_list, who_list, code_list = days.tolist(), who.tolist(), codes.tolist()
    for (s, e), top in zip(runs, tops, strict=True):
        idx = out.get(who_list[s])
        if idx is None:
            continue
        idx.obs[names[code_list[s]]] = ObsSeries(day_list[s:e], nums[s:e], texts[s:e])
        idx._saw(top)


def _index_drugs(out: dict[int, CourseIndex], tr: pd.DataFrame, owner: str | None) -> None:
    """The sorted days of each drug given."""
    if not len(tr):
        return
    days = _float_col(tr, "day").tolist()
    for k, drug, day in zip(_owners(tr, owner).tolist(), tr["drug"].astype(str).tolist(),
                            days, strict=True):
        idx = out.get(k)
        if idx is not None:
            idx.drugs.setdefault(drug, []).append(day)
            idx._saw(day)
    for idx in out.values():
        for d in idx.drugs.values():
            d.sort()


def _index_episodes(out: dict[int, CourseIndex], ep: pd.DataFrame, owner: str | None) -> None:
    """(kind, grade, onset, resolved, origin) of each episode, by onset (ties in row order)."""
    if not len(ep):
        return
    for k, kind, grade, onset, resolved, origin in zip(
        _owners(ep, owner).tolist(), ep["kind"].astype(str), _float_col(ep, "grade"),
        _float_col(ep, "onset_day"), _float_col(ep, "resolved_day"),
        _obj_col(ep, "origin").tolist(), strict=True,
    ):
        idx = out.get(k)
        if idx is not None:
            idx.episodes.append((kind, None if grade != grade else int(grade), float(onset),
                                 float(resolved), origin or "documented"))
    for idx in out.values():
        idx.episodes.sort(key=lambda e: e[2])


def _index_events(out: dict[int, CourseIndex], ev: pd.DataFrame, owner: str | None) -> None:
    """(kind, day) of each course event, in day order (ties in row order)."""
    if not len(ev):
        return
    for k, kind, day in zip(_owners(ev, owner).tolist(), ev["kind"].astype(str),
                            _float_col(ev, "day").tolist(), strict=True):
        idx = out.get(k)
        if idx is not None:
            idx.events.append((kind, day))
    for idx in out.values():
        if idx.events:
            idx.events.sort(key=lambda e: e[1])
            idx._saw(max(d for _, d in idx.events))


INDEXED = ("labs", "observations", "treatments", "episodes", "events")


def course_index(course: Course) -> CourseIndex:
    """The course's column index, built on first use and cached on the Course object."""
    idx = course.__dict__.get("_cw_index")
    if idx is None:
        frames = {name: getattr(course, name) for name in INDEXED}
        idx = index_courses({0: course.patient}, frames)[0]
        object.__setattr__(course, "_cw_index", idx)
    return idx


def attach_index(course: Course, idx: CourseIndex) -> None:
    """Give a course an index built beforehand (by `index_courses` from its own rows)."""
    object.__setattr__(course, "_cw_index", idx)


def lab_series(course: Course, analyte: str) -> LabSeries | None:
    return course_index(course).labs.get(analyte)


def latest_until(course: Course, analyte: str, end: float) -> Value | None:
    s = course_index(course).labs.get(analyte)
    if s is None:
        return None
    k = s.count(min(end, course.as_of_day))
    return s.at(k - 1) if k else None


def latest_observation(course: Course, kind: str, end: float,
                       start: float = -math.inf) -> Obs | None:
    s = course_index(course).obs.get(kind)
    if s is None:
        return None
    k = s.count(min(end, course.as_of_day))
    if not k or s.days[k - 1] < start:
        return None
    j = k - 1
    return Obs(kind, s.days[j], None if s.nums[j] != s.nums[j] else s.nums[j], s.texts[j])


def treatment_days(course: Course, drugs: Iterable[str], end: float,
                   start: float = -math.inf) -> list[tuple[float, str]]:
    """(day, drug) of every dose of the given drugs with start <= day <= end, in time order."""
    idx = course_index(course)
    end = min(end, course.as_of_day)
    out = []
    for drug in drugs:
        for d in idx.drugs.get(drug, ()):
            if start <= d <= end:
                out.append((d, drug))
    out.sort()
    return out


def episodes_until(course: Course, kind: str, end: float) -> list[tuple[int | None, float,
                                                                        float | None, str]]:
    """(grade, onset_day, resolved_day or None, origin) of episodes of a kind known by `end`."""
    end = min(end, course.as_of_day)
    out = []
    for k, grade, onset, resolved, origin in course_index(course).episodes:
        if k != kind or onset > end:
            continue
        out.append((grade, onset, None if resolved != resolved or resolved > end else resolved,
                    origin))
    return out

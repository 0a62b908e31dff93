"""A ward's courses as whole frames, and the course-days every rule is judged on.

A rule judged by columns (RuleSpec.judge) reads a `Ward`: each of the courses' tables once,
every row tagged with its course's position (`key`), and `days`, the grid of course-days:
one row per course and ward day from the course's first data day to the day it is evaluated
on, with `end`, the instant that day is judged as of (the end of the day, or the course's
as-of instant on its last day). A rule returns one row per grid row; the engine
(core.rules.engine) turns the rows it needs into findings.

The as-of mapping is done here once for every rule: `latest` gives, for each grid row, the
row of the latest value known at its `end`; `baseline` the baseline known then
(criteria.md §0.2). Both are positions in the ward's frame
(-1: none), found for all grid rows at once by one sort, never per course or per day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from core.rules.base import EvidenceItem
from core.vocabulary.course import Course
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES

NONE = -1  # "no row" in a position array
# What a rule's judge gives: its columns by name, each an array with one value per grid row
# (a scalar stands for the same value on every row)
Columns = dict[str, Any]
END_OF_DAY = 1.0 - 1e-6  # "as of the end of day N" = N + END_OF_DAY (0.09 s before midnight)
# each frame's rows by this column, then course, then day (ties keep the course's row order):
# the rows of one analyte, kind or drug are one block, sorted by (key, day)
_SORTED_BY = {"labs": ("analyte", "day"), "observations": ("kind", "day"),
              "treatments": ("drug", "day"), "episodes": (None, "onset_day"),
              "events": (None, "day"), "missing": (None, "day")}


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = frame[column]
    if col.dtype == np.float64:
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _stacked(frames: Sequence[pd.DataFrame], name: str) -> tuple[pd.DataFrame, Table]:
    """The courses' frames of one table as one, with `key`, sorted as _SORTED_BY says, and
    its Table."""
    by, day = _SORTED_BY[name]
    used = [(k, f) for k, f in enumerate(frames) if len(f)]
    if not used:
        empty = frames[0].iloc[:0].copy() if frames else pd.DataFrame({day: []})
        empty["key"] = np.empty(0, dtype=np.int64)
        return empty.reset_index(drop=True), Table(np.empty(0, np.int64), np.empty(0), {})
    frame = used[0][1] if len(used) == 1 else pd.concat([f for _, f in used],
                                                         ignore_index=True)
    key = np.repeat([k for k, _ in used], [len(f) for _, f in used])
    days = _floats(frame, day)
    sort: list[np.ndarray] = [days, key]
    codes, uniques = (pd.factorize(frame[by], sort=True) if by is not None
                      else (np.zeros(len(frame), np.int64), []))
    sort.append(codes)
    order = np.lexsort(sort)
    if (order[1:] < order[:-1]).any():
        frame, key, days, codes = frame.take(order), key[order], days[order], codes[order]
    frame = frame.reset_index(drop=True)
    frame["key"] = key
    blocks: dict[str, tuple[int, int]] = {}
    if by is not None:
        bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
        blocks = {str(uniques[codes[a]]): (int(a), int(b))
                  for a, b in zip(bounds[:-1], bounds[1:], strict=True)}
    return frame, Table(key.astype(np.int64), days, blocks)


def asof(row_keys: np.ndarray, row_days: np.ndarray, keys: np.ndarray, ends: np.ndarray,
         strict: bool = False) -> np.ndarray:
    """For each query (keys[i], ends[i]): the position of the last row of the same key with
    day <= ends[i] (day < ends[i] if `strict`), or NONE. Rows are sorted by (key, day).

    One stable sort of rows and queries together: a running maximum of row positions then
    stands at each query on the latest row before it (of its key, or of an earlier one).
    """
    n = len(row_keys)
    if n == 0:
        return np.full(len(keys), NONE, dtype=np.int64)
    first = np.zeros(n + len(keys), dtype=np.int8)
    first[n if not strict else 0:n + len(keys) if not strict else n] = 1  # strict: a query
    order = np.lexsort((first, np.concatenate((row_days, ends)),  # before its instant's rows
                        np.concatenate((row_keys, keys))))
    pos = np.concatenate((np.arange(n), np.full(len(keys), NONE)))[order]
    running = np.maximum.accumulate(pos)
    at = np.empty(len(keys), dtype=np.int64)
    queries = order >= n
    at[order[queries] - n] = running[queries]
    found = at >= 0
    at[found & (row_keys[np.maximum(at, 0)] != keys)] = NONE
    return at


@dataclass(frozen=True, eq=False)
class Table:
    """One stacked table's (key, day) as arrays, and where each block (analyte, kind or
    drug) starts and stops."""

    key: np.ndarray
    day: np.ndarray
    blocks: dict[str, tuple[int, int]]


@dataclass(frozen=True, eq=False)
class Ward:
    """The courses' tables as one frame each (column `key` = the course's position in
    `courses`), and the grid of course-days `days` (key, day, end, until, first, last) they
    are judged on.

    `evaluating`: the last day of each course is judged as of the course's as-of instant
    (evaluate); else as of the end of that day or the as-of instant, whichever is earlier
    (replay). `first` is the floor of the course's first data day (NaN: no data).
    """

    courses: tuple[Course, ...]
    labs: pd.DataFrame
    observations: pd.DataFrame
    treatments: pd.DataFrame
    episodes: pd.DataFrame
    events: pd.DataFrame
    missing: pd.DataFrame
    days: pd.DataFrame
    evaluating: bool
    tables: dict[str, Table]  # each frame's (key, day) arrays and blocks

    @classmethod
    def of(cls, courses: Sequence[Course], evaluating: bool = True) -> Ward:
        courses = tuple(courses)
        stacked = {name: _stacked([getattr(c, name) for c in courses], name)
                   for name in _SORTED_BY}
        frames = {name: frame for name, (frame, _) in stacked.items()}
        tables = {name: table for name, (_, table) in stacked.items()}
        first, last = _data_span(tables, len(courses))
        return cls(courses=courses, **frames, days=_grid(courses, first, last, evaluating),
                   evaluating=evaluating, tables=tables)

    @cached_property
    def grid(self) -> dict[str, np.ndarray]:
        """The grid's columns as arrays (key, day, end, until, first, last)."""
        return {c: self.days[c].to_numpy() for c in self.days.columns}

    @property
    def grid_keys(self) -> np.ndarray:
        return self.grid["key"]

    @property
    def grid_ends(self) -> np.ndarray:
        return self.grid["end"]

    def __len__(self) -> int:
        return len(self.courses)

    def only(self, key: int) -> Ward:
        """The ward of course `key` alone (its key there is 0)."""
        return Ward.of([self.courses[key]], self.evaluating)

    def closing_rows(self) -> np.ndarray:
        """The last grid row of each course (the day it is evaluated on), in course order."""
        key = self.grid_keys
        return np.flatnonzero(np.r_[key[1:] != key[:-1], True]) if len(key) else key

    def replay_rows(self) -> np.ndarray:
        """Positions of the grid rows a replay reports: each course's days from day 0 (or
        its first data day, if later) to its last data day (or as-of day, if earlier)."""
        g = self.days
        day, first, last = g["day"].to_numpy(), g["first"].to_numpy(), g["last"].to_numpy()
        as_of = np.array([c.as_of_day for c in self.courses], dtype=float)[self.grid_keys]
        upper = np.fmin(last, np.floor(as_of))
        return np.flatnonzero((day >= np.fmax(first, 0.0)) & (day <= upper) & ~np.isnan(last))

    def grid_rows(self, key: int, days: Sequence[int]) -> np.ndarray:
        """Positions in `days` of course `key`'s grid rows for the ward days `days`."""
        keys = self.days["key"].to_numpy()
        start = int(np.searchsorted(keys, key, side="left"))
        stop = int(np.searchsorted(keys, key, side="right"))
        lo = int(self.days["day"].iat[start]) if stop > start else 0
        rows = np.asarray(days, dtype=np.int64) - lo + start
        if len(rows) and (rows.min() < start or rows.max() >= stop):
            raise ValueError(f"days {list(days)} are not all judged for course {key} "
                             f"(days {lo}..{lo + stop - start - 1})")
        return rows

    # --- the as-of mapping ---------------------------------------------------------------

    def rows(self, table: str, column: str, value: str) -> np.ndarray:
        """Positions of the rows of `table` whose `column` is `value` (in (key, day) order
        for the table's block column: analyte, kind or drug)."""
        if _SORTED_BY[table][0] == column:
            a, b = self.tables[table].blocks.get(value, (0, 0))
            return np.arange(a, b)
        frame: pd.DataFrame = getattr(self, table)
        return np.flatnonzero(frame[column].to_numpy(dtype=object) == value)

    def latest_in(self, table: str, column: str, value: str,
                  ends: np.ndarray | None = None) -> np.ndarray:
        """For each grid row (or each of `ends`, aligned with the grid): the position in
        `table` of the latest row of `column` == `value` with day <= its end, else NONE."""
        t = self.tables[table]
        sub = self.rows(table, column, value)
        if not len(sub):
            return np.full(len(self.grid_keys), NONE, dtype=np.int64)
        at = asof(t.key[sub], t.day[sub], self.grid_keys,
                  self.grid_ends if ends is None else ends)
        return np.where(at >= 0, sub[np.maximum(at, 0)], NONE)

    def latest(self, analyte: str, ends: np.ndarray | None = None) -> np.ndarray:
        """Per grid row: the position in `labs` of the analyte's latest value known at the
        row's end (or at `ends`), else NONE."""
        return self.latest_in("labs", "analyte", analyte, ends)

    def latest_observation(self, kind: str, ends: np.ndarray | None = None) -> np.ndarray:
        return self.latest_in("observations", "kind", kind, ends)

    def baseline(self, analyte: str) -> np.ndarray:
        """Per grid row: the position in `labs` of the analyte's baseline known at the row's
        end, else NONE: the last value on or before the lymphodepletion start day, else the
        last value on or before the infusion day (day < 1) [DESIGN §0.2]. A draw on the
        lymphodepletion start day is taken as drawn before the chemotherapy (the morning
        draw precedes fludarabine/cyclophosphamide), as car_hematotox does."""
        sub = self.rows("labs", "analyte", analyte)
        gk = self.grid_keys
        out = np.full(len(gk), NONE, dtype=np.int64)
        if not len(sub):
            return out
        keys, days = self.tables["labs"].key[sub], self.tables["labs"].day[sub]
        known = asof(keys, days, gk, self.grid_ends)  # index into sub, or NONE
        start = np.searchsorted(keys, gk, side="left")  # the course's first row in sub
        k_end = np.where(known >= 0, known - start + 1, 0)
        ld = np.array([np.nan if c.patient.lymphodepletion_day is None
                       else math.floor(c.patient.lymphodepletion_day) + 1.0
                       for c in self.courses])[gk]
        for cut in (ld, np.ones(len(gk))):  # the first cut with a value wins
            before = asof(keys, days, gk, cut, strict=True)
            k = np.minimum(np.where(before >= 0, before - start + 1, 0), k_end)
            take = (out == NONE) & (k > 0) & ~np.isnan(cut)
            out[take] = sub[(start + k - 1)[take]]
        return out

    # --- what the rows say ------------------------------------------------------------------

    @property
    def lab_days(self) -> np.ndarray:
        return self.tables["labs"].day

    @cached_property
    def lab_values(self) -> np.ndarray:
        return _floats(self.labs, "value")

    @cached_property
    def lab_limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(LLN, ULN, default) of every lab row: its own reference range, else (neither
        recorded) the catalogue's, with `default` True (criteria.md §0.2)."""
        if not len(self.labs):
            empty = np.empty(0)
            return empty, empty, np.empty(0, dtype=bool)
        low, high = _floats(self.labs, "ref_low"), _floats(self.labs, "ref_high")
        default = np.isnan(low) & np.isnan(high)
        analytes = self.labs["analyte"].to_numpy(dtype=object)
        cat_low = np.array([_nan(ANALYTES[a].ref_low) if a in ANALYTES else np.nan
                            for a in analytes])
        cat_high = np.array([_nan(ANALYTES[a].ref_high) if a in ANALYTES else np.nan
                             for a in analytes])
        return (np.where(default, cat_low, low), np.where(default, cat_high, high), default)

    @cached_property
    def _lab_text(self) -> tuple[list[Any], ...]:
        """analyte, qualifier, original value and unit, verified of every lab row, as
        Python values (None where missing): read per evidence item."""
        return _objects(self.labs, ("analyte", "qualifier", "original_value", "original_unit",
                                    "verified"))

    @cached_property
    def _observation_columns(self) -> tuple[list[Any], ...]:
        return _objects(self.observations, ("kind", "day", "value_num", "value_text"))

    def lab_evidence(self, pos: int, why: str) -> EvidenceItem:
        """The evidence item of lab row `pos`: its value (with any qualifier, e.g. "<0.1"),
        unit, original value and unit, and whether it was verified; "(default reference
        range used)" when the lab gave no range."""
        analyte, q, ov, ou, ver = (column[pos] for column in self._lab_text)
        if self.lab_limits[2][pos]:
            why += " (default reference range used)"
        value = float(self.lab_values[pos])
        return EvidenceItem(why, str(analyte), float(self.lab_days[pos]),
                            f"{q}{value:g}" if q else value, ANALYTES[analyte].unit,
                            None if ov is None else str(ov), None if ou is None else str(ou),
                            None if ver is None else bool(ver))

    def observation_evidence(self, pos: int, why: str) -> EvidenceItem:
        """The evidence item of observation row `pos`: its text, else its number (with the
        kind's unit)."""
        kind, day, num, text = (column[pos] for column in self._observation_columns)
        num = None if _missing(num) else float(num)
        text = None if text is None else str(text)
        known = OBSERVATION_KINDS.get(kind)
        return EvidenceItem(why, str(kind), float(day), text if text is not None else num,
                            known.unit if known and num is not None else None)


def _objects(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[list[Any], ...]:
    """Columns as lists of Python values, None for a missing value (or column)."""
    return tuple(frame[c].to_numpy(dtype=object, na_value=None).tolist() if c in frame
                 else [None] * len(frame) for c in columns)


def end_of_day(day: float) -> float:
    """The as-of instant that stands for the end of day `day`."""
    return math.floor(day) + END_OF_DAY


def episode_key(since_day: float | None) -> str | None:
    """Alert-episode key: stable while a condition lasts, new when it returns later."""
    return None if since_day is None else f"since-day-{int(math.floor(since_day))}"


def replay_days(course: Course) -> range:
    """The ward days a replay reports for the course: from day 0 (or its first data day, if
    later) to its last data day (or as-of day, if earlier); none without data."""
    tables = {name: _stacked([getattr(course, name)], name)[1] for name in _SPAN}
    first, last = (float(x[0]) for x in _data_span(tables, 1))
    if math.isnan(last):
        return range(0)
    top = math.floor(min(last, course.as_of_day))
    return range(max(0, math.floor(first)) if not math.isnan(first) else 0, top + 1)


def _nan(x: float | None) -> float:
    return np.nan if x is None else float(x)


def _missing(x: object) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and x != x)


_SPAN = ("labs", "observations", "treatments", "events")  # the tables with data days


def _data_span(tables: Mapping[str, Table], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each course's first data day (labs, observations, treatments) and last data day
    (those and events); NaN where there is none."""
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    for name in _SPAN:
        keys, days = tables[name].key, tables[name].day
        ok = ~np.isnan(days)
        if name != "events":
            np.minimum.at(first, keys[ok], days[ok])
        np.maximum.at(last, keys[ok], days[ok])
    first[np.isinf(first)] = np.nan
    last[np.isinf(last)] = np.nan
    return first, last


def _grid(courses: tuple[Course, ...], first: np.ndarray, last: np.ndarray,
          evaluating: bool) -> pd.DataFrame:
    """One row per course and ward day, from the course's first data day (or the day it is
    evaluated on, if earlier) to that day: floor(as_of) or, open-ended, the last data day.
    `until` is `end`, but never past the end of the row's day (an open-ended course's last
    day ends then, not at infinity: a window up to it needs a finite end). `first` and
    `last` are the floors of the course's first and last data days (NaN: no data)."""
    as_of = np.array([c.as_of_day for c in courses], dtype=float)
    fin = np.isfinite(as_of)
    top = np.where(fin, np.floor(np.where(fin, as_of, 0)),
                   np.where(np.isnan(last), 0, np.floor(np.nan_to_num(last))))
    # a course without data days is judged from day 0 (the first day a replay reports)
    lo = np.minimum(np.where(np.isnan(first), 0, np.floor(np.nan_to_num(first))), top)
    counts = (top - lo + 1).astype(np.int64)
    key = np.repeat(np.arange(len(courses)), counts)
    day = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts)
                                                                       - counts, counts))
    end = np.minimum(day + END_OF_DAY, as_of[key])
    if evaluating and len(key):
        closing = np.r_[key[1:] != key[:-1], True]
        end[closing] = as_of[key[closing]]
    return pd.DataFrame({"key": key, "day": day.astype(np.int64), "end": end,
                         "until": np.minimum(day + END_OF_DAY, end),
                         "first": np.floor(first)[key], "last": np.floor(last)[key]})


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
    if not n:
        return np.empty(0)
    # a stretch is the rows from a fresh row to the next; its run starts at its first met row
    start = np.minimum.reduceat(np.where(met, np.arange(n), n), np.flatnonzero(fresh))
    run = start[np.cumsum(fresh) - 1]
    return np.where(met, day[np.minimum(run, n - 1)], np.nan).astype(float)

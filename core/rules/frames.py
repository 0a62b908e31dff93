"""A ward's courses as whole frames, and the course-days every rule is judged on.

A rule judged by columns (RuleSpec.judge) reads a `Ward`: each of the courses' tables once
(core.rules.tables.Table: every row tagged with its course's position, `key`), and `days`,
the grid of course-days:
one row per course and ward day from the course's first data day to the day it is evaluated
on, with `end`, the instant that day is judged as of (the end of the day, or the course's
as-of instant on its last day). A rule returns one row per grid row; the engine
(core.rules.engine) turns the rows it needs into findings. Evaluate and the backtest make
the ward from the loader's frames as read (`Ward.of_frames`, one frame per table for every
patient); `Ward.of` stacks the frames of courses made one by one (pages, tests).

The as-of mapping is done here once for every rule: `latest` gives, for each grid row, the
row of the latest value known at its `end`; `baseline` the baseline known then
(criteria.md §0.2). Both are positions in the ward's frame
(-1: none), found for all grid rows at once by one sort, never per course or per day.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from core.rules.base import EvidenceItem
from core.rules.tables import NONE, SORTED_BY, Table, asof, count_until
from core.vocabulary.course import Course, PatientInfo
from core.vocabulary.observations import OBSERVATION_KINDS
from core.vocabulary.units import ANALYTES

# What a rule's judge gives: its columns by name, each an array with one value per grid row
# (a scalar stands for the same value on every row)
Columns = dict[str, Any]
END_OF_DAY = 1.0 - 1e-6  # "as of the end of day N" = N + END_OF_DAY (0.09 s before midnight)


@dataclass(frozen=True, eq=False)
class Ward:
    """The courses' tables, each one frame (Table; column `key` = the course's position in
    `patients`), and the grid of course-days `days` (key, day, end, until, first, last) they
    are judged on.

    `evaluating`: the last day of each course is judged as of the course's as-of instant
    (evaluate); else as of the end of that day or the as-of instant, whichever is earlier
    (replay). `first` is the floor of the course's first data day (NaN: no data).
    """

    patients: tuple[PatientInfo, ...]
    as_of_days: np.ndarray  # each course's as-of day (inf: open-ended)
    labs: Table
    observations: Table
    treatments: Table
    episodes: Table
    events: Table
    missing: Table
    days: dict[str, np.ndarray]  # the grid's columns, one value per course-day
    evaluating: bool
    tz: str = "UTC"

    @classmethod
    def of(cls, courses: Sequence[Course], evaluating: bool = True) -> Ward:
        """The ward of these courses."""
        return cls._of_tables(
            [c.patient for c in courses], [c.as_of_day for c in courses],
            {name: Table.stacked([getattr(c, name) for c in courses], name)
             for name in SORTED_BY}, evaluating, courses[0].tz if courses else "UTC")

    @classmethod
    def of_frames(cls, patients: Sequence[PatientInfo], as_of_days: Sequence[float],
                  frames: Mapping[str, tuple[pd.DataFrame, np.ndarray]],
                  evaluating: bool = True, tz: str = "UTC") -> Ward:
        """The ward of these patients (as of these days) from each table's rows read whole,
        with each row's patient (a position in `patients`): the loader's frames
        (core.store.loading.load_ward), never split per patient."""
        return cls._of_tables(patients, as_of_days, {
            name: Table(*frames[name], name) for name in SORTED_BY}, evaluating, tz)

    @classmethod
    def _of_tables(cls, patients: Sequence[PatientInfo], as_of_days: Sequence[float],
                   tables: Mapping[str, Table], evaluating: bool, tz: str) -> Ward:
        as_of = np.asarray(as_of_days, dtype=float)
        first, last = _data_span(tables, len(patients))
        return cls(patients=tuple(patients), as_of_days=as_of,
                   **{name: tables[name] for name in SORTED_BY},
                   days=_grid(as_of, first, last, evaluating), evaluating=evaluating, tz=tz)

    def __len__(self) -> int:
        return len(self.patients)

    @property
    def size(self) -> int:
        """The number of course-days in the grid (the rows a rule returns)."""
        return len(self.days["key"])

    def only(self, key: int) -> Ward:
        """The ward of course `key` alone (its key there is 0), on its rows of the grid."""
        parts = {name: getattr(self, name).frame_of(key) for name in SORTED_BY}
        one = Ward.of_frames([self.patients[key]], [self.as_of_days[key]], {
            name: (part, np.zeros(len(part), np.int64)) for name, part in parts.items()},
            self.evaluating, self.tz)
        rows = self.days["key"] == key
        return replace(one, days={**{c: v[rows] for c, v in self.days.items()},
                                  "key": np.zeros(rows.sum(), np.int64)})

    def closing_rows(self) -> np.ndarray:
        """The last grid row of each course (the day it is evaluated on), in course order."""
        return np.searchsorted(self.days["key"], np.arange(len(self)), side="right") - 1

    def closing(self) -> Ward:
        """The ward on its closing rows alone (each course's last day)."""
        rows = self.closing_rows()
        return replace(self, days={c: v[rows] for c, v in self.days.items()})

    def replay_rows(self) -> np.ndarray:
        """Positions of the grid rows a replay reports: each course's days from day 0 (or
        its first data day, if later) to its last data day (or as-of day, if earlier)."""
        day, first, last = self.days["day"], self.days["first"], self.days["last"]
        as_of = self.as_of_days[self.days["key"]]
        upper = np.fmin(last, np.floor(as_of))
        return np.flatnonzero((day >= np.fmax(first, 0.0)) & (day <= upper) & ~np.isnan(last))

    def now(self) -> np.ndarray:
        """Per grid row, the course's "now": the row's `end`, or for a course evaluated
        without an as-of instant (end = inf) its latest day with any data, recorded reasons
        for missing results included; -inf for such a course without data."""
        end = self.days["end"]
        open_ended = np.isposinf(end)
        latest = np.full(len(self), -np.inf)
        if open_ended.any():
            for table in (self.labs, self.observations, self.treatments, self.events,
                          self.missing):
                np.fmax.at(latest, table.key, table.day)  # fmax: a NaN day is skipped
        return np.where(open_ended, latest[self.days["key"]], end)

    # --- the as-of mapping ---------------------------------------------------------------

    def rows(self, table: str, column: str, value: str) -> np.ndarray:
        """Positions of the rows of `table` whose `column` is `value` (in (key, day) order
        for the table's block column: analyte, kind or drug)."""
        t: Table = getattr(self, table)
        if SORTED_BY[table][0] == column:
            a, b = t.blocks.get(value, (0, 0))
            return np.arange(a, b)
        return np.flatnonzero(t[column] == value)

    def latest_in(self, table: str, column: str, value: str,
                  ends: np.ndarray | None = None) -> np.ndarray:
        """For each grid row (or each of `ends`, aligned with the grid): the position in
        `table` of the latest row of `column` == `value` with day <= its end, else NONE."""
        t: Table = getattr(self, table)
        sub = self.rows(table, column, value)
        if not len(sub):
            return np.full(self.size if ends is None else len(ends), NONE, dtype=np.int64)
        at = asof(t.key[sub], t.day[sub], self.days["key"],
                  self.days["end"] if ends is None else ends)
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
        gk = self.days["key"]
        out = np.full(len(gk), NONE, dtype=np.int64)
        keys, days = self.labs.key[sub], self.labs.day[sub]
        start = np.searchsorted(keys, gk, side="left")  # the course's first row in sub
        known = count_until(keys, days, gk, self.days["end"])  # after the rows known
        ld = np.floor([_nan(p.lymphodepletion_day) for p in self.patients])[gk] + 1.0
        for cut in (ld, np.ones(len(gk))):  # the first cut with a value wins
            k = np.minimum(count_until(keys, days, gk, cut, strict=True), known)
            take = (out == NONE) & (k > start) & ~np.isnan(cut)
            out[take] = sub[(k - 1)[take]]
        return out

    def first_dose(self, drugs: Sequence[str], start: np.ndarray,
                   end: np.ndarray) -> np.ndarray:
        """Per grid row: the position in `treatments` of the first dose of any of `drugs`
        given from day `start` (NaN: none asked) to `end`, else NONE; doses of one day in the
        order of their drug names."""
        table, gk = self.treatments, self.days["key"]
        rows = np.concatenate([self.rows("treatments", "drug", d) for d in drugs])
        out = np.full(self.size, NONE, dtype=np.int64)
        if not len(rows):
            return out
        rows = rows[np.lexsort((table["drug"][rows], table.day[rows], table.key[rows]))]
        keys, days = table.key[rows], table.day[rows]
        asked = ~np.isnan(start)
        nxt = count_until(keys, days, gk, np.where(asked, start, np.inf), strict=True)
        ok = asked & (nxt < len(rows))
        j = np.minimum(nxt, len(rows) - 1)
        ok &= (keys[j] == gk) & (days[j] <= end)
        out[ok] = rows[j[ok]]
        return out

    # --- what the rows say ------------------------------------------------------------------

    @cached_property
    def lab_limits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(LLN, ULN, default) of every lab row: its own reference range, else (neither
        recorded) the catalogue's, with `default` True (criteria.md §0.2)."""
        low, high = self.labs["ref_low"].copy(), self.labs["ref_high"].copy()
        default = np.isnan(low) & np.isnan(high)
        for analyte, (a, b) in self.labs.blocks.items():
            known = ANALYTES.get(analyte)
            if known is not None:
                low[a:b][default[a:b]] = _nan(known.ref_low)
                high[a:b][default[a:b]] = _nan(known.ref_high)
        return low, high, default

    def lab_evidence(self, pos: int, why: str) -> EvidenceItem:
        """The evidence item of lab row `pos`: its value, unit and recorded fields (else left
        to record: a read "cited", core.monitoring.evaluation); "(default reference range
        used)" when the lab gave no range."""
        labs = self.labs
        analyte = str(labs["analyte"][pos])
        if self.lab_limits[2][pos]:
            why += " (default reference range used)"
        item = EvidenceItem(why, analyte, float(labs.day[pos]), float(labs["value"][pos]),
                            ANALYTES[analyte].unit, lab=pos)
        if "qualifier" in labs.columns:
            item.record(*(labs[c][pos] for c in RECORDED))
        return item

    def observation_evidence(self, pos: int, why: str) -> EvidenceItem:
        """The evidence item of observation row `pos`: its text, else its number (with the
        kind's unit)."""
        obs = self.observations
        kind, num, text = obs["kind"][pos], obs["value_num"][pos], obs.get("value_text")[pos]
        num = None if math.isnan(num) else float(num)
        text = None if text is None else str(text)
        known = OBSERVATION_KINDS.get(kind)
        return EvidenceItem(why, str(kind), float(obs.day[pos]),
                            text if text is not None else num,
                            known.unit if known and num is not None else None)


def episode_key(since_day: float | None) -> str | None:
    """Alert-episode key: stable while a condition lasts, new when it returns later."""
    return None if since_day is None else f"since-day-{int(math.floor(since_day))}"


def _nan(x: float | None) -> float:
    return np.nan if x is None else float(x)


RECORDED = ("qualifier", "original_value", "original_unit", "verified")  # EvidenceItem.record
_SPAN = ("labs", "observations", "treatments", "events")  # the tables with data days


def _data_span(tables: Mapping[str, Table], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each course's first data day (labs, observations, treatments) and last data day
    (those and events); NaN where there is none."""
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    for name in _SPAN:
        keys, days = tables[name].key, tables[name].day
        if name != "events":
            np.fmin.at(first, keys, days)  # fmin, fmax: a NaN day is skipped
        np.fmax.at(last, keys, days)
    return first, last


def _grid(as_of: np.ndarray, first: np.ndarray, last: np.ndarray,
          evaluating: bool) -> dict[str, np.ndarray]:
    """One row per course and ward day, from the course's first data day (or the day it is
    evaluated on, if earlier) to that day: floor(as_of) or, open-ended, the last data day.
    `until` is `end`, but never past the end of the row's day (an open-ended course's last
    day ends then, not at infinity: a window up to it needs a finite end). `first` and
    `last` are the floors of the course's first and last data days (NaN: no data)."""
    top = np.floor(np.where(np.isfinite(as_of), as_of, np.nan_to_num(last)))
    # a course without data days is judged from day 0 (the first day a replay reports)
    lo = np.minimum(np.floor(np.nan_to_num(first)), top)
    counts = (top - lo + 1).astype(np.int64)
    stop = np.cumsum(counts)  # each course's rows end before its stop (counts >= 1)
    key = np.repeat(np.arange(len(as_of)), counts)
    day = np.repeat(lo, counts) + (np.arange(counts.sum()) - np.repeat(stop - counts, counts))
    end = np.minimum(day + END_OF_DAY, as_of[key])
    if evaluating:  # each course's last row, judged as of its as-of instant
        end[stop - 1] = as_of
    return {"key": key, "day": day.astype(np.int64), "end": end,
            "until": np.minimum(day + END_OF_DAY, end),
            "first": np.floor(first)[key], "last": np.floor(last)[key]}

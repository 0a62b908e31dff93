"""The rows of one analyte or observation kind, read for every grid row at once.

A `Series` holds the rows of one analyte (ward.labs) or observation kind (ward.observations)
in course and day order, a course's rows contiguous. Its readers answer for many instants
at once, never per course or per day:
- per grid row: `latest`, the latest row known at the row's as-of instant (the grid's
  `until`), and `first_from`, the first row from a day on;
- per instant (a course key and an as-of instant, e.g. a grid row's `end`): `window`, the
  rows of a range of days known then (core.rules.tables.count_until: the index after them);
- for positions found so: `first_of_day`, `values`, `texts`, `frame_pos`, and `first_max`,
  the first highest value in ranges of them (a window, a day, days 0-5).

Positions are into the series (NONE = -1); `frame_pos` maps them to the ward's frame, whose
rows make the evidence. Rows without a day (NaN) stay in a series; `dated()` drops them (the
haematotoxicity rules count dated results only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.rules.frames import Ward
from core.rules.tables import NONE, asof, count_until


@dataclass(frozen=True)
class Series:
    """The rows of one analyte or observation kind: `pos` their positions in the ward's
    frame, `key` their course, `day`, `value` (a lab value or an observation's number; NaN
    when none) and `text` (an observation's text; None when none)."""

    ward: Ward
    pos: np.ndarray
    key: np.ndarray
    day: np.ndarray
    value: np.ndarray
    text: np.ndarray

    @classmethod
    def lab(cls, ward: Ward, analyte: str) -> Series:
        pos = ward.rows("labs", "analyte", analyte)
        table = ward.labs
        return cls(ward, pos, table.key[pos], table.day[pos], table["value"][pos],
                   np.full(len(pos), None, dtype=object))

    @classmethod
    def observation(cls, ward: Ward, kind: str) -> Series:
        pos = ward.rows("observations", "kind", kind)
        table = ward.observations
        return cls(ward, pos, table.key[pos], table.day[pos], table["value_num"][pos],
                   table.get("value_text")[pos])

    def dated(self) -> Series:
        """The rows that have a day."""
        ok = ~np.isnan(self.day)
        return Series(self.ward, self.pos[ok], self.key[ok], self.day[ok], self.value[ok],
                      self.text[ok])

    def latest(self, ends: np.ndarray | None = None) -> np.ndarray:
        """Per grid row: the latest row with day <= the row's as-of instant (or `ends`),
        else NONE."""
        return asof(self.key, self.day, self.ward.days["key"],
                    self.ward.days["until"] if ends is None else ends)

    def first_from(self, start: np.ndarray | float, keys: np.ndarray | None = None
                   ) -> np.ndarray:
        """Per grid row (or course of `keys`): the first row of its course with day >=
        `start` (a position past the course's rows when there is none)."""
        keys = self.ward.days["key"] if keys is None else keys
        return count_until(self.key, self.day, keys, start, strict=True)

    def window(self, keys: np.ndarray, first_day: np.ndarray | float, last_day: np.ndarray,
               as_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[i0, i1) per instant: the course's rows from day first_day on, of days up to
        last_day (whole days), known at as_of."""
        i0 = self.first_from(first_day, keys)
        before_next_day = np.nextafter(np.floor(last_day) + 1.0, -np.inf)
        known = count_until(self.key, self.day, keys, np.minimum(as_of, before_next_day))
        return i0, np.maximum(i0, known)

    def first_of_day(self, i: np.ndarray) -> np.ndarray:
        """For rows `i` (NONE kept): the first row of the same course and ward day."""
        day = np.floor(self.day)
        fresh = np.r_[True, (self.key[1:] != self.key[:-1]) | (day[1:] != day[:-1])]
        first = np.maximum.accumulate(np.where(fresh, np.arange(len(day)), 0))
        return np.where(i != NONE, first[np.maximum(i, 0)] if len(first) else NONE, NONE)

    def values(self, i: np.ndarray) -> np.ndarray:
        """The value of rows `i` (NaN for NONE)."""
        return take(self.value, i, np.nan)

    def texts(self, i: np.ndarray) -> np.ndarray:
        """The text of rows `i` (None for NONE)."""
        return take(self.text, i, None)

    def frame_pos(self, i: np.ndarray) -> np.ndarray:
        """The ward frame positions of rows `i` (NONE kept), for the evidence."""
        return take(self.pos, i, NONE)


def take(column: np.ndarray, i: np.ndarray, none: object) -> np.ndarray:
    """column[i] for each of the positions `i`, `none` where one is NONE."""
    out = np.full(len(i), none, dtype=column.dtype)
    ok = i != NONE
    out[ok] = column[i[ok]]
    return out


def first_max(keys: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """For each range lo..hi (inclusive; empty where hi < lo or hi is NONE): the position of
    the first highest of `keys` in it, NaN keys skipped; NONE where there is none.

    By one maximum per range (np.maximum.reduceat) over a code that orders the keys by
    value, then earlier first."""
    n = len(keys)
    out = np.full(len(lo), NONE, dtype=np.int64)
    ok = (hi != NONE) & (hi >= lo)
    if not n or not ok.any():
        return out
    number = ~np.isnan(keys)
    rank = np.full(n, -1, dtype=np.int64)
    rank[number] = np.unique(keys[number], return_inverse=True)[1]
    code = np.r_[rank * n + (n - 1 - np.arange(n)), 0]  # a sentinel: a range may end at n
    best = np.maximum.reduceat(code, np.c_[lo[ok], hi[ok] + 1].ravel())[::2]
    out[ok] = np.where(best >= 0, n - 1 - best % n, NONE)
    return out

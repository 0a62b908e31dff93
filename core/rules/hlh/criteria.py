"""What the HLH-type rules share: tri-state criteria over a ward's grid, and the readers of
the values that decide them.

A criterion is judged on every grid row (course-day) of the ward at once, as an array of
1.0 (met), 0.0 (not met) or NaN (not evaluable: its input is missing), criteria.md §0.2.
`tri` makes one from a test of a value, and `n_of`, `any_of`, `all_of` combine them, as
"5 of 8", "liver counts once", "entry and 2 of 4" say. `status` names them.

`Series` reads the rows of one analyte or observation kind: the latest known at each row's
as-of instant (the grid's `until`), the first from a day on, and `first_max`, the position
of the first highest value in a range of them (a window, a day, days 0-5). Positions are into
the series (NONE = -1); `.pos` maps them to the ward's frame, whose rows make the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.rules.base import Status
from core.rules.frames import NONE, Ward, asof
from core.vocabulary.units import Evidence

C2, U, D = Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
_STATUS = {1.0: Status.MET, 0.0: Status.NOT_MET}  # NaN: not evaluable


# --- tri-state criteria ---------------------------------------------------------------------


def tri(known: np.ndarray, met: np.ndarray) -> np.ndarray:
    """A criterion per row: met where `met`, not met where its input is `known` but not met,
    not evaluable (NaN) where it is not known."""
    return np.where(known, np.asarray(met, dtype=float), np.nan)


def n_of(need: float, *criteria: np.ndarray) -> np.ndarray:
    """Met where at least `need` of the criteria are met; not met where even the not
    evaluable ones could not make `need`; else not evaluable."""
    met = sum(c == 1.0 for c in criteria)
    open_ = sum(np.isnan(c) for c in criteria)
    return np.where(met >= need, 1.0, np.where(met + open_ < need, 0.0, np.nan))


def any_of(*criteria: np.ndarray) -> np.ndarray:
    """Met where any is met; not met where none is but one is evaluated; else not evaluable."""
    met = np.logical_or.reduce([c == 1.0 for c in criteria])
    known = np.logical_or.reduce([~np.isnan(c) for c in criteria])
    return tri(known, met)


def all_of(*criteria: np.ndarray) -> np.ndarray:
    """Met where all are met; not met where any is not met; else not evaluable."""
    met = np.logical_and.reduce([c == 1.0 for c in criteria])
    failed = np.logical_or.reduce([c == 0.0 for c in criteria])
    return np.where(met, 1.0, np.where(failed, 0.0, np.nan))


def status(x: float) -> Status:
    """The Status of one tri-state value."""
    return _STATUS.get(x, Status.NOT_EVALUABLE)


def statuses(x: np.ndarray) -> np.ndarray:
    """The Status value of each tri-state value (the judge's `status` column)."""
    return np.where(x == 1.0, Status.MET.value, np.where(x == 0.0, Status.NOT_MET.value,
                                                         Status.NOT_EVALUABLE.value))


# --- the series a criterion reads -----------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """The rows of one analyte (in ward.labs) or observation kind (in ward.observations), in
    course and day order: `pos` their positions in the frame, `key` their course, `day`,
    `value` (a lab value or an observation's number; NaN when none) and `text` (an
    observation's text; None when none)."""

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

    def latest(self, ends: np.ndarray | None = None) -> np.ndarray:
        """Per grid row: the latest row with day <= the row's as-of instant (or `ends`),
        else NONE."""
        return asof(self.key, self.day, self.ward.days["key"],
                    self.ward.days["until"] if ends is None else ends)

    def first_from(self, start: np.ndarray | float) -> np.ndarray:
        """Per grid row: the first row of its course with day >= `start` (a position past the
        course's rows when there is none)."""
        keys = self.ward.days["key"]
        before = asof(self.key, self.day, keys, np.broadcast_to(
            np.asarray(start, dtype=float), keys.shape), strict=True)
        return np.where(before != NONE, before + 1,
                        np.searchsorted(self.key, keys, side="left"))

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

"""One of a ward's tables, read by the rules as arrays, and the as-of search over its rows.

A `Table` holds the rows of every course of a ward for one clinical table (labs,
observations, treatments, episodes, events, missing-result reasons), each row tagged with
its course's position (`key`) and sorted so that the rows of one analyte, kind or drug are
one block in (course, day) order. `asof` finds, for many instants at once, the last row of
a course known then, `count_until` the index after it. core.rules.frames builds the ward and
its grid of course-days on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

NONE = -1  # "no row" in a position array
_LARGEST = float(np.finfo(np.float64).max)
# each frame's rows by this column, then course, then day (ties keep the course's row order):
# the rows of one analyte, kind or drug are one block, sorted by (key, day)
SORTED_BY = {"labs": ("analyte", "day"), "observations": ("kind", "day"),
             "treatments": ("drug", "day"), "episodes": (None, "onset_day"),
             "events": (None, "day"), "missing": (None, "day")}
# columns read as numbers whatever their dtype (an empty course's frames are of objects)
_NUMBERS = frozenset({"day", "value", "ref_low", "ref_high", "value_num", "onset_day",
                      "resolved_day", "dose"})


def _floats(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = frame[column]
    if col.dtype == np.float64:
        return col.to_numpy()
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _array(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as numpy: numbers as floats (NaN: missing), text and mixed values as
    objects (None: missing)."""
    if column in _NUMBERS:
        return _floats(frame, column)
    col = frame[column]
    if col.dtype.kind in "biufM":
        return col.to_numpy()
    return col.to_numpy(dtype=object, na_value=None)


class Table:
    """One of the ward's tables: its courses' rows in one frame, with `key` (the course's
    position), sorted as SORTED_BY says, so that the rows of one analyte, kind or drug are
    one block (`blocks`), sorted by (key, day). `table[column]` is a column as numpy
    (_array), made when first read and read-only; `day` is the table's day column as
    floats."""

    def __init__(self, frame: pd.DataFrame, key: np.ndarray, name: str) -> None:
        """`frame`: the rows of every course (each course's in the order it keeps them),
        `key` each row's course."""
        by, day = SORTED_BY[name]
        self._frame, self.name = frame, name
        key = np.asarray(key, dtype=np.int64)
        days = _floats(frame, day) if len(frame) else np.empty(0)
        codes, uniques = (pd.factorize(frame[by], sort=True) if by is not None and len(frame)
                          else (np.zeros(len(key), np.int64), []))
        order = np.lexsort((days, key, codes))
        self._order = order if (order[1:] < order[:-1]).any() else None
        if self._order is not None:
            key, days, codes = key[order], days[order], codes[order]
        self.key, self.day = _read_only(key), _read_only(days)
        self._columns: dict[str, np.ndarray] = {"key": self.key, day: self.day}
        self.columns = frozenset([*frame.columns, "key"])
        bounds = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1], True])
        self.blocks = {} if by is None or not len(frame) else {
            str(uniques[codes[a]]): (int(a), int(b))
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)}

    @classmethod
    def stacked(cls, frames: Sequence[pd.DataFrame], name: str) -> Table:
        """The table of these courses' frames (the course's position is its key)."""
        used = [f for f in frames if len(f)]
        frame = (used[0] if len(used) == 1 else pd.concat(used, ignore_index=True) if used
                 else frames[0] if frames else pd.DataFrame({SORTED_BY[name][1]: []}))
        key = np.repeat(np.arange(len(frames)), [len(f) for f in frames])
        return cls(frame, key, name)

    def frame_of(self, key: int) -> pd.DataFrame:
        """Course `key`'s rows as a frame of its own, in the order the course keeps them."""
        rows = np.flatnonzero(self.key == key)
        if self._order is not None:
            rows = np.sort(self._order[rows])
        part = self._frame.iloc[rows]
        part.index = pd.RangeIndex(len(part))
        return part

    def __len__(self) -> int:
        return len(self.key)

    def get(self, column: str) -> np.ndarray:
        """The column, or None on every row if the table has no such column."""
        if column in self.columns:
            return self[column]
        return np.full(len(self), None, dtype=object)

    def __getitem__(self, column: str) -> np.ndarray:
        found = self._columns.get(column)
        if found is None:
            found = _array(self._frame, column)
            found = self._columns[column] = _read_only(
                found if self._order is None else found[self._order])
        return found


def _read_only(column: np.ndarray) -> np.ndarray:
    """The column, locked: every rule reads the same arrays, so none may write into them."""
    column.flags.writeable = False
    return column


def asof(row_keys: np.ndarray, row_days: np.ndarray, keys: np.ndarray,
         ends: np.ndarray | float, strict: bool = False) -> np.ndarray:
    """For each query (keys[i], ends[i]): the position of the last row of the same key with
    day <= ends[i] (day < ends[i] if `strict`), or NONE; `ends` may be one number for every
    query. Rows are sorted by (key, day), a day without a value (NaN) last.

    One binary search of each query among the rows, as (key, day) pairs: numpy orders
    complex numbers by real part, then imaginary part. NaN does not order in a search, so a
    NaN day stands as +inf, a query's NaN end as +inf (after every row of its key) and its
    +inf end as the largest float (before the NaN days, as in the rows' order).
    """
    n = len(row_keys)
    if n == 0:
        return np.full(len(keys), NONE, dtype=np.int64)
    rows = np.empty(n, dtype=np.complex128)
    rows.real, rows.imag = row_keys, np.where(np.isnan(row_days), np.inf, row_days)
    ends = np.asarray(ends, dtype=float)
    queries = np.empty(len(keys), dtype=np.complex128)
    queries.real = keys
    queries.imag = np.where(np.isnan(ends), np.inf, np.where(ends == np.inf, _LARGEST, ends))
    at = np.searchsorted(rows, queries, side="left" if strict else "right").astype(np.int64)
    at -= 1
    at[(at >= 0) & (row_keys[np.maximum(at, 0)] != keys)] = NONE
    return at


def count_until(row_keys: np.ndarray, row_days: np.ndarray, keys: np.ndarray,
                ends: np.ndarray | float, strict: bool = False) -> np.ndarray:
    """For each query (keys[i], ends[i]): the index after the last row of the same key with
    day <= ends[i] (< if `strict`), as `asof`; the key's first row when there is none."""
    at = asof(row_keys, row_days, keys, ends, strict=strict)
    return np.where(at >= 0, at + 1, np.searchsorted(row_keys, keys, side="left"))

"""The validator's machinery: the context, one input frame read once, and per-value kernels.

A check is a numpy boolean array over the frame's rows; `Rows.flag` records an error for each
row where it is true and returns at once when none is. Each column's values and blank mask are
computed once per call. Per-value work (a lookup, a lower-casing) runs as a plain loop on a
small frame (an HL7 message, a nurse's panel) and once per distinct value on a large one (a
CSV file), through the same function, so both give the same answer.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from core.capture.importing.reading import RowError

try:  # pandas keeps `str` columns in pyarrow when it is installed (streamlit brings it)
    import pyarrow as pa
except ImportError:  # pragma: no cover - then pandas keeps them as Python strings
    pa = None

# frames up to this many rows take the plain loops; pandas' per-call machinery costs more
# than the values themselves there
SMALL = 512
NAN = float("nan")

Message = Callable[[int], str] | str
STR = pd.Series([""], dtype="str").dtype  # pandas' text dtype (missing cells NaN)


@dataclass
class Context:
    tz: str
    now: datetime  # UTC
    # study ID -> (patient primary key, infusion date)
    patients: dict[str, tuple[int, date]]
    confirm_unusual: bool = False
    errors: list[RowError] = field(default_factory=list)
    # what the message for an unconfirmed soft-limit value tells the user to do
    confirm_hint: str = "import again with 'confirm unusual values' (--confirm-unusual)"
    # the site code map's entries for any system (core.capture.codemap.CodeMap.local_codes): a
    # local code in a CSV's analyte, kind or drug column -> analyte, observation kind, drug
    local_codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def local(self, target_kind: str, raw: pd.Series) -> pd.Series:
        """The site map's reading of raw codes (NaN where the map has none)."""
        return raw.map(self.local_codes.get(target_kind, {}))

    def add(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str,
            message: Callable[[pd.Series], str] | str, value_col: str | None = None) -> None:
        """Record an error for every row where `mask` is true (`message` may read the row)."""
        rows = Rows(frame)
        hits = rows.mask(mask)
        if not hits.any():
            return
        if callable(message):
            call = message
            rows.flag(self, hits, column, lambda i: call(frame.iloc[i]), value_col)
        else:
            rows.flag(self, hits, column, message, value_col)


def is_missing(v: object) -> bool:
    """pandas' isna of one cell."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float):
        return v != v
    return isinstance(v, np.generic) and bool(pd.isna(v))


def _blank_cell(v: object) -> bool:
    if type(v) is str:
        return not v.strip()
    return is_missing(v) or not str(v).strip()


class Rows:
    """One input frame, read once: columns' values and blank masks are cached on first use."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)
        self.small = self.n <= SMALL
        self.columns = frame.columns
        self._series: dict[str, pd.Series] = {}
        self._values: dict[str, np.ndarray] = {}
        self._blank: dict[str, np.ndarray] = {}

    def has(self, name: str) -> bool:
        return name in self.columns

    def column(self, name: str) -> pd.Series:
        """The frame's column (a missing one: KeyError, as `frame[name]`)."""
        out = self._series.get(name)
        if out is None:
            out = self.frame[name]
            self._series[name] = out
        return out

    def series(self, name: str) -> pd.Series:
        """The column, or a column of empty strings when the frame has none."""
        if name in self.columns:
            return self.column(name)
        return pd.Series("", index=self.frame.index)

    def values(self, name: str) -> np.ndarray:
        """The column's cells as an object array (a missing required column: KeyError)."""
        out = self._values.get(name)
        if out is None:
            out = self.column(name).to_numpy(dtype=object)
            self._values[name] = out
        return out

    def opt(self, name: str) -> np.ndarray:
        """Like `values`, with empty strings for a column the frame does not have."""
        if name in self.columns:
            return self.values(name)
        out = self._values.get(name)
        if out is None:
            out = np.full(self.n, "", dtype=object)
            self._values[name] = out
        return out

    def blank(self, name: str) -> np.ndarray:
        """Rows whose cell is missing or only whitespace (all rows for an absent column)."""
        out = self._blank.get(name)
        if out is None:
            if name not in self.columns:
                out = np.ones(self.n, dtype=bool)
            elif self.small:
                out = np.fromiter(map(_blank_cell, self.values(name)), bool, self.n)
            else:
                s = self.column(name)
                out = (s.fillna("").astype(str).str.strip() == "").to_numpy(dtype=bool)
            self._blank[name] = out
        return out

    def mask(self, mask: pd.Series | np.ndarray) -> np.ndarray:
        """A boolean array over the rows from a Series (aligned on the index) or an array."""
        if isinstance(mask, pd.Series):
            if not mask.index.equals(self.frame.index):
                mask = mask.reindex(self.frame.index)
            mask = mask.to_numpy()
        arr = np.asarray(mask)
        if arr.dtype != bool:
            arr = np.array([not is_missing(v) and bool(v) for v in arr], dtype=bool)
        return arr

    def row(self, i: int) -> int:
        """The spreadsheet row of position `i` (header = row 1)."""
        return int(self.frame.index[i]) + 2

    def flag(self, ctx: Context, hits: np.ndarray, column: str, message: Message,
             value_col: str | None = None) -> None:
        """Record an error for every row where `hits` is true; `message` may take the row's
        position."""
        if not hits.any():
            return
        vcol = value_col or column
        cells = self.values(vcol) if vcol in self.columns else None
        for i in np.flatnonzero(hits).tolist():
            text = message(i) if callable(message) else message
            value = "" if cells is None or is_missing(cells[i]) else str(cells[i])
            ctx.errors.append(RowError(self.row(i), column, value, text))


def each(values: np.ndarray, fn: Callable[[Any], Any], small: bool) -> np.ndarray:
    """`fn` of every cell (an object array): cell by cell on a small frame, once per distinct
    value on a large one."""
    return each_of(values, lambda v: (fn(v),), 1, small)[0]


def each_of(values: np.ndarray, fn: Callable[[Any], tuple[Any, ...]], count: int,
            small: bool) -> list[np.ndarray]:
    """Like `each` for a `fn` giving `count` results per cell: one object array per result."""
    if small:
        done = [fn(v) for v in values]
        codes = None
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        done = [fn(u) for u in uniques]
    outs = []
    for j in range(count):
        part = np.empty(len(done), dtype=object)
        part[:] = [d[j] for d in done]
        outs.append(part if codes is None else part[codes])
    return outs


def lookup(values: np.ndarray, table: dict[Any, Any], small: bool) -> np.ndarray:
    """`table.get` of every cell (None where the table has no entry), like Series.map(dict)."""
    get = table.get

    def one(v: Hashable) -> Any:
        return None if is_missing(v) else get(v)

    return each(values, one, small)


def strop(dtype: Any, method: str, *args: str) -> Callable[[object], object]:
    """One cell through `Series.str.<method>(*args)` of a column of `dtype`: plain Python for
    ASCII text (the same result), pandas itself for any other text; NaN for a missing cell."""
    py = getattr(str, method)

    def one(v: object) -> object:
        if type(v) is not str:
            return NAN if is_missing(v) else _through_pandas(dtype, method, args, v)
        if v.isascii():
            return py(v, *args)
        return _through_pandas(dtype, method, args, v)

    return one


def _through_pandas(dtype: Any, method: str, args: tuple[str, ...], v: object) -> object:
    s = pd.Series([v], dtype=dtype)
    return getattr(s.str, method)(*args).iloc[0]


def present(values: np.ndarray) -> np.ndarray:
    """Rows whose cell (None, NaN or a value) is not missing."""
    return ~pd.isna(values)


def text(values: list[Any] | np.ndarray) -> Any:
    """A `str` column (an extension array) of text cells, None or NaN where missing."""
    if pa is not None and getattr(STR, "storage", None) == "pyarrow":
        try:
            arrow = pa.array(values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
        else:
            return pd.arrays.ArrowStringArray(arrow, dtype=STR)
    return pd.array(values, dtype=STR)


def obj(items: list[Any] | np.ndarray) -> np.ndarray:
    """An object array of exactly these items (no nesting, no conversion)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out

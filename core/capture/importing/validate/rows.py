"""Checks every kind shares: the patient, times, numbers, duplicate keys and output columns."""

from __future__ import annotations

import functools
import re
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from core.capture.importing.validate.frame import (
    STR,
    Context,
    Rows,
    each,
    each_of,
    is_missing,
    obj,
    text,
)

MAX_DAYS_BEFORE_INFUSION = 60  # design rule of issue 2: labs older than this are refused
FUTURE_TOLERANCE = timedelta(minutes=5)
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
NAT = np.iinfo(np.int64).min  # a missing time in the µs arrays below
_OLD_US = MAX_DAYS_BEFORE_INFUSION * 86_400 * 1_000_000
_US = "datetime64[us, UTC]"
# a `day` further than this from the infusion (about a century) cannot be a row of a course;
# it also keeps infusion + day inside the dates a timestamp can hold (no overflow)
MAX_DAY = 36_525
_FINER = ("The time has more than 6 decimal places of seconds; give it to the microsecond at "
          "most, like 2026-11-03T08:30:00.123456.")
FAR_DAY = (f"The day is more than {MAX_DAY:,} days from the infusion; give the number of days "
           "after infusion, like 3 or -5.")


def patients(rows: Rows, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
    """(patient_pk, infusion date) per row as object arrays; unknown IDs are errors."""
    ids = rows.values("patient_id")
    table = ctx.patients

    def entry(v: Any) -> tuple[Any, Any]:
        e = None if is_missing(v) else table.get(v)
        if e is None:
            return None, None
        return (None if is_missing(e[0]) else e[0]), (None if is_missing(e[1]) else e[1])

    pk, infusion = each_of(ids, entry, 2, rows.small)
    gone = np.asarray(pd.isna(pk))
    # as Series.map(dict).astype(object) gives them: integer keys become floats beside a miss,
    # numpy integers Python ones
    kinds = {type(k) for k in pk[~gone]} if rows.small else {type(k) for k in set(pk[~gone])}
    if kinds and all(issubclass(t, (int, np.integer)) for t in kinds):
        if gone.any():
            pk[~gone] = pk[~gone].astype("float64").astype(object)
        elif any(issubclass(t, np.integer) for t in kinds):
            pk[:] = pk.astype("int64").astype(object)
    blank = rows.blank("patient_id")
    rows.flag(ctx, blank, "patient_id", "A patient_id is required on every row.")
    rows.flag(ctx, ~blank & gone, "patient_id",
              lambda i: f"No patient with study ID {ids[i]!r}. Import or register the "
                        "patient first (patients file), or check the ID.")
    return pk, infusion


def _us(values: pd.DatetimeIndex) -> np.ndarray:
    """UTC times as int64 µs (NAT where missing), as a datetime64[us, UTC] column keeps them:
    finer times that would lose digits are refused like pandas refuses them."""
    arr = values.array
    if arr.unit != "us":
        try:
            arr = arr.as_unit("us", round_ok=False)
        except ValueError:
            raise TypeError(f"Invalid value '{arr}' for dtype '{_US}'") from None
    return np.asarray(arr.asi8)


def _read_time(v: object) -> tuple[object, bool]:
    """A time cell stripped (HL7 and FHIR frames are not), and whether it ends in an offset."""
    if type(v) is not str:
        return v, False
    v = v.strip()
    return v, _OFFSET.search(v) is not None


def _us_or_finer(values: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """UTC times as int64 µs (NAT where missing) and the rows given finer than a microsecond
    (NAT there too: a datetime64[us] column cannot hold them without losing digits)."""
    arr = values.array
    if arr.unit != "ns":
        us = np.asarray(arr.as_unit("us").asi8)  # s, ms, us: no digit is lost
        return us, np.zeros(len(us), dtype=bool)
    ns = np.asarray(arr.asi8)
    finer = (ns != NAT) & (ns % 1000 != 0)
    return np.where((ns == NAT) | finer, NAT, ns // 1000), finer


def _localised(text: np.ndarray, tz: str) -> pd.DatetimeIndex:
    """Date-times without a recognised offset, read in the ward's zone, as UTC. A cell that
    carries an offset after all ("+01") is read cell by cell with its own offset."""
    try:
        parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        local = parsed.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    except (TypeError, ValueError):  # "Already tz-aware" / "Mixed timezones"
        return pd.DatetimeIndex([_one_time(t, tz) for t in text], dtype="datetime64[ns, UTC]")
    return local.tz_convert("UTC")


def _one_time(t: object, tz: str) -> pd.Timestamp:
    ts = pd.to_datetime(t, format="ISO8601", errors="coerce")
    if ts is pd.NaT:
        return pd.NaT
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        if ts is pd.NaT:
            return pd.NaT
    return ts.tz_convert("UTC").as_unit("ns")


def times(rows: Rows, ctx: Context, time_col: str, day_col: str | None,
          infusion: np.ndarray, required: bool = True, check_range: bool = True) -> np.ndarray:
    """UTC µs from an ISO date/date-time column or a `day` column; NAT where bad."""
    n = rows.n
    out = np.full(n, NAT, dtype=np.int64)
    has_time = ~rows.blank(time_col)
    if has_time.any():
        pos = np.flatnonzero(has_time)
        text, aware = each_of(rows.opt(time_col)[pos], _read_time, 2, rows.small)
        aware = aware.astype(bool)
        finer = np.zeros(n, dtype=bool)
        if aware.any():
            out[pos[aware]], finer[pos[aware]] = _us_or_finer(pd.to_datetime(
                text[aware], format="ISO8601", utc=True, errors="coerce"))
        if not aware.all():
            out[pos[~aware]], finer[pos[~aware]] = _us_or_finer(_localised(text[~aware],
                                                                           ctx.tz))
        rows.flag(ctx, finer, time_col, _FINER)
        rows.flag(ctx, has_time & ~finer & (out == NAT), time_col,
                  "Not a date or date-time we can read; use ISO form like 2026-11-03 or "
                  "2026-11-03T08:30.")
    if day_col is not None:
        day_blank = rows.blank(day_col)
        use_day = ~has_time & ~day_blank
        if use_day.any():
            pos = np.flatnonzero(use_day)
            days = np.asarray(pd.to_numeric(rows.opt(day_col)[pos], errors="coerce"),
                              dtype="float64")
            no_day = ~np.isfinite(days)  # not a number, or inf
            far = ~no_day & (np.abs(days) > MAX_DAY)
            bad = np.zeros(n, dtype=bool)
            bad[pos[no_day]] = True
            rows.flag(ctx, bad, day_col,
                      "The day must be a number of days after infusion, like 3 or -5 or 3.5.")
            bad[:] = False
            bad[pos[far]] = True
            rows.flag(ctx, bad, day_col, FAR_DAY)
            ok = ~no_day & ~far & ~np.asarray(pd.isna(infusion[pos]))
            if ok.any():
                idx = pos[ok]
                midnight = pd.to_datetime(each(infusion[idx], str, rows.small))
                stamps = (midnight.tz_localize(ctx.tz)
                          + pd.to_timedelta(days[ok], unit="D")).tz_convert("UTC")
                # a day's fraction in float rarely falls on a whole microsecond: the nearest
                out[idx] = _us(stamps.round("us"))
        missing = ~has_time & day_blank
    else:
        missing = ~has_time
    if required:
        cols = f"{time_col} or {day_col}" if day_col else time_col
        rows.flag(ctx, missing, cols, f"A time is required: give {cols}.", value_col="")
    if check_range:
        known = out != NAT
        now = pd.Timestamp(ctx.now + FUTURE_TOLERANCE).tz_convert("UTC")  # naive: TypeError
        if known.any():
            column = time_col if rows.has(time_col) else (day_col or time_col)
            rows.flag(ctx, known & (out > now.value // 1000), column,
                      "This time is in the future; check the date (and day number).")
            limit = _earliest(infusion, ctx.tz, rows.small)
            rows.flag(ctx, known & (limit != NAT) & (out < limit), column,
                      f"This is more than {MAX_DAYS_BEFORE_INFUSION} days before the "
                      "infusion; check the date or the patient.")
        elif any(d is not None for d in infusion):
            _earliest(infusion, ctx.tz, rows.small)  # a zone without that midnight raises
    return out


def _earliest(infusion: np.ndarray, tz: str, small: bool) -> np.ndarray:
    """Per row, the earliest time accepted: the infusion day's local midnight minus
    MAX_DAYS_BEFORE_INFUSION days (NAT without an infusion date)."""
    if all(d is None or type(d) is date for d in infusion):
        def one(d: Any) -> int:
            return NAT if d is None else _midnight(tz, d)

        mid = each(infusion, one, small).astype(np.int64)
    else:  # not plain dates: all at once, as pandas reads the column
        mid = _midnights(infusion, tz)
    return np.where(mid == NAT, NAT, mid - _OLD_US)


@functools.lru_cache(maxsize=4096)
def _midnight(tz: str, day: date) -> int:
    """The local midnight starting `day` in zone `tz`, as UTC microseconds (a fact of the
    calendar: the same for every call)."""
    return int(_midnights(obj([day]), tz)[0])


def _midnights(infusion: np.ndarray, tz: str) -> np.ndarray:
    text = pd.Series(infusion, dtype=object).astype(str)
    local = pd.to_datetime(text, errors="coerce").dt.tz_localize(tz)
    return _us(pd.DatetimeIndex(local.dt.tz_convert("UTC")))


def number(rows: Rows, ctx: Context, col: str, label: str,
           required: bool = False) -> np.ndarray:
    """pd.to_numeric of a column (NaN where blank or not a number, which is an error)."""
    blank = rows.blank(col)
    if blank.all() and rows.n:
        num = np.full(rows.n, np.nan)
    else:
        num = np.asarray(pd.to_numeric(rows.opt(col), errors="coerce"))
        rows.flag(ctx, ~blank & np.asarray(pd.isna(num)), col, f"{label} must be a number.")
    if required:
        rows.flag(ctx, blank, col, f"{label} is required.")
    return num


def key_part(values: np.ndarray) -> list[str]:
    """One column's part of the natural key: its text, empty where missing."""
    gone = np.asarray(pd.isna(values))
    cells = values.tolist()
    if gone.any():
        for i in np.flatnonzero(gone).tolist():
            cells[i] = ""
    if values.dtype != object or not all(type(v) is str for v in cells):
        cells = [v if type(v) is str else str(v) for v in cells]
    return cells


def time_part(us: np.ndarray) -> list[str]:
    """A time column's part of the natural key: UTC microseconds, empty where missing."""
    cells: list[str] = us.astype(str).tolist()
    for i in np.flatnonzero(us == NAT).tolist():
        cells[i] = ""
    return cells


def natural(rows: Rows, ctx: Context, parts: list[list[str]], column: str) -> list[str]:
    """One key per row from the parts; rows repeating an earlier row's key are errors."""
    keys = ["|".join(p) for p in zip(*parts, strict=True)] if len(parts) > 1 else parts[0]
    first: dict[str, int] = {}
    dup = np.zeros(rows.n, dtype=bool)
    for i, k in enumerate(keys):
        if first.setdefault(k, i) != i:
            dup[i] = True
    if dup.any():
        rows.flag(ctx, dup, column,
                  lambda i: f"Duplicate of row {rows.row(first[keys[i]])}: the same "
                            "patient, item and time appear twice in this file.", value_col="")
    return keys


def utc(us: np.ndarray) -> Any:
    """A datetime64[us, UTC] column (an extension array) from µs."""
    return pd.array(us.view("M8[us]"), dtype=_US)


def kept(rows: Rows, name: str) -> Any:
    """The column where not blank, else missing (`where(~blank, None)`)."""
    blank = rows.blank(name)
    if not rows.has(name):
        return text(np.full(rows.n, None, dtype=object))
    s = rows.column(name)
    if not blank.any():
        return s
    if s.dtype != STR:
        return s.where(~blank, None)
    cells = rows.values(name).copy()
    cells[blank] = None
    return text(cells)

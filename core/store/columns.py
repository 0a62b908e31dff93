"""Query results as columns: each table's rows as arrays, converted once for all patients.

The course loader (core.store.loading) reads each clinical table with one query for the whole
ward and hands every patient a slice of one frame. What it costs is pandas' and the driver's
per-object overhead, so values are fetched column by column, each column is converted once,
and a frame is built once and sliced, never assembled per patient.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pandas.api.types import infer_dtype
from pandas.arrays import ArrowStringArray
from sqlalchemy.sql import Select
from sqlmodel import Session

Column = Any  # one selected column's values as the DBAPI returned them (a sequence)
FETCH_ROWS = 500  # under the collector's young-generation threshold (700 allocations)


def fetch_columns(session: Session, stmt: Select) -> list[Column]:
    """One query's values column by column ([] without rows), straight from the DBAPI
    cursor, each column an object array.

    Read in chunks, each turned into columns at once, and the chunks' columns joined into
    arrays, not tuples: the garbage collector traverses a new tuple's every value once
    (~2 ms for a column of 300,000), and a chunk's row tuples die young instead of being
    promoted into its oldest generation."""
    result = session.connection().execute(stmt)
    chunks: list[list[Column]] = []
    try:
        while rows := result.cursor.fetchmany(FETCH_ROWS):
            chunks.append(list(zip(*rows, strict=True)))
    finally:
        result.close()
    if not chunks:
        return []
    n = sum(len(part[0]) for part in chunks)
    return [np.fromiter(chain.from_iterable(part[i] for part in chunks), dtype=object,
                        count=n) for i in range(len(chunks[0]))]


TEXT = pd.Series(["text"]).dtype  # the dtype pandas infers for text (pandas 3: `str`)


def inferred(values: Column) -> Any:
    """A column as pandas infers it, exactly as DataFrame.from_records does (text as `str`
    with NaN gaps, whole numbers with gaps as float64, nothing but gaps as object).

    Text with None gaps, the common case, goes to Arrow in one pass (pandas' own
    conversion checks every value in Python first, at four times the cost)."""
    try:
        text = pa.array(values, type=pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not only text and None
        text = None
    if text is not None and text.null_count < len(text) and TEXT.storage == "pyarrow":
        return ArrowStringArray(text, dtype=TEXT)
    if infer_dtype(values, skipna=True) == "string":  # text with NaN gaps
        return pd.array(values, dtype=TEXT)
    return pd.Series(list(values)).array


def floats(values: Column) -> np.ndarray:
    """A numeric column as float64, gaps as NaN (`pd.to_numeric(errors="coerce")`)."""
    try:
        return np.array(values, dtype=np.float64)
    except (TypeError, ValueError):  # text in a number column: what pandas makes of it
        return pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(np.float64)


def objects(values: Column) -> np.ndarray:
    """An object column with every gap as None."""
    out = np.array(values, dtype=object)
    out[pd.isna(out)] = None
    return out


def utc_times(values: Column) -> pd.DatetimeIndex:
    """A time column as aware UTC, ISO 8601 as stored (one parse per column, no cache)."""
    return pd.to_datetime(np.array(values, dtype=object), utc=True, format="ISO8601",
                          cache=False)


def frame_of(columns: dict[str, Any]) -> pd.DataFrame:
    """A frame of these columns as they are: an object column stays object (a frame built
    from a plain object array would infer `str` for text)."""
    return pd.DataFrame({c: pd.Series(a, dtype=object, copy=False) if a.dtype == object else a
                         for c, a in columns.items()}, copy=False)


def sorted_frame(columns: dict[str, Any], pos: np.ndarray, keep: np.ndarray | None,
                 sort: str) -> tuple[pd.DataFrame, np.ndarray]:
    """The kept rows as one frame sorted by patient, then `sort` (ties in row order), and
    each row's patient: one sort, one frame."""
    if keep is not None:
        columns = {c: a[keep] for c, a in columns.items()}
        pos = pos[keep]
    order = np.lexsort((columns[sort], pos))
    if (order[1:] < order[:-1]).any():
        columns = {c: a.take(order) for c, a in columns.items()}
        pos = pos[order]
    return frame_of(columns), pos


def split_by_patient(whole: pd.DataFrame, pos: np.ndarray,
                     patients: int) -> list[pd.DataFrame | None]:
    """One frame per patient (None for a patient without rows): a slice of `whole`, sorted
    by patient (`pos`, each row's), for each."""
    if not len(pos):
        return [None] * patients
    counts = np.bincount(pos, minlength=patients)
    ends = np.cumsum(counts).tolist()
    out: list[pd.DataFrame | None] = []
    for n, e in zip(counts.tolist(), ends, strict=True):
        if n == len(whole):
            out.append(whole)
        elif n:
            part = whole.iloc[e - n:e]
            part.index = pd.RangeIndex(n)
            out.append(part)
        else:
            out.append(None)
    return out

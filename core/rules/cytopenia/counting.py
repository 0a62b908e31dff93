"""The counting of days below a threshold (criteria §6.1/§6.3), over many windows at once.

Each row of a matrix is one window as known at one instant, each column one day of it (the
day's value, or nan: unmeasured). The daily values are filled as the definitions say
(`bridge`: the public grader's gaps; `carry_forward`: late T-ICAHT), turned into day
states (`states_for`) and walked through the counting machine (`count_windows`) one day at
a time, every row at once: a period starts on the first day at or below the threshold and
lasts until recovery, the first of `recovery_days` consecutive days above it; shorter
interruptions are counted in. Periods add up (cumulative) or the longest counts.
"""

from __future__ import annotations

import numpy as np

from core.rules.base import Threshold
from core.vocabulary.units import Evidence

VERSION = "1.0"
C, C2, U, D = Evidence.C, Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN


th = Threshold  # the declarations' rows: th(key, value, unit, evidence, description, op)


GAP_THRESHOLDS: tuple[Threshold, ...] = (
    th("bridge_days", 7, "days", D,
       "gaps of up to this many unmeasured days are bridged (interpolated; last value carried)"
       " [public grader's maxgap]", "<="),
    th("count_longest_run", 0, "count", C,
       "0 = cumulative days of every period (criteria §6.1, T-ICAHT footnote [C]); 1 = the "
       "longest period only (public grader)", "<="),
)
"""How the early ICAHT rules (neutrophil and platelet) read sparse counts: one declaration."""

# a day's state: below the threshold, above it, above but not a recovery day (a platelet
# transfusion in the days before), or unmeasured
BELOW, ABOVE, SUPPORTED, UNKNOWN = 1, 0, 2, -1


def states_for(vals: np.ndarray, cut: float, inclusive: bool,
               supported: np.ndarray | None = None) -> np.ndarray:
    """The state of each day from its value: below `cut` (at or below if `inclusive`)."""
    below = vals <= cut if inclusive else vals < cut
    st = np.where(np.isnan(vals), UNKNOWN, np.where(below, BELOW, ABOVE))
    if supported is not None:
        st = np.where((st == ABOVE) & supported, SUPPORTED, st)
    return st.astype(np.int8)


def count_windows(states: np.ndarray, n: np.ndarray, recovery_days: int, unknown: str,
                  longest: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(days counted, first counted day or -1) of each row's first n[row] days.

    states: rows x days of BELOW / ABOVE / SUPPORTED / UNKNOWN. unknown: how an unmeasured
    day counts: "above" or "below" (bounds), or "bridge" (as a supported day: counted only
    when the period goes on). A trailing run above the threshold shorter than recovery_days
    is not counted (recovery not yet shown to fail). longest: the longest single period
    (interruptions shorter than recovery_days counted in) instead of every period's days.
    """
    rows, days = states.shape
    as_unknown = {"above": ABOVE, "below": BELOW}.get(unknown, SUPPORTED)
    states = np.where(states == UNKNOWN, as_unknown, states)
    # the first counted day: the first day below, where a period starts
    below_all = (states == BELOW) & (np.arange(days)[None, :] < n[:, None])
    out_first = np.where(below_all.any(axis=1), below_all.argmax(axis=1), -1)
    # outside a period, pending and a_run are 0
    count, period, best, pending, a_run = (np.zeros(rows, dtype=np.int32) for _ in range(5))
    in_period = np.zeros(rows, dtype=bool)
    out = np.zeros(rows, dtype=np.int64)
    by_day = states.T.copy()  # one day's states at a time
    for d in range(days):
        st = by_day[d]
        below = st == BELOW
        going = in_period & ~below  # a day above (or supported) within a period
        add = pending + 1  # a day below counts in the days pending before it
        count += below * add
        if longest:
            period = np.where(below, np.where(in_period, period, 0) + add, period)
        in_period |= below
        pending = (pending + 1) * going
        above = going & (st == ABOVE)
        a_run = (a_run + 1) * above
        recovered = above & (a_run >= recovery_days)
        if recovered.any():  # the period ends before its run above
            count += (pending - a_run) * recovered
            if longest:
                best = np.where(recovered, np.maximum(best, period + pending - a_run), best)
            in_period &= ~recovered
            pending *= ~recovered
            a_run *= ~recovered
        done = n == d + 1
        if done.any():
            # supported days before an unfinished trailing recovery count in
            open_days = (pending - a_run) * in_period
            now = (np.maximum(best, np.where(in_period, period + open_days, 0)) if longest
                   else count + open_days)
            out[done] = now[done]
    return out, out_first


def _known_neighbours(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the column of the nearest measured day at or before it, and at or after it
    (-1 / the row length: none)."""
    days = vals.shape[1]
    cols = np.arange(days)
    known = ~np.isnan(vals)
    before = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
    after = np.minimum.accumulate(np.where(known, cols, days)[:, ::-1], axis=1)[:, ::-1]
    return before, after


def bridge(vals: np.ndarray, limit: int) -> np.ndarray:
    """Daily values (rows x days) with gaps of at most `limit` unmeasured days filled:
    linearly between two measured days, with the nearest measured value before the first or
    after the last (the public grader's convention, criteria §6.1). Longer gaps stay nan
    (unknown)."""
    out = vals.copy()
    days = vals.shape[1]
    before, after = _known_neighbours(vals)
    d = np.arange(days)
    gap = np.isnan(vals)
    has_a, has_b = before >= 0, after < days
    va = np.take_along_axis(vals, np.maximum(before, 0), axis=1)
    vb = np.take_along_axis(vals, np.minimum(after, days - 1), axis=1)
    inner = gap & has_a & has_b & (after - before <= limit + 1)
    # as np.interp between the two measured days, to the last bit
    slope = (vb - va) / np.where(inner, after - before, 1)
    out[inner] = (slope * (d - before) + va)[inner]
    lead = gap & ~has_a & has_b & (after - d <= limit)
    out[lead] = vb[lead]
    trail = gap & has_a & ~has_b & (d - before <= limit)
    out[trail] = va[trail]
    return out


def carry_forward(vals: np.ndarray, idx: np.ndarray, limit: int) -> np.ndarray:
    """Fill up to `limit` missing days (idx < 0: no result) after each measured day with its
    value."""
    before, _after = _known_neighbours(np.where(idx >= 0, 0.0, np.nan))
    fill = (idx < 0) & (before >= 0) & (np.arange(vals.shape[1]) - before <= limit)
    return np.where(fill, np.take_along_axis(vals, np.maximum(before, 0), axis=1), vals)

"""What the haematotoxicity rules read from a ward, for many instants at once.

An instant is (course key, as-of instant): a grid row's `end`, or fewer of them when several
rows read the same. An analyte's results are a core.rules.series.Series (`dated()`: results
without a day are not counted); "now" is Ward.now. Readers that may belong in
core.rules.frames later: `first_event`, `daily_worst`, `platelet_transfusions`,
`transfusion_supported`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.rules.frames import Ward
from core.rules.series import Series
from core.rules.tables import NONE, asof

CENSOR_EVENTS = ("progression", "next_therapy", "death")


def _latest_by_day(row_keys: np.ndarray, row_days: np.ndarray, keys: np.ndarray,
                   as_of: np.ndarray | float, days: np.ndarray) -> np.ndarray:
    """Instants x days: the last row known at the instant (`as_of`, or one for all) before
    each day of `days` ends (asof; rows sorted by course and day); NONE if none."""
    before_next = np.nextafter(days + 1.0, -np.inf)  # day <= before_next is day < days + 1
    ends = np.minimum(np.broadcast_to(as_of, keys.shape)[:, None], before_next[None, :])
    return asof(row_keys, row_days, np.repeat(keys, len(days)),
                ends.ravel()).reshape(len(keys), len(days))


def first_event(ward: Ward, kinds: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per course: (day, kind) of its first event (in day order) of one of `kinds`; inf and
    None without one."""
    day = np.full(len(ward), np.inf)
    kind = np.full(len(ward), None, dtype=object)
    ev, ev_kind = ward.events, ward.events.get("kind")
    mine = np.flatnonzero(np.isin(ev_kind, kinds) & ~np.isnan(ev.day))
    keys, firsts = np.unique(ev.key[mine], return_index=True)
    day[keys], kind[keys] = ev.day[mine[firsts]], ev_kind[mine[firsts]]
    return day, kind


def censoring(ward: Ward, keys: np.ndarray, as_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per instant (keys[i], as_of[i]): the day of its course's first progression, next
    therapy or death event known then (NaN: none, not censored; np.fmin of a window's last
    day and its floor ends the window on it), and the event ("": none)."""
    day, kind = first_event(ward, CENSOR_EVENTS)
    censored = np.isfinite(day[keys]) & (day[keys] <= as_of)
    return np.where(censored, day[keys], np.nan), np.where(censored, kind[keys], "")


def daily_worst(rows: Series, keys: np.ndarray, as_of: np.ndarray, first: int,
                ndays: int) -> tuple[np.ndarray, np.ndarray]:
    """(value, ward.labs position) of the lowest result of each day first..first+ndays-1
    known at each instant (instants x days; nan / NONE if none). Ties: the earliest result;
    a day whose first result has no value stays without one (as a scan of the day would)."""
    vals = np.full((len(keys), ndays), np.nan)
    where = np.full((len(keys), ndays), NONE, dtype=np.int64)
    if not len(rows.pos) or not len(keys) or ndays <= 0:
        return vals, where
    fday = np.floor(rows.day).astype(np.int64)
    cell_start = np.r_[True, (rows.key[1:] != rows.key[:-1]) | (fday[1:] != fday[:-1])]
    cell = np.cumsum(cell_start) - 1
    v = np.where(np.isnan(rows.value), np.where(cell_start, -np.inf, np.inf), rows.value)
    running = pd.Series(v).groupby(cell).cummin().to_numpy()
    prev = np.r_[np.inf, running[:-1]]
    lowest_at = np.maximum.accumulate(np.where(cell_start | (v < prev), np.arange(len(v)), -1))
    running = np.where(running == -np.inf, np.nan, running)
    # each day's latest result known at the instant, where the day's running lowest stands:
    # a past day's last result (all of it is known: found once per course), today's so far
    days, today = first + np.arange(ndays), np.floor(as_of)[:, None]
    past = _latest_by_day(rows.key, rows.day, np.arange(len(rows.ward)), np.inf, days)
    at = np.where(days < today, past[keys], np.where(
        days == today, asof(rows.key, rows.day, keys, as_of)[:, None], NONE))
    at = np.where((at >= 0) & (fday[np.maximum(at, 0)] == days[None, :]), at, NONE)
    has = at >= 0
    vals[has] = running[at[has]]
    where[has] = rows.pos[lowest_at[at[has]]]
    return vals, where


def platelet_transfusions(ward: Ward) -> tuple[np.ndarray, np.ndarray]:
    """(course key, day) of every platelet transfusion: the treatment platelet_transfusion
    and the observation transfusion = platelets, sorted by course and day."""
    tr, ob = ward.treatments, ward.observations
    given = ward.rows("treatments", "drug", "platelet_transfusion")
    noted = ward.rows("observations", "kind", "transfusion")
    noted = noted[ob.get("value_text")[noted] == "platelets"]
    key, day = np.r_[tr.key[given], ob.key[noted]], np.r_[tr.day[given], ob.day[noted]]
    ok = ~np.isnan(day)
    key, day = key[ok], day[ok]
    order = np.lexsort((day, key))
    return key[order], day[order]


def transfusion_supported(ward: Ward, keys: np.ndarray, as_of: np.ndarray, first: int,
                          ndays: int, window: int) -> np.ndarray:
    """Instants x days first..first+ndays-1: whether the day is within `window` calendar days
    after a platelet transfusion known at the instant (the transfusion day included)."""
    tx_key, tx_day = platelet_transfusions(ward)
    out = np.zeros((len(keys), ndays), dtype=bool)
    some = np.isin(keys, tx_key)
    days = first + np.arange(ndays)
    at = _latest_by_day(tx_key, tx_day, keys[some], as_of[some], days)
    out[some] = (at >= 0) & (days[None, :] - np.floor(tx_day[np.maximum(at, 0)]) <= window)
    return out

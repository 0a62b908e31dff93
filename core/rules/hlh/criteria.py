"""What the HLH-type rules share: tri-state criteria over a ward's grid.

A criterion is judged on every grid row (course-day) of the ward at once, as an array of
1.0 (met), 0.0 (not met) or NaN (not evaluable: its input is missing), criteria.md §0.2.
`tri` makes one from a test of a value, and `n_of`, `any_of`, `all_of` combine them, as
"5 of 8", "liver counts once", "entry and 2 of 4" say. `status` names them. The values
that decide them are read by core.rules.series.
"""

from __future__ import annotations

import numpy as np

from core.rules.base import Status, status_where
from core.vocabulary.units import Evidence

C2, U, D = Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
_STATUS = {1.0: Status.MET, 0.0: Status.NOT_MET}  # NaN: not evaluable


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
    return status_where(x == 1.0, x == 0.0)

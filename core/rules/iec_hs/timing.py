"""The IEC-HS timing key feature: onset as CRS is resolving or after it resolved (criteria.md
§1.2, §10.3).

Documented CRS episodes known at a course-day's end win: the last one resolved -> met; still
open -> met only if the computed CRS grade today is below the worst computed grade of the
episode's earlier days (resolving; the documented grade is the episode's final grade and is
not used). Without documented episodes the computed CRS course (the crs_grade rule's daily
grades) decides: no CRS day so far -> met (IEC-HS is often not tied to CRS, §1.1); last
graded day grade 0 after CRS -> met (resolved); below the worst grade of the current CRS
stretch -> met (resolving); else not met. No evaluable CRS day -> not evaluable.

By whole arrays over the grid, no loop per course or day.
"""

from __future__ import annotations

import numpy as np

from core.rules.base import Status
from core.rules.frames import Ward
from core.rules.series import first_max, take
from core.rules.tables import NONE, asof

MET, NOT_MET, NOT_EVALUABLE = Status.MET.value, Status.NOT_MET.value, Status.NOT_EVALUABLE.value


def documented_crs(ward: Ward) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The course key, onset and resolved day (NaN: open) of each documented CRS episode, by
    course and onset (ties in row order). An episode without an origin is documented."""
    ep = ward.episodes
    documented = np.isin(ep.get("origin"), np.array([None, "", "documented"], dtype=object))
    rows = np.flatnonzero((ep["kind"] == "CRS") & documented)
    return ep.key[rows], ep["onset_day"][rows], ep["resolved_day"][rows]


def timing_feature(ward: Ward, crs_grade: np.ndarray) -> dict[str, np.ndarray]:
    """Per grid row: `timing` (status), `timing_why` and `timing_day` (its evidence; None when
    not evaluable), from the CRS rule's grade of each course-day (NaN: not evaluable) and the
    documented CRS episodes. `timing_why` is a text to fill in with the `timing_<name>`
    values it names (the explain does it, for the rows shown only)."""
    keys, days, ends = ward.days["key"], ward.days["day"], ward.days["end"]
    rows = np.arange(ward.size)
    first_row = np.searchsorted(keys, keys)  # each row's course's first row

    def last(where: np.ndarray) -> np.ndarray:
        """Per row: the last row of its course up to it where `where` holds, else NONE."""
        at = np.maximum.accumulate(np.where(where, rows, NONE))
        return np.where(at >= first_row, at, NONE)

    # the computed course, graded from day 0 (or the first data day; no data: no grade either)
    graded = ~np.isnan(crs_grade) & (days >= np.maximum(ward.days["first"], 0.0))
    latest, crs = last(graded), last(graded & (crs_grade >= 1))
    grade, last_day = take(crs_grade, latest, np.nan), take(days, latest, NONE)
    before = np.where(rows > first_row, np.roll(grade, 1), np.nan)  # as of the day before
    stretch = last(graded & (crs_grade >= 1) & ~(before >= 1))  # the current CRS stretch's start
    worst = _highest(np.where(graded, crs_grade, np.nan), stretch,
                     np.where(grade >= 1, latest, NONE))  # while in CRS

    # the last documented episode known at the row's end, and the worst computed grade of its
    # earlier days (a day without a grade counts as 0)
    ep_key, ep_onset, ep_resolved = documented_crs(ward)
    episode = asof(ep_key, ep_onset, keys, ends)
    onset, resolved = np.floor(take(ep_onset, episode, np.nan)), take(ep_resolved, episode, np.nan)
    onset_row = np.fmax(first_row, rows - days + onset).astype(np.int64)  # its onset's row
    ep_worst = _highest(np.nan_to_num(crs_grade), onset_row, rows - 1)

    documented = episode != NONE
    values = {"onset": onset, "resolved": np.floor(resolved), "today": crs_grade,  # the texts'
              "ep_worst": ep_worst, "crs_day": take(days, crs, NONE), "grade": grade,
              "last_day": last_day, "worst": worst, "start": take(days, stretch, NONE)}
    cases = (  # (where, status, evidence day, why): the first case that holds decides
        (documented & (resolved <= ends), MET, resolved,
         "onset after CRS resolved (documented CRS day {onset}-{resolved}, resolved day "
         "{resolved})"),
        (documented & np.isnan(crs_grade), NOT_EVALUABLE, None, None),
        (documented & (crs_grade < ep_worst), MET, days,
         "CRS resolving: grade {today} today, worst {ep_worst} (documented episode from day "
         "{onset})"),
        (documented, NOT_MET, days,
         "documented CRS ongoing since day {onset} (grade {today} today)"),
        (latest == NONE, NOT_EVALUABLE, None, None),
        (crs == NONE, MET, last_day,
         "no CRS graded since infusion (IEC-HS is often not tied to CRS)"),
        (grade == 0, MET, last_day,
         "onset after CRS resolved (computed CRS last graded >= 1 on day {crs_day}, grade 0 "
         "on day {last_day})"),
        (grade < worst, MET, last_day,
         "CRS resolving: computed grade {grade} on day {last_day}, worst {worst} since day "
         "{start}"),
        (True, NOT_MET, last_day,
         "CRS ongoing (computed grade {grade} on day {last_day}, not improving)"),
    )
    holds = [where for where, *_ in cases]
    case = np.select(holds, np.arange(len(cases)))  # each row's: the first that holds
    return {f"timing_{name}": value for name, value in values.items()} | {
        "timing": np.array([status for _, status, _, _ in cases], dtype=object)[case],
        "timing_day": np.select(holds, [np.asarray(day, dtype=object) for _, _, day, _ in cases]),
        "timing_why": np.array([why for *_, why in cases], dtype=object)[case]}


def _highest(grades: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The highest of `grades` over rows lo..hi (NaN skipped), 0 where there is none."""
    return take(grades, first_max(grades, lo, hi), 0.0)

"""The IEC-HS timing key feature: onset as CRS is resolving or after it resolved (criteria.md
§1.2, §10.3).

Documented CRS episodes known at a course-day's end win: the last one resolved -> met; still
open -> met only if the computed CRS grade today is below the worst computed grade of the
episode's earlier days (resolving; the documented grade is the episode's final grade and is
not used). Without documented episodes the computed CRS course (the crs_grade rule's daily
grades) decides: no CRS day so far -> met (IEC-HS is often not tied to CRS, §1.1); last
graded day grade 0 after CRS -> met (resolved); below the worst grade of the current CRS
stretch -> met (resolving); else not met. No evaluable CRS day -> not evaluable.

A scan over each course's days (at most ~100), one pass, no caches.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np

from core.rules.base import Status
from core.rules.frames import Ward

MET, NOT_MET, NOT_EVALUABLE = Status.MET.value, Status.NOT_MET.value, Status.NOT_EVALUABLE.value
Timing = tuple[str, str | None, Any]  # status, why (None: not evaluable), evidence day
CrsCourse = tuple[int, int, int | None, int, int]  # see _fold


def documented_crs(ward: Ward) -> dict[int, tuple[list[float], list[float]]]:
    """Per course key: the onset and resolved days (NaN: open) of its documented CRS episodes,
    by onset (ties in row order). An episode without an origin is documented."""
    ep = ward.episodes
    if not len(ep):
        return {}
    origin = ep.get("origin")
    rows = np.flatnonzero((ep["kind"] == "CRS")
                          & np.array([o is None or o == "" or o == "documented" for o in origin],
                                     dtype=bool))
    key = ep.key[rows]  # ward.episodes is sorted by (course, onset), ties in row order
    return {int(k): (ep["onset_day"][rows[key == k]].tolist(),
                     ep["resolved_day"][rows[key == k]].tolist()) for k in np.unique(key)}


def timing_feature(ward: Ward, crs_grade: np.ndarray) -> dict[str, np.ndarray]:
    """Per grid row: `timing` (status), `timing_why` and `timing_day` (its evidence; None when
    not evaluable), from the CRS rule's grade of each course-day (NaN: not evaluable) and the
    documented CRS episodes."""
    n = ward.size
    out = np.empty((n, 3), dtype=object)
    keys, ends = ward.days["key"], ward.days["end"]
    days, first = ward.days["day"], ward.days["first"]
    documented = documented_crs(ward)
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True]) if n else np.zeros(1, int)
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        onsets, resolved = documented.get(int(keys[r0]), ([], []))
        grades = crs_grade[r0:r1]
        worst_by_day = np.nan_to_num(grades, nan=0.0)  # a day without a grade counts as 0
        day0 = int(days[r0])
        lo = max(0.0, float(first[r0])) if not math.isnan(first[r0]) else math.inf
        computed: CrsCourse | None = None
        for i in range(r1 - r0):
            r, day, g = r0 + i, int(days[r0 + i]), grades[i]
            if day >= lo:  # from day 0 or the first data day (no data: no grade either)
                computed = _fold(computed, day, g)
            j = bisect.bisect_right(onsets, ends[r]) - 1  # the last documented episode known
            if j < 0:
                out[r] = _by_computed(computed)
                continue
            onset, res = onsets[j], resolved[j]
            start = max(0, math.floor(onset) - day0)
            worst = int(worst_by_day[start:i].max()) if start < i else 0
            out[r] = _by_documented(onset, res if res <= ends[r] else None, day, g, worst)
    return {"timing": out[:, 0], "timing_why": out[:, 1], "timing_day": out[:, 2]}


def _by_documented(onset: float, resolved: float | None, day: int, today: float,
                   worst: int) -> Timing:
    """The last documented CRS episode: resolved -> met; open -> met only if today's computed
    grade is below the worst computed grade of its earlier days (resolving)."""
    if resolved is not None:
        return MET, (f"onset after CRS resolved (documented CRS day {math.floor(onset)}-"
                     f"{math.floor(resolved)}, resolved day {math.floor(resolved)})"), resolved
    if math.isnan(today):
        return NOT_EVALUABLE, None, None
    if today < worst:
        return MET, (f"CRS resolving: grade {int(today)} today, worst {worst} (documented "
                     f"episode from day {math.floor(onset)})"), day
    return NOT_MET, (f"documented CRS ongoing since day {math.floor(onset)} (grade "
                     f"{int(today)} today)"), day


def _fold(computed: CrsCourse | None, day: int, g: float) -> CrsCourse | None:
    """The computed CRS course with `day` added: (last evaluable day, its grade, last day
    graded >= 1, start of the current graded stretch, worst grade of that stretch)."""
    if math.isnan(g):
        return computed
    grade = int(g)
    if grade == 0:
        return day, 0, None if computed is None else computed[2], day, 0
    if computed is not None and computed[1] >= 1:
        return day, grade, day, computed[3], max(computed[4], grade)
    return day, grade, day, day, grade


def _by_computed(computed: CrsCourse | None) -> Timing:
    """No documented episode: no CRS day so far -> met; CRS resolved (grade 0 after a graded
    day) or resolving (below the worst of the current stretch) -> met; else not met."""
    if computed is None:
        return NOT_EVALUABLE, None, None
    last_d, last_g, last_crs_day, start, worst = computed
    if last_crs_day is None:
        return MET, "no CRS graded since infusion (IEC-HS is often not tied to CRS)", last_d
    if last_g == 0:
        return MET, (f"onset after CRS resolved (computed CRS last graded >= 1 on day "
                     f"{last_crs_day}, grade 0 on day {last_d})"), last_d
    if last_g < worst:
        return MET, (f"CRS resolving: computed grade {last_g} on day {last_d}, worst {worst} "
                     f"since day {start}"), last_d
    return NOT_MET, (f"CRS ongoing (computed grade {last_g} on day {last_d}, not "
                     f"improving)"), last_d

"""When a bedside-graded rule stops asking for today's observations [DESIGN].

CRS and ICANS are graded from bedside observations charted during the monitoring phase. Once
that phase is over (outpatients after discharge from the unit, typically after day 30), the
inputs are no longer charted and a daily "log today's ..." prompt is noise. A prompt for an
input is dropped when that input was charted before but not in the last `monitoring_gap_days`
days; an input never charted is still asked for (a new patient whose vitals are not in yet).
Charting the input again brings the prompt back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from core.rules.base import Evidence, Threshold
from core.rules.reading import latest_observation
from core.vocabulary.course import Course

GAP_KEY = "monitoring_gap_days"


def gap_threshold(default: float = 3) -> Threshold:
    return Threshold(
        GAP_KEY, default, "days", Evidence.DESIGN,
        "stop asking for an input not charted for more than this many days (end of the "
        "bedside monitoring phase); never changes a grade", ">", operational=True)


def last_charted(course: Course, kinds: Sequence[str], end: float) -> float | None:
    """The latest day on or before `end` with an observation of any of `kinds`."""
    days = [o.day for k in kinds if (o := latest_observation(course, k, end)) is not None]
    return max(days, default=None)


def current_prompts(course: Course, day: int, end: float, missing: Sequence[str],
                    inputs: Mapping[str, Sequence[str]], gap_days: float) -> list[str]:
    """The missing-input prompts still worth showing on ward day `day`.

    `inputs` maps a prompt to the observation kinds that answer it; prompts not in it are
    always kept.
    """
    kept = []
    for m in missing:
        kinds = inputs.get(m)
        if kinds is not None:
            last = last_charted(course, kinds, end)
            if last is not None and math.floor(last) < day - gap_days:
                continue
        kept.append(m)
    return kept

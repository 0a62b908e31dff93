"""One analyte's results in a course graded against one baseline, course by course: kept
only for iec_hs until it is judged by columns. The ctcae_<analyte> rules use none of this
(core.rules.ctcae.rules); delete it once no module imports it.
"""

from __future__ import annotations

from core.rules.base import Thresholds
from core.rules.ctcae.grading import ctcae_grade
from core.rules.reading import LabSeries, Value
from core.rules.stretches import memo, thresholds_key
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES


class _Graded:
    """The results of one analyte in the course graded against one baseline, each on first
    use (`grade(i)`, None: not gradable)."""

    __slots__ = ("analyte", "src", "t", "base", "base_uln", "base_lln", "_grade")

    def __init__(self, src: LabSeries, t: Thresholds, b: Value | None) -> None:
        self.analyte, self.src, self.t = src.analyte, src, t
        self.base = b.value if b is not None else None
        self.base_uln = b.ref_high if b is not None else None
        self.base_lln = b.ref_low if b is not None else None
        self._grade: dict[int, int | None] = {}

    def limits(self, i: int) -> tuple[float | None, float | None]:
        """(ULN, LLN) of result i: the lab's own range, else (neither recorded) the
        catalogue default; a limit that is not there is None."""
        hi, lo = self.src.high[i], self.src.low[i]
        if hi != hi and lo != lo:  # both NaN
            a = ANALYTES[self.analyte]
            return a.ref_high, a.ref_low
        return (None if hi != hi else hi), (None if lo != lo else lo)

    def grade(self, i: int) -> int | None:
        g = self._grade.get(i, -1)
        if g == -1:
            hi, lo = self.limits(i)
            g = self._grade[i] = ctcae_grade(self.analyte, self.src.vals[i], hi, lo, self.base,
                                             self.base_uln, self.base_lln, self.t)
        return g


def _graded(course: Course, src: LabSeries, t: Thresholds, b: Value | None) -> _Graded:
    """The course's results of `src` graded against baseline `b` (memoised per course)."""
    return memo(course, ("cw_ctcae_graded", src.analyte, thresholds_key(t),
                         None if b is None else b.day), lambda: _Graded(src, t, b))

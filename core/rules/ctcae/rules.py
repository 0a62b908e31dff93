"""The graded rules ctcae_<analyte> (criteria.md §8), judged over a whole ward at once.

On each course-day, as of the day's end:
- grade = the CTCAE v5.0 grade of the latest result (core.rules.ctcae.grading), against the
  result's reference limits and, for the terms graded against one, the baseline known then
  (criteria §0.2; before it settles, the latest result before the cut);
- met from grade 1; not evaluable without a result, or when the latest cannot be graded;
- since_day = floor(day) of the first result of the current unbroken run of grade >= 1
  results, each graded against that same baseline (a result graded 0 or not gradable ends a
  run), not the engine's met stretch of days.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, NamedTuple

import numpy as np

from core.rules.base import (
    Citation,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Thresholds,
    graded_status,
)
from core.rules.ctcae.grading import (
    ANALYTES_GRADED,
    CTCAE_THRESHOLDS,
    NEEDS_BASELINE,
    RISE,
    TERMS,
    ctcae_grades,
)
from core.rules.frames import Columns, Ward
from core.rules.series import Series
from core.rules.tables import NONE
from core.vocabulary.units import ANALYTES, Evidence

VERSION = "1.0"
CITATION_SOURCE = "NCI CTCAE v5.0 (27 Nov 2017), logic as pharmaverse admiral"
NEED_RANGE = "the reference range (ULN/LLN) of the latest result"
NO_BASELINE = "none recorded; graded against the reference range"

# ---------------------------------------------------------------------------------------------
# Judge: every course-day of the ward by columns
# ---------------------------------------------------------------------------------------------


def judge(analyte: str, ward: Ward, t: Thresholds) -> Columns:
    """Per grid row: status, grade (NaN: none), since_day, max_grade_in_run, and the
    positions in ward.labs of the latest result and of the baseline (NONE: none)."""
    s = Series.lab(ward, analyte)
    latest = s.latest(ward.days["end"])  # its place in the series
    base = (ward.baseline(analyte) if analyte in NEEDS_BASELINE
            else np.full(len(latest), NONE, dtype=np.int64))
    grade, first, worst = _runs(s, analyte, t, latest, base)
    met = grade >= 1
    status = graded_status(grade)
    since = np.full(len(grade), np.nan)
    since[met] = np.floor(ward.labs.day[first[met]]) + 0.0  # as math.floor: day -0.0 -> 0.0
    return {"status": status, "grade": grade, "since_day": since,
                         "max_grade_in_run": worst, "latest": s.frame_pos(latest),
                         "baseline": base}


def grades_of(ward: Ward, analyte: str, t: Thresholds, pos: np.ndarray, base: np.ndarray
              ) -> np.ndarray:
    """The CTCAE grades (NaN: not gradable) of the lab rows `pos`, each against its own
    limits and the baseline row `base` (NONE: none known, graded as a normal baseline)."""
    low, high, _ = ward.lab_limits
    values, has = ward.labs["value"], base != NONE
    at = np.maximum(base, 0)
    return ctcae_grades(analyte, values[pos], high[pos], low[pos],
                        np.where(has, values[at], np.nan), np.where(has, high[at], np.nan), t)


class Graded(NamedTuple):
    """The values grid rows read, graded (see `graded_values`)."""

    rows: np.ndarray  # the grid rows that read values
    pos: np.ndarray  # the ward.labs rows of the values graded, stretch after stretch
    grade: np.ndarray  # their CTCAE grades (NaN: not gradable)
    first: np.ndarray  # per row of `rows`: the index of its first value in pos and grade
    last: np.ndarray  # and of its last
    opens: np.ndarray  # per value graded: the first of its stretch


def graded_values(s: Series, analyte: str, t: Thresholds, lo: np.ndarray, hi: np.ndarray,
                  base: np.ndarray, grades_baseline: bool = True) -> Graded:
    """Per grid row: the values lo..hi of the analyte's series `s` (positions in it, `lo` the
    same on every row of a course; none where hi is NONE or below lo), each graded against
    the row's baseline `base` (a ward.labs row; NONE: none). Without `grades_baseline`, the
    baseline value itself is graded against none.

    The rows of a course with one baseline (all of them once it settles) make a stretch,
    which grades its values once: from its rows' lo to the last row's hi."""
    rows = np.flatnonzero((hi != NONE) & (hi >= lo))
    if not len(rows):
        none = np.empty(0, dtype=np.int64)
        return Graded(rows, none, np.empty(0), none, none, np.empty(0, dtype=bool))
    key, b = s.ward.days["key"][rows], base[rows]
    fresh = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (b[1:] != b[:-1])])
    stretch = np.repeat(np.arange(len(fresh)), np.diff(np.r_[fresh, len(rows)]))
    s_lo = lo[rows][fresh]
    count = np.maximum.reduceat(hi[rows], fresh) - s_lo + 1
    offset = np.r_[0, np.cumsum(count)[:-1]]  # where each stretch's values begin
    of = np.repeat(np.arange(len(fresh)), count)
    pos = s.pos[s_lo[of] + np.arange(count.sum()) - offset[of]]
    vb = b[fresh][of]
    if not grades_baseline:
        vb = np.where(vb == pos, NONE, vb)
    opens = np.zeros(len(pos), dtype=bool)
    opens[offset] = True
    return Graded(rows, pos, grades_of(s.ward, analyte, t, pos, vb), offset[stretch],
                  offset[stretch] + hi[rows] - s_lo[stretch], opens)


def _runs(s: Series, analyte: str, t: Thresholds, latest: np.ndarray, base: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grid row: the grade of its latest result against its baseline (NaN: no result or
    not gradable), the position of the first result of the unbroken grade >= 1 run that
    result ends, and the worst grade in that run (both read only where the grade is >= 1)."""
    n = len(latest)
    grade, first, worst = np.full(n, np.nan), np.full(n, NONE, dtype=np.int64), np.full(n, 0.0)
    gr = graded_values(s, analyte, t, s.first_from(-np.inf), latest, base)
    # A run of grade >= 1 results ends at a result graded 0 or not gradable, and at the
    # start of a stretch; `broken` = the last result before each result's run.
    g, at = gr.grade, np.arange(len(gr.grade))
    broken = np.maximum.accumulate(np.where(~(g >= 1), at, np.where(gr.opens, at - 1, -1)))
    # the worst grade so far within each run (broken is ascending; grades are 0-4 < 8)
    run_worst = np.maximum.accumulate(broken * 8.0 + np.nan_to_num(g)) - broken * 8.0
    j = gr.last  # each row's latest result among those graded
    grade[gr.rows], worst[gr.rows] = g[j], run_worst[j]
    first[gr.rows] = gr.pos[np.minimum(broken[j] + 1, j)]
    return grade, first, worst


# ---------------------------------------------------------------------------------------------
# Explain: the finding of one row
# ---------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _why(analyte: str, grade: int, value: float, uln: float | None, lln: float | None,
         base: float | None, base_uln: float | None) -> str:
    parts = [f"CTCAE grade {grade}"]
    if analyte in RISE or analyte == "creatinine":
        if uln:
            parts.append(f"{_fmt(value / uln)} x ULN ({_fmt(uln)})")
        if base:
            tag = " (abnormal)" if base_uln is not None and base > base_uln else ""
            parts.append(f"{_fmt(value / base)} x baseline ({_fmt(base)}){tag}")
    elif analyte == "fibrinogen":
        if lln:
            parts.append(f"{_fmt(value / lln)} x LLN ({_fmt(lln)})")
        if base and value < base:
            parts.append(f"{_fmt(100 * (base - value) / base)} % below baseline ({_fmt(base)})")
    elif lln is not None and analyte != "triglycerides":
        parts.append(f"LLN {_fmt(lln)}")
    return "; ".join(parts)


def _known(x: float) -> float | None:
    return None if x != x else float(x)


def explain(analyte: str, ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The row's finding: the graded result (why: its grade and the limits and baseline it
    was graded against) and, where the grading uses it, the baseline."""
    del t  # the grade is the judge's
    rule_id, i, b = f"ctcae_{analyte}", int(row["latest"]), int(row["baseline"])
    if i == NONE:
        return Finding(rule_id, Status.NOT_EVALUABLE,
                       missing=[f"a {ANALYTES[analyte].name} result"])
    if row["grade"] != row["grade"]:  # NaN: not gradable
        return Finding(rule_id, Status.NOT_EVALUABLE, missing=[NEED_RANGE], evidence=[
            ward.lab_evidence(i, "latest value; reference range needed")])
    g = int(row["grade"])
    low, high, _ = ward.lab_limits
    base = None if b == NONE else float(ward.labs["value"][b])
    why = _why(analyte, g, float(ward.labs["value"][i]), _known(high[i]), _known(low[i]), base,
               None if b == NONE else _known(high[b]))
    evidence = [ward.lab_evidence(i, why)]
    extra: dict[str, object] = {"term": TERMS[analyte]}
    if analyte in NEEDS_BASELINE:
        if b == NONE:
            extra["baseline"] = NO_BASELINE
        else:
            evidence.append(ward.lab_evidence(b, "baseline"))
    if g == 0:
        return Finding(rule_id, Status.NOT_MET, grade=0, evidence=evidence, extra=extra)
    extra["max_grade_in_run"] = int(row["max_grade_in_run"])
    return Finding(rule_id, Status.MET, grade=g, evidence=evidence, extra=extra)


# ---------------------------------------------------------------------------------------------
# The rules as data
# ---------------------------------------------------------------------------------------------

# Alarm policy [DESIGN]: lymphopenia and leukopenia are expected after lymphodepletion (every
# patient reaches ALC grade 4), so they inform and never escalate; the other terms warn and
# become severe at grade 4 (life-threatening in CTCAE wording).
EXPECTED_AFTER_LYMPHODEPLETION = ("alc", "wbc")
SEVERE_FROM_GRADE = 4


def _severity(analyte: str) -> tuple[Severity, int | None, str]:
    if analyte in EXPECTED_AFTER_LYMPHODEPLETION:
        return Severity.INFO, None, (
            "Alarm policy [DESIGN]: info, never escalated - lymphopenia/leukopenia are the "
            "expected effect of lymphodepletion (grade 4 lymphopenia in almost every patient).")
    return Severity.WARNING, SEVERE_FROM_GRADE, (
        f"Alarm policy [DESIGN]: warning; severe from grade {SEVERE_FROM_GRADE} "
        "(life-threatening). Grade 3 counts and labs are common after CAR-T and stay warnings.")


# the analyte as the ward's one-line short name says it ("CTCAE Hb")
SHORT_LABELS = {"ast": "AST", "alt": "ALT", "bilirubin": "Bilirubin", "creatinine": "Creatinine",
                "fibrinogen": "Fibrinogen", "anc": "ANC", "platelets": "Platelets",
                "hemoglobin": "Hb", "alc": "ALC", "wbc": "WBC", "triglycerides": "TG"}

CHOICES: tuple[str, ...] = (
    "Graded value: the latest result as of the evaluation day; since_day = first result of "
    "the current unbroken run of grade >= 1 results.",
    "Baseline (§0.2 [DESIGN]) = the last result on or before the lymphodepletion start day "
    "(that morning's draw precedes the chemotherapy), else the last result on or before "
    "day 0.",
    "Unknown baseline is treated as normal: AST/ALT/bilirubin graded x ULN, creatinine by ULN "
    "only, fibrinogen without the % decrease clauses.",
    "'Baseline abnormal' for AST/ALT/bilirubin = baseline above the ULN of the baseline "
    "sample (admiral BNRIND HIGH); boundaries: x ULN columns '>' each cut, AST/ALT x "
    "baseline grade 1 from >= 1.5, bilirubin x baseline grade 1 '> 1.0'.",
    "Fibrinogen % decrease bands: grade 1 any decrease < 25 %, grade 2 25-<50, grade 3 "
    "50-<75, grade 4 >= 75; applied only when the value is below LLN.",
    "Counts: without an LLN (lab or catalogue) a value above the grade 2 cut is not gradable.",
    "Anaemia grade 4 and grade 5 of any term need clinical input and are never computed.",
    "Qualified results ('<0.1') are graded at the reported number.",
)


def _rule(analyte: str) -> Rule:
    severity, escalates, policy = _severity(analyte)
    return Rule(
        id=f"ctcae_{analyte}",
        title=f"CTCAE v5.0 grade: {TERMS[analyte]}",
        version=VERSION,
        citation=Citation(CITATION_SOURCE, f"CTCAE v5.0 '{TERMS[analyte]}'; criteria.md §8"),
        evidence=Evidence.C,
        severity=severity,
        escalates_at_grade=escalates,
        short_name=f"CTCAE {SHORT_LABELS[analyte]}",
        thresholds=CTCAE_THRESHOLDS[analyte],
        inputs=(analyte,),
        graded=True,
        choices=(*CHOICES, policy),
        description="Grade of the latest result; met for grade 1 or more. Reference limits "
                    "from the lab record, else the catalogue default (flagged in evidence).",
    )


RULES: tuple[RuleSpec, ...] = tuple(
    RuleSpec(_rule(a), judge=partial(judge, a), explain=partial(explain, a), by_instant=True)
    for a in ANALYTES_GRADED
)

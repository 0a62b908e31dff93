"""CTCAE v5.0 grades of the monitored labs (criteria.md §8), one graded rule per analyte.

`ctcae_grade()` is the stable, pure grading function other rules call (e.g. cartox_hlh). The
grading logic follows pharmaverse `admiral` (criteria §8 implementation notes):

- AST/ALT/bilirubin: the "x baseline" column when the baseline is above its ULN, else "x ULN";
- creatinine: max(ULN-based grade, baseline-based grade); baseline rules exist for grades 2-3;
- fibrinogen: absolute < 50 mg/dL = grade 4; "% decrease from baseline" clauses only when the
  value is below LLN; grade = max(LLN-based, decrease-based);
- counts: grade 1 needs value < LLN, grades 2-4 are absolute; anaemia grades 1-3 only;
- triglycerides: absolute mg/dL bands.

Every number lives in a `Threshold` row; `ctcae_grade` reads them from a mapping (the code
defaults, or a rule's `Thresholds` with site overrides).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeGuard

import numpy as np
import pandas as pd

from core.rules.base import (
    Citation,
    Evaluator,
    EvidenceItem,
    Finding,
    Replayer,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.reading import (
    END_OF_DAY,
    LabSeries,
    Value,
    baseline,
    course_index,
    lab_series,
)
from core.rules.stretches import memo, thresholds_key
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES, Evidence

VERSION = "1.0"
CITATION_SOURCE = "NCI CTCAE v5.0 (27 Nov 2017), logic as pharmaverse admiral"
C = Evidence.C

# ---------------------------------------------------------------------------------------------
# Thresholds as data (criteria §8, all [C])
# ---------------------------------------------------------------------------------------------


def _t(key: str, value: float, unit: str, op: str, description: str) -> Threshold:
    return Threshold(key=key, value=value, unit=unit, evidence=C, description=description, op=op)


def _ladder(prefix: str, unit: str, op: str, text: str, values: tuple[float, ...],
            first: int = 1, first_text: str = "") -> tuple[Threshold, ...]:
    """Rows <prefix>_g<first>, <prefix>_g<first + 1>, ... of `values`, each described as
    "grade g <text>" (the first row as `first_text` when given)."""
    return tuple(_t(f"{prefix}_g{g}", v, unit, op,
                    first_text if g == first and first_text else f"grade {g} {text}")
                 for g, v in enumerate(values, first))


def _liver(g1_base: float, g1_base_op: str, uln: tuple[float, float, float, float],
           base: tuple[float, float, float]) -> tuple[Threshold, ...]:
    return (
        *_ladder("uln", "x ULN", ">", "above this multiple of ULN", uln,
                 first_text="grade 1 above this multiple of ULN (normal baseline)"),
        _t("base_g1", g1_base, "x baseline", g1_base_op,
           "grade 1 from this multiple of baseline (baseline above ULN)"),
        *_ladder("base", "x baseline", ">", "above this multiple of baseline", base, first=2),
    )


def _counts(unit: str, *values: float) -> tuple[Threshold, ...]:
    return _ladder("abs", unit, "<", "below this value", values, first=2,
                   first_text="grade 2 below this value (grade 1: below LLN)")


CTCAE_THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "ast": _liver(1.5, ">=", (1.0, 3.0, 5.0, 20.0), (3.0, 5.0, 20.0)),
    "alt": _liver(1.5, ">=", (1.0, 3.0, 5.0, 20.0), (3.0, 5.0, 20.0)),
    "bilirubin": _liver(1.0, ">", (1.0, 1.5, 3.0, 10.0), (1.5, 3.0, 10.0)),
    "creatinine": (
        *_ladder("uln", "x ULN", ">", "above this multiple of ULN", (1.0, 1.5, 3.0, 6.0),
                 first_text="grade 1 above ULN"),
        *_ladder("base", "x baseline", ">", "above this multiple of baseline", (1.5, 3.0),
                 first=2),
    ),
    "fibrinogen": (
        *_ladder("lln", "x LLN", "<", "below this multiple of LLN", (1.0, 0.75, 0.5, 0.25),
                 first_text="grade 1 below LLN"),
        _t("abs_g4", 50.0, "mg/dL", "<", "grade 4 below this absolute value"),
        *_ladder("drop", "% decrease", ">=", "from this decrease from baseline",
                 (25.0, 50.0, 75.0), first=2,
                 first_text="grade 2 from this decrease from baseline (value below LLN)"),
    ),
    "anc": _counts("10^9/L", 1.5, 1.0, 0.5),
    "platelets": _counts("10^9/L", 75.0, 50.0, 25.0),
    "hemoglobin": _counts("g/dL", 10.0, 8.0),
    "alc": _counts("10^9/L", 0.8, 0.5, 0.2),
    "wbc": _counts("10^9/L", 3.0, 2.0, 1.0),
    "triglycerides": (
        _t("abs_g1", 150.0, "mg/dL", ">=", "grade 1 from this value"),
        *_ladder("abs", "mg/dL", ">", "above this value", (300.0, 500.0, 1000.0), first=2),
    ),
}

DEFAULTS: dict[str, dict[str, float]] = {
    a: {t.key: t.value for t in rows} for a, rows in CTCAE_THRESHOLDS.items()
}

TERMS: dict[str, str] = {
    "ast": "Aspartate aminotransferase increased",
    "alt": "Alanine aminotransferase increased",
    "bilirubin": "Blood bilirubin increased",
    "creatinine": "Creatinine increased",
    "fibrinogen": "Fibrinogen decreased",
    "anc": "Neutrophil count decreased",
    "platelets": "Platelet count decreased",
    "hemoglobin": "Anemia",
    "alc": "Lymphocyte count decreased",
    "wbc": "White blood cell decreased",
    "triglycerides": "Hypertriglyceridemia",
}
ANALYTES_GRADED = tuple(TERMS)
_RISE = ("ast", "alt", "bilirubin")
_LOW_COUNTS = ("anc", "platelets", "hemoglobin", "alc", "wbc")
_NEEDS_BASELINE = ("ast", "alt", "bilirubin", "creatinine", "fibrinogen")

# ---------------------------------------------------------------------------------------------
# The grading function (stable contract)
# ---------------------------------------------------------------------------------------------


def _ok(x: float | None) -> TypeGuard[float]:
    # not None and not a float NaN (x != x only for NaN; tested first as the cheap case)
    return x is not None and (x == x or not isinstance(x, float))


def _gt(a: float, b: float) -> bool:
    """a > b, with a cut computed as multiple x limit compared exactly (1.5 x 1.2 = 1.8)."""
    return a > b and not math.isclose(a, b, rel_tol=1e-9)


def _ge(a: float, b: float) -> bool:
    return a > b or math.isclose(a, b, rel_tol=1e-9)


# threshold keys per column, worst grade first ("uln" -> ((4, "uln_g4"), ..., (1, "uln_g1")))
_KEYS = {p: tuple((g, f"{p}_g{g}") for g in (4, 3, 2, 1))
         for p in ("uln", "base", "lln", "abs", "drop")}


def _above(value: float, ref: float, t: Mapping[str, float], prefix: str,
           g1_inclusive: bool = False, grades: tuple[int, ...] = (4, 3, 2, 1)) -> int:
    for g, key in _KEYS[prefix]:
        if g not in grades:
            continue
        cut = t[key] * ref
        if _gt(value, cut) or (g == 1 and g1_inclusive and _ge(value, cut)):
            return g
    return 0


def ctcae_grade(
    analyte: str,
    value: float,
    uln: float | None,
    lln: float | None,
    baseline: float | None,
    baseline_uln: float | None = None,
    baseline_lln: float | None = None,
    t: Mapping[str, float] | None = None,
) -> int | None:
    """CTCAE v5.0 grade (0-4; anaemia 0-3) of one lab value, or None when not gradable.

    Parameters are in the analyte's canonical unit (core/vocabulary/units.py). `baseline_uln` /
    `baseline_lln` are the reference limits of the baseline sample (default: `uln` / `lln`).
    `t` overrides the threshold values (keys as in CTCAE_THRESHOLDS[analyte]).
    A baseline that is unknown is treated as normal (the "x ULN" columns apply).
    """
    if analyte not in DEFAULTS:
        raise KeyError(f"no CTCAE grading for analyte {analyte!r}")
    if not _ok(value):
        return None
    t = DEFAULTS[analyte] if t is None else t
    b_uln = uln if baseline_uln is None else baseline_uln
    del baseline_lln  # part of the contract; §8 bases fibrinogen clauses on the value's LLN
    base = baseline if _ok(baseline) and baseline > 0 else None  # None: no usable baseline

    if analyte in _RISE:
        if base is not None and _ok(b_uln) and base > b_uln:
            return _above(value, base, t, "base", g1_inclusive=analyte != "bilirubin")
        return _above(value, uln, t, "uln") if _ok(uln) else None

    if analyte == "creatinine":
        by_uln = _above(value, uln, t, "uln") if _ok(uln) else None
        by_base = (_above(value, base, t, "base", grades=(3, 2))
                   if base is not None else None)
        if by_uln is None:
            # Without ULN only baseline grades 2-3 are knowable; below them it is unknown.
            return by_base if by_base else None
        return max(by_uln, by_base or 0)

    if analyte == "fibrinogen":
        if _gt(t["abs_g4"], value):
            return 4
        if not _ok(lln):
            return None
        by_lln = 0
        for g, key in _KEYS["lln"]:
            if _gt(t[key] * lln, value):
                by_lln = g
                break
        by_drop = 0
        if _gt(lln, value) and base is not None and value < base:
            drop = 100.0 * (base - value) / base
            by_drop = 1
            for g, key in _KEYS["drop"][:3]:
                if _ge(drop, t[key]):
                    by_drop = g
                    break
        return max(by_lln, by_drop)

    if analyte == "triglycerides":
        for g, key in _KEYS["abs"][:3]:
            if _gt(value, t[key]):
                return g
        return 1 if _ge(value, t["abs_g1"]) else 0

    # blood counts (anc, platelets, hemoglobin, alc, wbc)
    for g, key in _KEYS["abs"][:3]:
        if key in t and _gt(t[key], value):
            return g
    if not _ok(lln):
        return None
    return 1 if _gt(lln, value) else 0


# ---------------------------------------------------------------------------------------------
# Fast per-analyte arrays (rules are replayed for many patients x days)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """One analyte's values up to the as-of instant, in time order, as numpy arrays."""

    analyte: str
    day: np.ndarray
    value: np.ndarray
    ref_low: np.ndarray  # lab limits, catalogue default filled in (criteria §0.2)
    ref_high: np.ndarray
    src: LabSeries | None

    def __len__(self) -> int:
        return len(self.day)

    def evidence(self, i: int, why: str) -> EvidenceItem:
        assert self.src is not None
        return self.src.at(int(i)).evidence(why)


def _full_series(course: Course, src: LabSeries) -> Series:
    """Every value of the analyte in the course index, as arrays (built once per course)."""

    def build() -> Series:
        a = ANALYTES[src.analyte]
        lo = np.asarray(src.low, dtype=float)
        hi = np.asarray(src.high, dtype=float)
        both = np.isnan(lo) & np.isnan(hi)
        lo = np.where(both, np.nan if a.ref_low is None else a.ref_low, lo)
        hi = np.where(both, np.nan if a.ref_high is None else a.ref_high, hi)
        return Series(src.analyte, np.asarray(src.days, dtype=float),
                      np.asarray(src.vals, dtype=float), lo, hi, src)

    return memo(course, ("cw_series_full", src.analyte), build)


def series_of_full(course: Course, src: LabSeries) -> Series:
    """Every value of `src` in the course (whatever the as-of instant), as arrays."""
    return _full_series(course, src)


_EMPTY = np.empty(0)


def series_of(course: Course, analyte: str) -> Series:
    """The analyte's values with day <= course.as_of_day: views into the per-course arrays."""
    src = lab_series(course, analyte)
    k = 0 if src is None else src.count(course.as_of_day)
    if src is None or k == 0:
        return Series(analyte, _EMPTY, _EMPTY, _EMPTY, _EMPTY, src)
    full = _full_series(course, src)
    if k == len(full):
        return full
    return Series(analyte, full.day[:k], full.value[:k], full.ref_low[:k], full.ref_high[:k],
                  src)


def current_day(course: Course) -> float:
    """The course's "now": as_of_day when finite, else the latest day with any data."""
    if math.isfinite(course.as_of_day):
        return float(course.as_of_day)
    latest = course_index(course).last_day
    if len(course.missing):
        latest = max(latest, float(pd.to_numeric(course.missing["day"]).max()))
    return latest


# ---------------------------------------------------------------------------------------------
# The graded rules ctcae_<analyte>
# ---------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.0f}"


def _why(analyte: str, grade: int, value: float, uln: float | None, lln: float | None,
         base: float | None, base_uln: float | None) -> str:
    parts = [f"CTCAE grade {grade}"]
    if analyte in _RISE or analyte == "creatinine":
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


class _Graded:
    """The results of one analyte in the course graded against one baseline, on demand.

    Kept per course for each (thresholds, baseline). A finding as of any instant only needs
    the number of results known by then (`_finding(graded, k)`): the grade of the latest and
    the unbroken grade >= 1 run it ends. Grades are computed when first asked for, so a
    single evaluation grades only the latest run, and a replay (k rising one result at a
    time) extends the previous result's run in O(1).
    """

    __slots__ = ("analyte", "src", "t", "base", "base_uln", "base_lln", "base_value",
                 "base_evidence", "_grade", "_run", "findings")

    def __init__(self, src: LabSeries, t: Thresholds, b: Value | None) -> None:
        self.analyte, self.src, self.t, self.base_value = src.analyte, src, t, b
        self.base = b.value if b is not None else None
        self.base_uln = b.ref_high if b is not None else None
        self.base_lln = b.ref_low if b is not None else None
        shown = b is not None and src.analyte in _NEEDS_BASELINE
        self.base_evidence = b.evidence("baseline") if shown and b is not None else None
        self._grade: dict[int, int | None] = {}
        self._run: dict[int, tuple[int, int]] = {}  # i -> (first index of its run, max grade)
        self.findings: dict[int, Finding] = {}  # finding with k results known

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

    def run(self, last: int) -> tuple[int, int]:
        """(first index, worst grade) of the unbroken grade >= 1 run ending at `last`
        (whose grade is >= 1)."""
        found = self._run.get(last)
        if found is not None:
            return found
        prev = self._run.get(last - 1)
        g = self.grade(last) or 0
        if prev is not None:  # the run of the previous result, extended
            found = (prev[0], max(prev[1], g))
        elif last and self.grade(last - 1):  # walk back to the run's start
            start, worst = last, g
            while start and self.grade(start - 1):
                start -= 1
                worst = max(worst, self.grade(start) or 0)
            found = (start, worst)
        else:
            found = (last, g)
        self._run[last] = found
        return found


def _graded(course: Course, src: LabSeries, t: Thresholds, b: Value | None) -> _Graded:
    """The course's results of `src` graded against baseline `b` (memoised per course)."""
    return memo(course, ("cw_ctcae_graded", src.analyte, thresholds_key(t),
                         None if b is None else b.day), lambda: _Graded(src, t, b))


def _finding(graded: _Graded, k: int) -> Finding:
    """The finding with the first `k` results known (k >= 1); its evidence is made when read."""
    analyte, src, last = graded.analyte, graded.src, k - 1
    rule_id = f"ctcae_{analyte}"
    g = graded.grade(last)
    if g is None:
        need = "the reference range (ULN/LLN) of the latest result"
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, missing=[need],
                       evidence=partial(_unranged_evidence, src, last))
    ev = partial(_evidence, graded, last, g)
    extra: dict[str, object] = {"term": TERMS[analyte]}
    if analyte in _NEEDS_BASELINE and graded.base_value is None:
        extra["baseline"] = "none recorded; graded against the reference range"
    if g == 0:
        return Finding(rule=rule_id, status=Status.NOT_MET, grade=0, evidence=ev,
                       extra=extra)
    # since: first value of the current unbroken run of grade >= 1 results
    start, worst = graded.run(last)
    since = float(math.floor(src.days[start]))
    extra["max_grade_in_run"] = worst
    return Finding(rule=rule_id, status=Status.MET, grade=g, since_day=since,
                   evidence=ev, extra=extra, episode_key=f"since-day-{int(since)}")


def _evidence(graded: _Graded, last: int, g: int) -> list[EvidenceItem]:
    """The graded result (why: its grade and the limits and baseline it was graded against)
    and, where the grading uses it, the baseline."""
    uln, lln = graded.limits(last)
    why = _why(graded.analyte, g, graded.src.vals[last], uln, lln, graded.base,
               graded.base_uln)
    ev = [graded.src.at(last).evidence(why)]
    if graded.base_evidence is not None:
        ev.append(graded.base_evidence)
    return ev


def _unranged_evidence(src: LabSeries, last: int) -> list[EvidenceItem]:
    return [src.at(last).evidence("latest value; reference range needed")]


def _no_result(analyte: str) -> Finding:
    return Finding(rule=f"ctcae_{analyte}", status=Status.NOT_EVALUABLE,
                   missing=[f"a {ANALYTES[analyte].name} result"])


def _evaluator(analyte: str) -> tuple[Evaluator, Replayer]:
    needs_baseline = analyte in _NEEDS_BASELINE

    def evaluate(course: Course, t: Thresholds) -> Finding:
        src = lab_series(course, analyte)
        k = 0 if src is None else src.count(course.as_of_day)
        if src is None or k == 0:
            return _no_result(analyte)
        b = baseline(course, analyte) if needs_baseline else None
        graded = _graded(course, src, t, b)
        # the finding depends only on the results known (their count) and the baseline:
        # built once per course for each and handed out as it is (findings are read-only)
        f = graded.findings.get(k)
        if f is None:
            f = graded.findings[k] = _finding(graded, k)
        return f

    def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        """`evaluate` as of the end of each of `days`, in one pass over the results.

        A pointer walks the results as the days advance. The baseline as of an earlier
        instant is the course's baseline if that result is known by then, else the latest
        result known (reading.baseline takes the last value before a cut-off day among the
        values known), so its index is min(course baseline index, latest index). A finding
        is built when a result arrives or the baseline moves; other days share it.
        """
        src = lab_series(course, analyte)
        if src is None:  # no result on any day
            return [_no_result(analyte) for _ in days]
        n = src.count(course.as_of_day)
        b_all = baseline(course, analyte) if needs_baseline and n else None
        b_all_i = -1 if b_all is None else bisect.bisect_right(src.days, b_all.day) - 1
        out: list[Finding] = []
        k, b_i = 0, None
        graded = f = None
        for day in days:
            end = day + END_OF_DAY
            k_was = k
            while k < n and src.days[k] <= end:
                k += 1
            if k == 0:
                out.append(_no_result(analyte))
            elif k == k_was:  # no new result: the baseline cannot have moved either
                assert f is not None  # built when the first result arrived
                out.append(f)
            else:
                if min(b_all_i, k - 1) != b_i:
                    b_i = min(b_all_i, k - 1)
                    b = src.at(b_i) if b_i >= 0 else None
                    graded = _graded(course, src, t, b)
                assert graded is not None  # b_i starts as None, so the first result grades
                f = _finding(graded, k)
                out.append(f)
        return out

    evaluate.__name__ = f"evaluate_ctcae_{analyte}"
    replay.__name__ = f"replay_ctcae_{analyte}"
    return evaluate, replay


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


def _rule(analyte: str) -> Rule:
    severity, escalates, policy = _severity(analyte)
    return Rule(
        id=f"ctcae_{analyte}",
        title=f"CTCAE v5.0 grade: {TERMS[analyte]}",
        version=VERSION,
        citation=Citation(CITATION_SOURCE, f"CTCAE v5.0 '{TERMS[analyte]}'; criteria.md §8"),
        evidence=C,
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

RULES: tuple[RuleSpec, ...] = tuple(
    RuleSpec(_rule(a), *_evaluator(a)) for a in ANALYTES_GRADED
)

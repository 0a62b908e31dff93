"""HLH-type criteria: CARTOX HLH/MAS (§2), HLH-2004 (§3) and the HScore (§4).

All three are context for clinicians in the CAR-T setting (cytopenias, fever and high ferritin
are expected after lymphodepletion and CRS); each reports how much of it could be evaluated and
never calls a syndrome absent because an input is missing.
"""

from __future__ import annotations

import bisect
import functools
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import numpy as np

from core.course import Course
from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.common import (
    DailyRule,
    Obs,
    ObsSeries,
    Value,
    baseline,
    configured_thresholds,
    course_index,
    dated,
    day_series,
    end_of_day,
    memo,
    thresholds_key,
)
from core.units import Evidence

C2, U, D = Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
MET, NOT_MET, NE = Status.MET, Status.NOT_MET, Status.NOT_EVALUABLE
_WORD = {s: str(s) for s in Status}  # str(status), without the enum machinery per call


@dataclass(slots=True)
class Item:
    status: Status
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: str | None = None


def _tri(found: list[Status]) -> Status:
    if MET in found:
        return MET
    return NOT_MET if found and all(s is NOT_MET for s in found) else NE


# --- Reading a course as of any instant ---------------------------------------------------------
# A replay asks for every rule as of the end of every day, and evaluate walks back over earlier
# days to find since_day. So each rule's finding is computed from the positions of the few
# values that decide it (the latest ferritin, the day's highest temperature, the worst grade...):
# an `_Input` locates such a value as of an instant (bisection; vectorised over all days of a
# replay), and `_DayFindings` caches findings, and items inside them, by those positions. A
# finding is rebuilt only when a value that decides it changes, an item only when its own do.
# Nothing here reads `course.as_of_day`: callers pass instants already cut at it, so one
# `_DayFindings` (memoised on the course index) serves the full course and every day view of it.

R = TypeVar("R")


class _Input:
    """One input of a rule: the days of a series and, for each count n of its values known at
    an instant, the position of the value that decides the rule (the latest, n - 1, unless
    `table` says otherwise); values after `cap` never count."""

    __slots__ = ("days", "table", "cap")

    def __init__(self, days: list[float] | None, table: list[int] | None = None,
                 cap: float = math.inf) -> None:
        self.days, self.table, self.cap = days or [], table, cap

    def at(self, end: float) -> int:
        n = bisect.bisect_right(self.days, min(end, self.cap))
        return n - 1 if self.table is None else self.table[n]

    def over(self, ends: np.ndarray) -> list[int]:
        """`at` for each of `ends`, in one vectorised step."""
        n = np.searchsorted(np.asarray(self.days, dtype=float), np.minimum(ends, self.cap),
                            side="right")
        return (n - 1 if self.table is None else np.asarray(self.table, dtype=np.int64)[n]
                ).tolist()


class _Reader:
    """One course's lab and observation series for a rule's builder, and its item cache."""

    def __init__(self, course: Course) -> None:
        idx = course_index(course)
        self.labs, self.obs = idx.labs, idx.obs
        self.items: dict[tuple, Any] = {}

    def lab_input(self, analyte: str, table: list[int] | None = None,
                  cap: float = math.inf) -> _Input:
        s = self.labs.get(analyte)
        return _Input(None if s is None else s.days, table, cap)

    def obs_input(self, kind: str, table: list[int] | None = None) -> _Input:
        s = self.obs.get(kind)
        return _Input(None if s is None else s.days, table)

    def lab(self, analyte: str, i: int) -> Value | None:
        """Value number `i` of `analyte` (None for -1)."""
        return None if i < 0 else self.labs[analyte].at(i)

    def observation(self, kind: str, i: int) -> Obs | None:
        """Observation number `i` of `kind` (None for -1)."""
        if i < 0:
            return None
        s = self.obs[kind]
        num = s.nums[i]
        return Obs(kind, s.days[i], None if num != num else num, s.texts[i])

    def day_max_temperature(self, j: int) -> Obs | None:
        """The highest temperature of the day of temperature `j`, up to it (None for -1)."""
        return None if j < 0 else self.observation("temperature",
                                                   _day_max(self.obs["temperature"], j))

    def item(self, key: tuple, build: Callable[..., R], *args: Any) -> R:
        """build(*args): an item of a finding, cached by its name and the positions it reads."""
        found = self.items.get(key)
        if found is None:
            found = self.items[key] = build(*args)
        return found


class _Cells(Generic[R]):
    """build(j) for each position j of one input (-1: no value), built on first use."""

    __slots__ = ("build", "cells")

    def __init__(self, of: _Input, build: Callable[[int], R]) -> None:
        self.build = build
        self.cells: list[R | None] = [None] * (len(of.days) + 1)

    def __call__(self, j: int) -> R:
        c = self.cells[j + 1]
        if c is None:
            c = self.cells[j + 1] = self.build(j)
        return c


# A rule's builder: its inputs, and its finding from the positions they give (in that order).
_Builder = tuple[list[_Input], Callable[..., Finding]]


class _DayFindings:
    """A rule's finding on one course as of any instant, cached by the positions its inputs
    give (cached findings are shared: copy one before handing it out)."""

    def __init__(self, builder: _Builder) -> None:
        self.inputs, self.build = builder
        self.cache: dict[tuple, Finding] = {}

    def _get(self, key: tuple) -> Finding:
        f = self.cache.get(key)
        if f is None:
            f = self.cache[key] = self.build(*key)
        return f

    def at(self, end: float) -> Finding:
        return self._get(tuple(i.at(end) for i in self.inputs))

    def over(self, ends: Sequence[float]) -> list[Finding]:
        """`at` for each of `ends` (ascending): positions located for all at once, and a day
        whose positions equal the previous day's reuses its finding."""
        cols = [i.over(np.asarray(ends, dtype=float)) for i in self.inputs]
        out: list[Finding] = []
        last_key: tuple | None = None
        last: Finding | None = None
        for key in zip(*cols, strict=True):
            if key != last_key:
                last_key, last = key, self._get(key)
            out.append(last)  # type: ignore[arg-type]
        return out


def _day_findings(course: Course, key: tuple, builder: Callable[[_Reader], _Builder]
                  ) -> _DayFindings:
    """The rule's `_DayFindings` for this course (built once per course and key)."""
    return memo(course, ("hlh_findings", *key), lambda: _DayFindings(builder(_Reader(course))))


def _running_max(keys: Sequence[float | None], start: int = 0) -> list[int]:
    """best[n] = index of the first maximum of keys[start:n] (None skipped; -1 if none), for
    every count n = 0..len(keys), as max() would pick it."""
    best, cur, cur_key = [-1], -1, 0.0
    for i, k in enumerate(keys):
        if i >= start and k is not None and (cur < 0 or k > cur_key):
            cur, cur_key = i, k
        best.append(cur)
    return best


def _day_max(s: ObsSeries, j: int) -> int:
    """The index of the highest temperature of the ward day of temperature `j`, among those
    logged up to it (the first of equals; an unrecorded number counts as lowest)."""
    def key(i: int) -> float:
        return s.nums[i] if s.nums[i] == s.nums[i] else -math.inf  # NaN = no number

    best = bisect.bisect_left(s.days, float(math.floor(s.days[j])))
    best_key = key(best)
    for i in range(best + 1, j + 1):
        if key(i) > best_key:
            best, best_key = i, key(i)
    return best


def tmax_latest_day(course: Course, end: float) -> Obs | None:
    """The highest temperature of the latest ward day with a temperature logged."""
    r = _Reader(course)
    return r.day_max_temperature(r.obs_input("temperature").at(min(end, course.as_of_day)))


def _daily_rule(rule: Rule, findings: Callable[[Course, Thresholds], _DayFindings]
                ) -> RuleSpec:
    """The rule's spec: evaluate (a DailyRule) and a one-pass replay, both reading the course
    through `findings(course, t)`."""
    per_day = DailyRule(rule, lambda course, d, t: findings(course, t).at(
        min(end_of_day(d), course.as_of_day)))

    def replay(course: Course, t: Thresholds, days: Sequence[int]) -> list[Finding]:
        over = findings(course, t).over
        return [dated(f, since)
                for _, f, since in day_series(course, days, lambda _, ends: over(ends))]

    return RuleSpec(rule, per_day.evaluate, replay)


# --- CARTOX HLH/MAS (Neelapu 2018) -------------------------------------------------------------

CARTOX = Rule(
    id="cartox_hlh",
    title="CAR-T HLH/MAS (CARTOX, Neelapu 2018)",
    version="1.0",
    citation=Citation(
        source="Neelapu et al., Nat Rev Clin Oncol 2018;15(1):47-62 (CARTOX); organ-level "
               "summary via MGH White Book",
        section="HLH/MAS diagnostic box; criteria.md §2",
        doi="10.1038/nrclinonc.2017.148",
    ),
    evidence=U,
    severity=Severity.SEVERE,
    thresholds=(
        Threshold("entry_ferritin", 10_000, "ng/mL", C2,
                  "entry: peak ferritin during the CRS phase above", ">"),
        Threshold("entry_window_end_day", 5, "day", C2,
                  "CRS phase for the entry criterion: days 0 to this day", "<="),
        Threshold("organ_grade_min", 3, "grade", C2,
                  "organ items: CTCAE grade at or above", ">="),
        Threshold("items_required", 2, "count", C2, "items needed of the 4", ">="),
    ),
    inputs=("ferritin", "bilirubin", "ast", "alt", "creatinine", "oliguria", "pulmonary_edema",
            "hemophagocytosis"),
    choices=(
        "Organ sub-items as recalled (§2, [UNCONFIRMED] wording): liver = bilirubin/AST/ALT "
        "(counts once); kidney = creatinine or oliguria; lung = pulmonary oedema grade; "
        "haemophagocytosis.",
        "Organ grades are the worst CTCAE v5 grade (core.rules.ctcae.ctcae_grade) of any value "
        "from day 0 on, with the §0.2 baseline; oliguria and pulmonary oedema are the worst "
        "clinician-entered CTCAE grade since day 0.",
        "Kidney item is not met when creatinine is below grade 3 and no oliguria grade >= 3 "
        "is logged (oliguria is an event observation), as in the §2 worked example.",
        "Entry met but items incomplete -> not evaluable ('possible, incomplete'); not met only "
        "when the missing items could no longer reach 2.",
    ),
    description="Peak ferritin > 10,000 ng/mL in days 0-5 plus >= 2 of 4 organ items.",
)


_CTCAE_RULES: dict[str, Rule] = {}


def _ctcae_rule(analyte: str) -> Rule:
    rule = _CTCAE_RULES.get(analyte)
    if rule is None:
        from core.rules import ctcae

        rule = _CTCAE_RULES[analyte] = next(
            s.rule for s in ctcae.RULES if s.rule.id == f"ctcae_{analyte}")
    return rule

def _worst_ctcae_table(course: Course, analyte: str, start: float = 0.0
                       ) -> tuple[list[int], list[int | None]]:
    """The worst CTCAE grade of `analyte` from day `start` on, for every count of its values:
    (worst[n] = index of the worst among the first n, -1 if none; the grade of each value)."""
    from core.rules import ctcae

    s = course_index(course).labs[analyte]
    tc = configured_thresholds(course, _ctcae_rule(analyte))
    b = baseline(course, analyte)

    def build() -> tuple[list[int], list[int | None]]:
        i0 = bisect.bisect_left(s.days, start)
        grades: list[int | None] = [None] * len(s.days)
        for i in range(i0, len(s.days)):
            v = s.at(i)
            grades[i] = ctcae.ctcae_grade(
                analyte, v.value, v.ref_high, v.ref_low,
                None if b is None or b is v else b.value,
                baseline_uln=None if b is None else b.ref_high,
                baseline_lln=None if b is None else b.ref_low, t=tc)
        return _running_max(grades), grades

    return memo(course, ("hlh_ctcae_worst", analyte, start, None if b is None else b.day,
                         thresholds_key(tc)), build)


def worst_ctcae(course: Course, analyte: str, end: float, start: float = 0.0
                ) -> tuple[int | None, Value | None]:
    """Worst CTCAE grade (and its value) of `analyte` with start <= day <= end."""
    s = course_index(course).labs.get(analyte)
    if s is None:
        return None, None
    worst, grades = _worst_ctcae_table(course, analyte, start)
    j = worst[s.count(min(end, course.as_of_day))]
    return (None, None) if j < 0 else (int(grades[j]), s.at(j))  # type: ignore[arg-type]


def _worst_obs_table(r: _Reader, kind: str) -> list[int]:
    """For every count of `kind` observations: the index of the highest number among them
    from day 0 on (-1 if none)."""
    s = r.obs.get(kind)
    if s is None:
        return [-1]
    return _running_max([None if x != x else x for x in s.nums], bisect.bisect_left(s.days, 0.0))


_LIVER = ("bilirubin", "ast", "alt")
_GRADED = (*_LIVER, "creatinine")


def _cartox_findings(course: Course, t: Thresholds) -> _DayFindings:
    # The organ grades depend on each analyte's baseline (which a day view cut before the
    # baseline draw sees differently) and on the CTCAE thresholds in force: both are in the key.
    deps = []
    for a in _GRADED:
        b = baseline(course, a)
        tc = configured_thresholds(course, _ctcae_rule(a))
        deps.append((None if b is None else b.day, thresholds_key(tc)))
    return _day_findings(course, (CARTOX.id, thresholds_key(t), *deps),
                         lambda r: _cartox_builder(course, r, t))


def _cartox_builder(course: Course, r: _Reader, t: Thresholds) -> _Builder:
    """CARTOX from the values that decide it: the ferritin peak of days 0-5, the worst-graded
    bilirubin/AST/ALT/creatinine, the worst oliguria and oedema grades, and the
    haemophagocytosis result (the first 'yes' from day 0, else the latest 'no')."""
    worst = {a: _worst_ctcae_table(course, a) if a in r.labs else ([-1], []) for a in _GRADED}
    ferritin = r.labs.get("ferritin")
    peak = [-1] if ferritin is None else _running_max(
        ferritin.vals, bisect.bisect_left(ferritin.days, 0.0))
    hemo = r.obs.get("hemophagocytosis")
    hemo_table = [-1]
    if hemo is not None:
        h0, first_yes = bisect.bisect_left(hemo.days, 0.0), None
        for n in range(1, len(hemo.days) + 1):
            if first_yes is None and n > h0 and hemo.nums[n - 1] >= 1:
                first_yes = n - 1
            hemo_table.append(first_yes if first_yes is not None else (n - 1 if n > h0 else -1))
    inputs = [
        r.lab_input("ferritin", peak, cap=t["entry_window_end_day"] + 1.0 - 1e-6),
        *[r.lab_input(a, worst[a][0]) for a in _GRADED],
        r.obs_input("oliguria", _worst_obs_table(r, "oliguria")),
        r.obs_input("pulmonary_edema", _worst_obs_table(r, "pulmonary_edema")),
        r.obs_input("hemophagocytosis", hemo_table),
    ]
    g_min, ed = t["organ_grade_min"], t["entry_window_end_day"]

    def grade(a: str, j: int) -> int | None:
        g = worst[a][1][j] if j >= 0 else None
        return None if g is None else int(g)

    def finding(j_peak: int, j_bili: int, j_ast: int, j_alt: int, j_creat: int, j_olig: int,
                j_edema: int, j_hemo: int) -> Finding:
        ev: list[EvidenceItem] = []
        missing: list[str] = []
        peak_v = r.lab("ferritin", j_peak)
        if peak_v is None:
            entry = NE
            missing.append(f"log ferritin during days 0-{ed:g}")
        else:
            entry = MET if peak_v.value > t["entry_ferritin"] else NOT_MET
            ev.append(peak_v.evidence(f"peak ferritin days 0-{ed:g} "
                                      f"{'>' if entry is MET else '<='} {t['entry_ferritin']:g}"))
        items: dict[str, Item] = {}
        # 1. liver
        liver: list[Status] = []
        liver_ev = []
        for a, j in zip(_LIVER, (j_bili, j_ast, j_alt), strict=True):
            g = grade(a, j)
            if g is None:
                liver.append(NE)
                continue
            liver.append(MET if g >= g_min else NOT_MET)
            if g >= g_min:
                liver_ev.append(r.labs[a].at(j).evidence(f"CTCAE grade {g} (>= {g_min:g})"))
        st = MET if MET in liver else (NOT_MET if NOT_MET in liver else NE)
        items["liver"] = Item(st, liver_ev, "log bilirubin, AST and ALT")
        # 2. kidney: creatinine or oliguria
        g = grade("creatinine", j_creat)
        olig = r.observation("oliguria", j_olig)
        kid_ev = []
        if g is not None:
            kid_ev.append(r.labs["creatinine"].at(j_creat).evidence(f"creatinine CTCAE grade {g}"))
        if olig is not None:
            kid_ev.append(olig.evidence(f"oliguria grade {olig.num:g}"))
        if (g is not None and g >= g_min) or (olig is not None and (olig.num or 0) >= g_min):
            st = MET
        elif g is not None or olig is not None:
            st = NOT_MET
        else:
            st = NE
        items["kidney"] = Item(st, kid_ev, "log creatinine (or an oliguria grade)")
        # 3. pulmonary oedema, 4. haemophagocytosis
        pe = r.observation("pulmonary_edema", j_edema)
        items["lung"] = Item(NE, [], "record the pulmonary oedema grade (0 if none)") \
            if pe is None else Item(MET if (pe.num or 0) >= g_min else NOT_MET,
                                    [pe.evidence(f"pulmonary oedema grade {pe.num:g}")])
        o = r.observation("hemophagocytosis", j_hemo)
        if o is None:
            items["hemophagocytosis"] = Item(NE, [], "record the marrow/tissue "
                                                     "haemophagocytosis result, if a biopsy "
                                                     "was done")
        else:
            items["hemophagocytosis"] = Item(MET if o.is_yes else NOT_MET, [o.evidence(
                "haemophagocytosis reported" if o.is_yes else "no haemophagocytosis")])
        n_met = sum(i.status is MET for i in items.values())
        n_ne = sum(i.status is NE for i in items.values())
        need = t["items_required"]
        for i in items.values():
            ev += i.evidence
            if i.status is NE and i.missing:
                missing.append(i.missing)
        if entry is NOT_MET or n_met + n_ne < need:
            status = NOT_MET
        elif entry is MET and n_met >= need:
            status = MET
        else:
            status = NE
        extra = {
            "entry": _WORD[entry], "items": {k: _WORD[i.status] for k, i in items.items()},
            "items_met": n_met, "items_not_evaluable": n_ne,
        }
        if status is NE and entry is MET:
            extra["summary"] = "possible, incomplete"
        return Finding(CARTOX.id, status, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


# --- HLH-2004 ----------------------------------------------------------------------------------

HLH2004 = Rule(
    id="hlh_2004",
    title="HLH-2004 diagnostic criteria (5 of 8)",
    version="1.0",
    citation=Citation(
        source="Henter et al., Pediatr Blood Cancer 2007;48(2):124-131 (HLH-2004); "
               "reproduced in Blood 2011;118(15):4041 Table 1",
        section="diagnostic criteria, criterion B; criteria.md §3",
        doi="10.1002/pbc.21039",
    ),
    evidence=C2,
    severity=Severity.INFO,
    thresholds=(
        Threshold("fever_c", 38.5, "°C", C2, "fever at or above", ">="),
        Threshold("hemoglobin", 9.0, "g/dL", C2, "cytopenia: haemoglobin below", "<"),
        Threshold("platelets", 100, "10^9/L", C2, "cytopenia: platelets below", "<"),
        Threshold("anc", 1.0, "10^9/L", C2, "cytopenia: neutrophils below", "<"),
        Threshold("cytopenia_lineages", 2, "count", C2, "lineages affected at or above", ">="),
        Threshold("triglycerides", 265, "mg/dL", C2,
                  "fasting triglycerides at or above (3.0 mmol/L)", ">="),
        Threshold("fibrinogen", 150, "mg/dL", C2, "fibrinogen at or below (1.5 g/L)", "<="),
        Threshold("ferritin", 500, "ng/mL", C2, "ferritin at or above", ">="),
        Threshold("scd25", 2400, "U/mL", C2, "soluble CD25 at or above", ">="),
        Threshold("criteria_required", 5, "count", C2, "criteria met of 8", ">="),
    ),
    inputs=("temperature", "organomegaly", "hemoglobin", "platelets", "anc", "triglycerides",
            "fibrinogen", "hemophagocytosis", "nk_activity", "ferritin", "scd25", "fasting"),
    choices=(
        "Each criterion uses the latest value as of the evaluated day; fever uses the highest "
        "temperature of the latest day with a temperature logged.",
        "Original inclusive limits (>= 3.0 mmol/L, <= 1.5 g/L) are used, as §3 asks.",
        "Triglycerides count whatever the fasting status; the evidence says when fasting was "
        "not recorded.",
        "The infant haemoglobin limit (< 10 g/dL under 4 weeks) is not applied: only the birth "
        "year is stored and CAR-T recipients are not neonates.",
        "Molecular diagnosis (criterion A) is not an input.",
        "Met at >= 5 met; not met only when met + not-evaluable < 5; otherwise not evaluable "
        "('indeterminate'), with n met and n evaluable in the extra fields.",
        "Shown as context only: HLH-2004 over-calls after CAR-T (§3 caveat).",
    ),
    description="HLH-2004 criterion B: n of 8 met and n evaluable.",
)

_COMPARE = {"<": (operator.lt, ">="), "<=": (operator.le, ">"), ">=": (operator.ge, "<"),
            ">": (operator.gt, "<=")}  # op: (test, the op shown when the test fails)


def _lab_cells(r: _Reader, of: _Input, analyte: str, limit: float, op: str, missing: str
               ) -> _Cells[Item]:
    """For each position of `analyte`: met when `value op limit`, with the value as evidence
    (the two reasons formatted once); not evaluable with `missing` when there is no value."""
    s = r.labs.get(analyte)
    test, neg = _COMPARE[op]
    why = (f"{neg} {limit:g}", f"{op} {limit:g}")  # by whether the test is met

    def build(j: int) -> Item:
        if j < 0 or s is None:
            return Item(NE, [], missing)
        v = s.at(j)
        met = test(v.value, limit)
        return Item(MET if met else NOT_MET, [v.evidence(why[met])])

    return _Cells(of, build)


def _hlh2004_findings(course: Course, t: Thresholds) -> _DayFindings:
    return _day_findings(course, (HLH2004.id, thresholds_key(t)),
                         lambda r: _hlh2004_builder(course, r, t))


def _hlh2004_builder(course: Course, r: _Reader, t: Thresholds) -> _Builder:
    """HLH-2004 from the latest value of each input (fever: the highest temperature of the
    day of the latest one).
    A criterion read from one input is built once per position of that input (`_Cells`)."""
    temperature = r.obs_input("temperature")
    organomegaly, fasting = r.obs_input("organomegaly"), r.obs_input("fasting")
    hemo, nk = r.obs_input("hemophagocytosis"), r.obs_input("nk_activity")
    labs = {a: r.lab_input(a) for a in ("hemoglobin", "platelets", "anc", "triglycerides",
                                        "fibrinogen", "ferritin", "scd25")}
    inputs = [temperature, organomegaly, labs["hemoglobin"], labs["platelets"], labs["anc"],
              labs["triglycerides"], labs["fibrinogen"], fasting, hemo, nk, labs["ferritin"],
              labs["scd25"]]

    fever_why = tuple(f"highest temperature of the day {op} {t['fever_c']:g} °C"
                      for op in ("<", ">="))  # by whether it is a fever

    def fever(j: int) -> Item:
        temp = r.day_max_temperature(j)
        if temp is None or temp.num is None:
            return Item(NE, [], "log temperature")
        met = temp.num >= t["fever_c"]
        return Item(MET if met else NOT_MET, [temp.evidence(fever_why[met])])

    def splenomegaly(j: int) -> Item:
        org = r.observation("organomegaly", j)
        if org is None:
            return Item(NE, [], "record spleen size (organomegaly exam/imaging)")
        met = org.text in ("splenomegaly", "both")
        return Item(MET if met else NOT_MET, [org.evidence(
            "splenomegaly" if met else "no splenomegaly")])

    def lab_cells(a: str, op: str, missing: str) -> _Cells[Item]:
        return _lab_cells(r, labs[a], a, t[a], op, missing)

    hb_low, plt_low, anc_low = (lab_cells(a, "<", "") for a in ("hemoglobin", "platelets",
                                                                  "anc"))

    def cytopenias(j_hb: int, j_plt: int, j_anc: int) -> Item:
        n_low, n_unknown, cyt_ev = 0, 0, []
        for i in (hb_low(j_hb), plt_low(j_plt), anc_low(j_anc)):
            n_low += i.status is MET
            n_unknown += i.status is NE
            cyt_ev += i.evidence
        need = t["cytopenia_lineages"]
        if n_low >= need:
            return Item(MET, cyt_ev)
        if n_low + n_unknown < need:
            return Item(NOT_MET, cyt_ev)
        return Item(NE, cyt_ev, "log a blood count (Hb, platelets, ANC)")

    tg_high, fib_low = lab_cells("triglycerides", ">=", ""), lab_cells("fibrinogen", "<=", "")

    def triglycerides_fibrinogen(j_tg: int, j_fib: int, fasting: bool) -> Item:
        tg, fib = tg_high(j_tg), fib_low(j_fib)
        tg_ev = tg.evidence
        if tg.status is MET and not fasting:  # a copy: the cell's item is shared
            tg_ev = [replace(tg_ev[0], why=tg_ev[0].why + " (fasting status not recorded)")]
        return Item(_tri([tg.status, fib.status]), tg_ev + fib.evidence,
                    "log fasting triglycerides and fibrinogen")

    def hemophagocytosis(j: int) -> Item:
        o = r.observation("hemophagocytosis", j)
        if o is None:
            return Item(NE, [], "record the marrow/tissue haemophagocytosis result, if a "
                                "biopsy was done")
        return Item(MET if o.is_yes else NOT_MET, [o.evidence(
            "haemophagocytosis" if o.is_yes else "no haemophagocytosis")])

    def nk_activity(j: int) -> Item:
        o = r.observation("nk_activity", j)
        if o is None:
            return Item(NE, [], "enter the NK-cell activity result, if sent")
        return Item(MET if o.text in ("low", "absent") else NOT_MET,
                    [o.evidence(f"NK-cell activity {o.text}")])

    cells = (_Cells(temperature, fever), _Cells(organomegaly, splenomegaly),
             _Cells(hemo, hemophagocytosis), _Cells(nk, nk_activity),
             lab_cells("ferritin", ">=", "log ferritin"),
             lab_cells("scd25", ">=", "enter the soluble CD25 result, if sent"))
    fever_at, spleen_at, hemo_at, nk_at, ferritin_at, scd25_at = cells

    def finding(j_temp: int, j_org: int, j_hb: int, j_plt: int, j_anc: int, j_tg: int,
                j_fib: int, j_fasting: int, j_hemo: int, j_nk: int, j_ferritin: int,
                j_scd25: int) -> Finding:
        crit = {
            "fever": fever_at(j_temp),
            "splenomegaly": spleen_at(j_org),
            "cytopenias": r.item(("cytopenias", j_hb, j_plt, j_anc), cytopenias,
                                 j_hb, j_plt, j_anc),
            "triglycerides_fibrinogen": r.item(("tg_fib", j_tg, j_fib, j_fasting >= 0),
                                               triglycerides_fibrinogen,
                                               j_tg, j_fib, j_fasting >= 0),
            "hemophagocytosis": hemo_at(j_hemo),
            "nk_activity": nk_at(j_nk),
            "ferritin": ferritin_at(j_ferritin),
            "scd25": scd25_at(j_scd25),
        }
        n_met, n_ne = 0, 0
        ev: list[EvidenceItem] = []
        missing: list[str] = []
        criteria: dict[str, str] = {}
        for name, i in crit.items():
            criteria[name] = _WORD[i.status]
            ev += i.evidence
            if i.status is MET:
                n_met += 1
            elif i.status is NE:
                n_ne += 1
                if i.missing:
                    missing.append(i.missing)
        n_eval = len(crit) - n_ne
        need5 = t["criteria_required"]
        status = MET if n_met >= need5 else (NOT_MET if n_met + n_ne < need5 else NE)
        extra = {"met_count": n_met, "evaluable": n_eval, "criteria": criteria}
        if status is NE:
            extra["summary"] = f"indeterminate ({n_met} met, {n_ne} not evaluable)"
        return Finding(HLH2004.id, status, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


# --- HScore ------------------------------------------------------------------------------------

# Published probability table (Fardet 2014, criteria §4.2 [C2]): score -> probability of HS.
# <= 90 is "< 1 %" and >= 250 "> 99 %"; those ends are held flat at 1 % / 99 % for the number.
PROBABILITY_TABLE = (
    (90, 0.01), (100, 0.01), (110, 0.03), (120, 0.05), (130, 0.09), (140, 0.16), (150, 0.25),
    (160, 0.40), (170, 0.54), (180, 0.70), (190, 0.80), (200, 0.88), (210, 0.93),
    (220, 0.96), (230, 0.98), (240, 0.99), (250, 0.99),
)


def _pts(key: str, value: float, description: str) -> Threshold:
    return Threshold(key, value, "points", C2, description)


HSCORE = Rule(
    id="hscore",
    title="HScore (Fardet 2014): points, breakdown and probability",
    version="1.0",
    citation=Citation(
        source="Fardet et al., Arthritis Rheumatol 2014;66(9):2613-2620; table reproduced in "
               "Case Rep Rheumatol 2017:5304180 Table 3",
        section="HScore variables and probability table; criteria.md §4.1-4.3",
        doi="10.1002/art.38690",
    ),
    evidence=D,  # points, bins and cut-off are [C2]; the logistic fit (probability_fit) is ours
    severity=Severity.INFO,
    scored=True,
    thresholds=(
        _pts("immunosuppression_points", 18, "known underlying immunosuppression"),
        Threshold("temp_mid_c", 38.4, "°C", C2, "temperature from this (inclusive): 33 points",
                  ">="),
        Threshold("temp_high_c", 39.4, "°C", C2, "temperature above this: 49 points", ">"),
        _pts("temp_mid_points", 33, "temperature 38.4-39.4 °C"),
        _pts("temp_high_points", 49, "temperature > 39.4 °C"),
        _pts("organomegaly_one_points", 23, "hepatomegaly or splenomegaly"),
        _pts("organomegaly_both_points", 38, "hepatomegaly and splenomegaly"),
        Threshold("cyto_hemoglobin", 9.2, "g/dL", C2, "cytopenia: haemoglobin at or below",
                  "<="),
        Threshold("cyto_wbc", 5.0, "10^9/L", C2, "cytopenia: WBC at or below", "<="),
        Threshold("cyto_platelets", 110, "10^9/L", C2, "cytopenia: platelets at or below",
                  "<="),
        _pts("cyto_two_points", 24, "2 lineages"),
        _pts("cyto_three_points", 34, "3 lineages"),
        Threshold("ferritin_mid", 2000, "ng/mL", C2, "ferritin from this (inclusive)", ">="),
        Threshold("ferritin_high", 6000, "ng/mL", C2, "ferritin above this", ">"),
        _pts("ferritin_mid_points", 35, "ferritin 2,000-6,000 ng/mL"),
        _pts("ferritin_high_points", 50, "ferritin > 6,000 ng/mL"),
        Threshold("tg_mid", 132.7, "mg/dL", C2, "triglycerides from this (1.5 mmol/L)", ">="),
        Threshold("tg_high", 4.0 * 88.57, "mg/dL", C2,
                  "triglycerides above this (4.0 mmol/L exactly, x 88.57)", ">"),
        _pts("tg_mid_points", 44, "triglycerides 1.5-4 mmol/L"),
        _pts("tg_high_points", 64, "triglycerides > 4 mmol/L"),
        Threshold("fibrinogen", 250, "mg/dL", C2, "fibrinogen at or below (2.5 g/L)", "<="),
        _pts("fibrinogen_points", 30, "fibrinogen <= 2.5 g/L"),
        Threshold("ast", 30, "U/L", C2, "AST at or above", ">="),
        _pts("ast_points", 19, "AST >= 30 U/L"),
        _pts("hemophagocytosis_points", 35, "haemophagocytosis on bone-marrow aspirate"),
        Threshold("cutoff", 169, "points", C2,
                  "best cut-off (sensitivity 93 %, specificity 86 %): score at or above", ">="),
        Threshold("fit_slope", 0.0628, "logit/point", D,
                  "our least-squares logistic fit to the table (not published)"),
        Threshold("fit_intercept", -10.54, "logit", D, "our logistic fit intercept"),
    ),
    inputs=("immunosuppression", "temperature", "organomegaly", "hemoglobin", "wbc",
            "platelets", "ferritin", "triglycerides", "fibrinogen", "ast", "hemophagocytosis"),
    choices=(
        "Each item uses the latest value as of the evaluated day; temperature is the highest "
        "of the latest day with a temperature logged.",
        "Score = points of the items known; missing items are listed and the score is a lower "
        "bound: met when it reaches the cut-off, not met only when even the missing items' "
        "maximum points could not reach it, else not evaluable (score_max in extra).",
        "Cut-off: a score of 169 or more counts as above the cut-off (above_169).",
        "Upper triglyceride bin starts above 4.0 mmol/L converted exactly (354.28 mg/dL) so "
        "that 4.0 mmol/L scores 44 as §4.1 tabulates; the lower bin starts at 132.7 mg/dL.",
        "Probability: linear interpolation on the published table, held at 1 % below 100 and "
        "99 % from 240 (text '< 1 %' at <= 90, '> 99 %' at >= 250); the logistic fit of §4.2 "
        "[DESIGN] is reported beside it as probability_fit.",
        "Known immunosuppression is a clinician-entered yes/no (whether lymphodepletion or "
        "steroids count is not defined by the score).",
    ),
    description="HScore 0-337 for reactive haemophagocytic syndrome; context only after CAR-T.",
)


@functools.lru_cache(maxsize=512)
def probability_from_table(score: float) -> tuple[float, str]:
    """Interpolated probability and its text from the published table (§4.2)."""
    xs = [p[0] for p in PROBABILITY_TABLE]
    ys = [p[1] for p in PROBABILITY_TABLE]
    p = float(np.interp(score, xs, ys))
    if score <= 90:
        return p, "< 1 %"
    if score >= 250:
        return p, "> 99 %"
    for x, y in PROBABILITY_TABLE[1:-1]:
        if score == x:
            return p, f"{y * 100:.0f} %"
    i = int(np.searchsorted(xs, score))
    lo, hi = ys[i - 1], ys[i]
    if lo == hi:
        return p, f"{'<=' if score < 100 else '>='} {lo * 100:.0f} %"
    return p, f"{lo * 100:.0f}–{hi * 100:.0f} %"


# Points of one HScore item: (points or None when unknown, most points if unknown, evidence).
_Points = tuple[float | None, float, EvidenceItem | None]

_HSCORE_WORDS = {
    "immunosuppression": "known immunosuppression (yes/no)", "temperature": "temperature",
    "organomegaly": "organomegaly (liver/spleen exam)",
    "blood counts": "a blood count (Hb, WBC, platelets)", "ferritin": "ferritin",
    "triglycerides": "triglycerides", "fibrinogen": "fibrinogen", "ast": "AST",
    "hemophagocytosis": "bone-marrow haemophagocytosis (if aspirate done)",
}
_HSCORE_LABS = ("ferritin", "triglycerides", "fibrinogen", "ast")


def _hscore_findings(course: Course, t: Thresholds) -> _DayFindings:
    return _day_findings(course, (HSCORE.id, thresholds_key(t)),
                         lambda r: _hscore_builder(course, r, t))


def _hscore_builder(course: Course, r: _Reader, t: Thresholds) -> _Builder:
    """HScore from the latest value of each input (temperature: the highest of the day of the
    latest one). An item read from one input is built once per position of that input."""
    imm, hemo = r.obs_input("immunosuppression"), r.obs_input("hemophagocytosis")
    temps, organs = r.obs_input("temperature"), r.obs_input("organomegaly")
    labs = {a: r.lab_input(a) for a in ("hemoglobin", "wbc", "platelets", *_HSCORE_LABS)}
    inputs = [imm, temps, organs, *labs.values(), hemo]
    lab_bins: dict[str, Callable[[float], float]] = {
        "ferritin": lambda x: t["ferritin_high_points"] if x > t["ferritin_high"] else (
            t["ferritin_mid_points"] if x >= t["ferritin_mid"] else 0.0),
        "triglycerides": lambda x: t["tg_high_points"] if x > t["tg_high"] else (
            t["tg_mid_points"] if x >= t["tg_mid"] else 0.0),
        "fibrinogen": lambda x: t["fibrinogen_points"] if x <= t["fibrinogen"] else 0.0,
        "ast": lambda x: t["ast_points"] if x >= t["ast"] else 0.0,
    }
    lab_most = {"ferritin": t["ferritin_high_points"], "triglycerides": t["tg_high_points"],
                "fibrinogen": t["fibrinogen_points"], "ast": t["ast_points"]}

    @functools.cache
    def points_why(p: float) -> str:
        return f"{p:g} points"

    def immunosuppression(j: int) -> _Points:
        o = r.observation("immunosuppression", j)
        ip = t["immunosuppression_points"]
        if o is None:
            return None, ip, None
        return (ip if o.is_yes else 0.0), ip, o.evidence(
            f"{ip:g} points" if o.is_yes else "0 points")

    def temperature(j: int) -> _Points:
        temp = r.day_max_temperature(j)
        if temp is None or temp.num is None:
            return None, t["temp_high_points"], None
        x = temp.num
        p = t["temp_high_points"] if x > t["temp_high_c"] else (
            t["temp_mid_points"] if x >= t["temp_mid_c"] else 0.0)
        return p, 0, temp.evidence(points_why(p))

    def organomegaly(j: int) -> _Points:
        org = r.observation("organomegaly", j)
        if org is None:
            return None, t["organomegaly_both_points"], None
        p = {"both": t["organomegaly_both_points"], "hepatomegaly":
             t["organomegaly_one_points"], "splenomegaly": t["organomegaly_one_points"]
             }.get(org.text or "", 0.0)
        return p, 0, org.evidence(points_why(p))

    def lineage(a: str, key: str) -> _Cells[tuple[bool | None, EvidenceItem | None]]:
        """Whether the latest count is low (None if unknown), with its evidence."""
        s, limit = r.labs.get(a), t[key]
        why = (f"> {limit:g}: no cytopenia", f"<= {limit:g}: cytopenia")  # by whether low

        def build(j: int) -> tuple[bool | None, EvidenceItem | None]:
            if j < 0 or s is None:
                return None, None
            v = s.at(j)
            low = v.value <= limit
            return low, v.evidence(why[low])

        return _Cells(labs[a], build)

    hb_low, wbc_low, plt_low = (lineage(a, key) for a, key in (
        ("hemoglobin", "cyto_hemoglobin"), ("wbc", "cyto_wbc"), ("platelets", "cyto_platelets")))

    def cytopenias(j_hb: int, j_wbc: int, j_plt: int) -> tuple[int, int, list[EvidenceItem]]:
        n_low, n_unknown, ev = 0, 0, []
        for low, e in (hb_low(j_hb), wbc_low(j_wbc), plt_low(j_plt)):
            if low is None:
                n_unknown += 1
                continue
            n_low += low
            ev.append(e)
        return n_low, n_unknown, ev  # type: ignore[return-value]

    def lab_points(a: str) -> _Cells[_Points]:
        s, bins, most = r.labs.get(a), lab_bins[a], lab_most[a]

        def build(j: int) -> _Points:
            if j < 0 or s is None:
                return None, most, None
            v = s.at(j)
            p = bins(v.value)
            return p, 0, v.evidence(points_why(p))

        return _Cells(labs[a], build)

    def hemophagocytosis(j: int) -> _Points:
        o = r.observation("hemophagocytosis", j)
        hp = t["hemophagocytosis_points"]
        if o is None:
            return None, hp, None
        return (hp if o.is_yes else 0.0), hp, o.evidence(f"{hp if o.is_yes else 0:g} points")

    def cyto_pts(n: int) -> float:
        return t["cyto_three_points"] if n >= 3 else (t["cyto_two_points"] if n == 2 else 0.0)

    imm_at, temp_at, org_at, hemo_at = (
        _Cells(imm, immunosuppression), _Cells(temps, temperature),
        _Cells(organs, organomegaly), _Cells(hemo, hemophagocytosis))
    lab_at = [lab_points(a) for a in _HSCORE_LABS]

    def finding(j_imm: int, j_temp: int, j_org: int, j_hb: int, j_wbc: int, j_plt: int,
                *j_labs_hemo: int) -> Finding:
        breakdown: dict[str, float | None] = {}
        maxima: dict[str, float] = {}
        ev: list[EvidenceItem] = []
        missing_items: list[str] = []

        def add(name: str, points: _Points) -> None:
            pts, most, e = points
            breakdown[name] = pts
            if pts is None:
                maxima[name] = most
                missing_items.append(name)
            if e is not None:
                ev.append(e)

        add("immunosuppression", imm_at(j_imm))
        add("temperature", temp_at(j_temp))
        add("organomegaly", org_at(j_org))
        n_low, n_unknown, cyt_ev = r.item(("cyto", j_hb, j_wbc, j_plt), cytopenias,
                                          j_hb, j_wbc, j_plt)
        ev += cyt_ev
        lo, hi = cyto_pts(n_low), cyto_pts(n_low + n_unknown)
        partial = None
        if lo == hi:
            breakdown["cytopenias"] = lo
        else:
            breakdown["cytopenias"] = None
            maxima["cytopenias"] = hi
            missing_items.append("blood counts")
            partial = lo
        *j_labs, j_hemo = j_labs_hemo
        for a, at, j in zip(_HSCORE_LABS, lab_at, j_labs, strict=True):
            add(a, at(j))
        add("hemophagocytosis", hemo_at(j_hemo))
        score = sum(v for v in breakdown.values() if v is not None) + (partial or 0.0)
        score_max = score + sum(maxima.values())
        cutoff = t["cutoff"]
        status = MET if score >= cutoff else (NOT_MET if score_max < cutoff else NE)
        prob, text = probability_from_table(score)
        fit = 1.0 / (1.0 + math.exp(-(t["fit_slope"] * score + t["fit_intercept"])))
        missing = []
        if missing_items:
            missing = [f"log {', '.join(_HSCORE_WORDS[m] for m in missing_items)} to complete "
                       "the HScore"]
        extra = {
            "probability": round(prob, 4), "probability_table": text,
            "probability_fit": round(fit, 3), "above_169": score >= cutoff,
            "breakdown": breakdown, "score_max": score_max, "missing_items": missing_items,
        }
        return Finding(HSCORE.id, status, score=score, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


RULES: tuple[RuleSpec, ...] = (
    _daily_rule(CARTOX, _cartox_findings),
    _daily_rule(HLH2004, _hlh2004_findings),
    _daily_rule(HSCORE, _hscore_findings),
)

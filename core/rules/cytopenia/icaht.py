"""ICAHT: early and late neutropenia grades (criteria §6.1)."""

from __future__ import annotations

from core.rules.base import Citation, Rule, RuleSpec, Severity
from core.rules.cytopenia import early, late
from core.rules.cytopenia.counting import GAP_THRESHOLDS, VERSION, C, U, th
from core.rules.cytopenia.early import EARLY_CHOICES, EarlyGrading
from core.rules.cytopenia.late import LateGrading

ICAHT_CITATION = Citation(
    "Rejeski et al., EHA/EBMT ICAHT consensus grading, Blood 2023;142(10):865-877",
    "N-ICAHT grading table; criteria.md §6.1", "10.1182/blood.2023020578")

ICAHT_EARLY_THRESHOLDS = (
    th("cut", 0.5, "10^9/L", U, "ANC at or below this counts as a neutropenic day", "<="),
    th("deep_cut", 0.1, "10^9/L", U, "ANC at or below this counts as a profound day", "<="),
    th("g1_days", 1, "days", U, "grade 1: days with ANC <= 0.5", ">="),
    th("g2_days", 7, "days", U, "grade 2: days with ANC <= 0.5", ">="),
    th("g3_days", 14, "days", U, "grade 3: days with ANC <= 0.5", ">="),
    th("g4_days", 31, "days", U,
       "grade 4: days with ANC <= 0.5; 31 = more than 30, never recovered in days 0-30 "
       "(criteria §6.1; the public grader codes 30 days as grade 3)", ">="),
    th("g3_deep_days", 7, "days", U,
       "grade 3: days with ANC <= 0.1 (third-party code; 7-13 days)", ">="),
    th("g4_deep_days", 14, "days", U, "grade 4: days with ANC <= 0.1", ">="),
    th("window_end_day", 30, "day", C, "early ICAHT covers days 0-30", "<="),
    th("recovery_days", 3, "days", C, "recovery = first of this many days above", ">="),
    *GAP_THRESHOLDS,
)


_ICAHT_EARLY = EarlyGrading("icaht_early", "anc", (
    ("cut", True, (("g1_days", 1), ("g2_days", 2), ("g3_days", 3), ("g4_days", 4))),
    ("deep_cut", True, (("g3_deep_days", 3), ("g4_deep_days", 4))),
), platelets=False)


ICAHT_LATE_THRESHOLDS = (
    th("late_start_day", 31, "day", C, "late ICAHT: after day +30", ">="),
    th("g1_cut", 1.5, "10^9/L", U, "grade 1: ANC nadir at or below", "<="),
    th("g2_cut", 1.0, "10^9/L", U, "grade 2: ANC nadir at or below", "<="),
    th("g3_cut", 0.5, "10^9/L", U, "grade 3: ANC nadir at or below", "<="),
    th("g4_cut", 0.1, "10^9/L", U, "grade 4: ANC nadir at or below", "<="),
    th("min_values", 2, "results", C, "a late grade needs at least this many results", ">="),
)


_ICAHT_LATE = LateGrading("icaht_late", "anc", end_key=None, cuts=(
    ("g1_cut", True), ("g2_cut", True), ("g3_cut", True), ("g4_cut", True),
), lists_results=True)


RULES: tuple[RuleSpec, ...] = (
    early.spec(Rule(
        id="icaht_early", title="Early ICAHT (neutrophils, days 0-30)", version=VERSION,
        citation=ICAHT_CITATION,
        evidence=U, severity=Severity.WARNING, thresholds=ICAHT_EARLY_THRESHOLDS,
        inputs=("anc",), graded=True, escalates_at_grade=3, short_name="Early ICAHT",
        choices=EARLY_CHOICES + (
            "ANC <= 0.1 for 7-13 days = grade 3 (third-party code row, criteria §6.1/§14 #10).",
            "Grade 3 = 14-30 days <= 0.5, grade 4 = > 30 days, i.e. all 31 days of the "
            "window (criteria §6.1 and the public grader; g4_days = 30 is the older reading).",
        ),
        description="Days with ANC <= 0.5 and <= 0.1 x 10^9/L in days 0-30 (cumulative by "
                    "default), graded on the values there are, with the measured days stated.",
    ), _ICAHT_EARLY),
    late.spec(Rule(
        id="icaht_late", title="Late ICAHT (neutrophils, after day 30)", version=VERSION,
        citation=ICAHT_CITATION,
        evidence=U, severity=Severity.WARNING, thresholds=ICAHT_LATE_THRESHOLDS,
        inputs=("anc",), graded=True, escalates_at_grade=3, short_name="Late ICAHT",
        choices=(
            "Grade = deepest level reached by at least min_values (2) results after day 30 "
            "(not necessarily consecutive; criteria §6.1 '>= 2 measurements'): one low value "
            "grades only as deep as the second-lowest result; a single result is not enough "
            "(not_evaluable). The public grader instead grades the nadir when the second-"
            "lowest value is <= 1.5 (and a lone value by itself); min_values = 1 is the "
            "nearest site setting.",
            "No end day for late N-ICAHT (the table gives none); results after a progression, "
            "next_therapy or death event are excluded.",
            "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
        ),
        description="ANC nadir after day +30 confirmed by two or more results.",
    ), _ICAHT_LATE),
)

"""T-ICAHT: early and late thrombocytopenia grades (criteria §6.3)."""

from __future__ import annotations

from core.rules.base import Citation, Rule, RuleSpec, Severity
from core.rules.cytopenia import early, late
from core.rules.cytopenia.counting import GAP_THRESHOLDS, VERSION, C, D, th
from core.rules.cytopenia.early import EARLY_CHOICES, EarlyGrading
from core.rules.cytopenia.late import LateGrading

TICAHT_CITE = ("Rejeski et al., T-ICAHT grading, Blood 2025", "10.1182/blood.2025028833")

TICAHT_EARLY_THRESHOLDS = (
    th("cut", 50, "10^9/L", C, "platelets below this count as a day for grades 1-2", "<"),
    th("deep_cut", 20, "10^9/L", C, "platelets below this count as a day for grades 3-4", "<"),
    th("g1_days", 1, "days", C, "grade 1: days with platelets < 50", ">="),
    th("g2_days", 7, "days", C, "grade 2: days with platelets < 50", ">="),
    th("g3_deep_days", 1, "days", C, "grade 3: days with platelets < 20", ">="),
    th("g4_deep_days", 14, "days", C, "grade 4: days with platelets < 20", ">="),
    th("window_end_day", 30, "day", C, "early T-ICAHT covers days 0-30", "<="),
    th("recovery_days", 3, "days", C, "recovery = first of this many days >= 20", ">="),
    th("transfusion_window_days", 7, "days", C,
       "no recovery within this many days after a platelet transfusion", "<="),
    *GAP_THRESHOLDS,
)


_TICAHT_EARLY = EarlyGrading("ticaht_early", "platelets", (
    ("cut", False, (("g1_days", 1), ("g2_days", 2))),
    ("deep_cut", False, (("g3_deep_days", 3), ("g4_deep_days", 4))),
), platelets=True)


TICAHT_LATE_THRESHOLDS = (
    th("late_start_day", 31, "day", C, "late T-ICAHT covers days 31-100", ">="),
    th("late_end_day", 100, "day", C, "late T-ICAHT covers days 31-100", "<="),
    th("g1_cut", 100, "10^9/L", C, "grade 1: platelets below", "<"),
    th("g2_cut", 50, "10^9/L", C, "grade 2: platelets below (corrected Grade 2 column)", "<"),
    th("deep_cut", 20, "10^9/L", C, "grades 3-4: platelets below", "<"),
    th("g3_deep_days", 1, "days", C, "grade 3: days with platelets < 20", ">="),
    th("g4_deep_days", 14, "days", C, "grade 4: days with platelets < 20", ">="),
    th("min_values", 2, "results", C, "a late grade needs at least this many results", ">="),
    th("recovery_days", 3, "days", C, "recovery = first of this many days >= 20", ">="),
    th("transfusion_window_days", 7, "days", C,
       "no recovery within this many days after a platelet transfusion", "<="),
    th("carry_forward_days", 1, "days", D, "a missing day takes the last value this long",
       "<="),
)


_TICAHT_LATE = LateGrading("ticaht_late", "platelets", end_key="late_end_day", cuts=(
    ("g1_cut", False), ("g2_cut", False), ("deep_cut", False),
), lists_results=False, counts_deep_days=True)


RULES: tuple[RuleSpec, ...] = (
    early.spec(Rule(
        id="ticaht_early", title="Early T-ICAHT (platelets, days 0-30)", version=VERSION,
        citation=Citation(TICAHT_CITE[0], "Table 1; criteria.md §6.3", TICAHT_CITE[1]),
        evidence=D, severity=Severity.WARNING, thresholds=TICAHT_EARLY_THRESHOLDS,
        inputs=("platelets", "platelet_transfusion", "transfusion"), graded=True,
        escalates_at_grade=3, short_name="Early T-ICAHT",
        choices=EARLY_CHOICES + (
            "Transfusion rule applies to the < 20 count only (recovery is defined as >= 20 "
            "without transfusion): a day >= 20 within 7 days after a platelet transfusion "
            "(treatment platelet_transfusion or observation transfusion=platelets, calendar "
            "days, transfusion day included) is never a recovery day and counts when the "
            "period goes on.",
        ),
        description="Days with platelets < 50 and < 20 x 10^9/L in days 0-30 (cumulative by "
                    "default), graded on the values there are, with the measured days stated.",
    ), _TICAHT_EARLY),
    late.spec(Rule(
        id="ticaht_late", title="Late T-ICAHT (platelets, days 31-100)", version=VERSION,
        citation=Citation(TICAHT_CITE[0], "Table 1 (late < 50 row in Grade 2); criteria.md "
                          "§6.3", TICAHT_CITE[1]),
        evidence=D, severity=Severity.WARNING, thresholds=TICAHT_LATE_THRESHOLDS,
        inputs=("platelets", "platelet_transfusion", "transfusion"), graded=True,
        escalates_at_grade=3, short_name="Late T-ICAHT",
        choices=(
            "Each late row needs at least min_values (2) results below it (late counting rule "
            "of §6.1, stated to mirror T-ICAHT).",
            "Grade 4 (>= 14 days < 20): daily count with 1-day carry forward, unknown days "
            "between results < 20 counted in (sparse late sampling), transfusion rule as early.",
            "Late < 50 row sits in Grade 2 (corrected, criteria §6.3 note).",
            "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
        ),
        description="Platelet depth (and days < 20) in days 31-100.",
    ), _TICAHT_LATE),
)

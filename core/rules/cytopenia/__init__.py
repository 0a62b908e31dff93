"""Haematotoxicity rules: ICAHT (§6.1), T-ICAHT (§6.3), prolonged cytopenia (§6.2) and
CAR-HEMATOTOX (§7) of criteria.md.

Counting model (criteria §6.1/§6.3, implementation [DESIGN]): one value per day (the day's
lowest, i.e. worst, result); a missing day takes the previous day's measured value for at
most `carry_forward_days` day(s), otherwise the day is unknown. Days are walked through a
small state machine: a neutropenic/thrombocytopenic period starts on the first day at or
below the threshold and lasts until recovery, the first of `recovery_days` consecutive days
above it; interruptions shorter than that are counted in. For platelets below 20, a day
within `transfusion_window_days` after a platelet transfusion is never a recovery day.

Early grades use every day 0-30; an unknown day is bounded both ways (counted as above and
as below): equal grades are reported as such, a lower bound >= 1 is reported as met with
`grade_at_most`, otherwise the rule is not evaluable and lists the days to log.

Replay (backtesting) runs the same as-of functions as `evaluate`, once per day on the full
course, reading per-course tables by prefix (asof.py).

Modules: shared (declaration constants, daily grid, counting machine, censoring), asof
(per-course cache, evaluate and replay hooks, result windows, counts by prefix), grading
(early counting and late depth tables, shared by ICAHT and T-ICAHT), then one module per
rule family: icaht, ticaht, prolonged, hematotox. RULES lists them in display order.
"""

from __future__ import annotations

from collections.abc import Callable

from core.course import Course
from core.rules.base import Finding, RuleSpec, Thresholds
from core.rules.cytopenia import hematotox, icaht, prolonged, ticaht
from core.rules.cytopenia.shared import ABOVE, BELOW, SUPPORTED, UNKNOWN, count_days

__all__ = ["ABOVE", "BELOW", "EVALUATORS", "RULES", "SUPPORTED", "UNKNOWN", "count_days"]

RULES: tuple[RuleSpec, ...] = (*icaht.RULES, *ticaht.RULES, *prolonged.RULES,
                               *hematotox.RULES)

EVALUATORS: dict[str, Callable[[Course, Thresholds], Finding]] = {
    r.rule.id: r.evaluate for r in RULES
}

"""Haematotoxicity rules: ICAHT (§6.1), T-ICAHT (§6.3), prolonged cytopenia (§6.2) and
CAR-HEMATOTOX (§7) of criteria.md.

Counting model (criteria §6.1/§6.3, implementation [DESIGN] after the public grader): one
value per day (the day's lowest, i.e. worst, result); gaps of up to `bridge_days`
unmeasured days are bridged (linear interpolation between two results, the last result
carried after it), longer gaps are unknown. Days are walked through a small state machine:
a neutropenic/thrombocytopenic period starts on the first day at or below the threshold and
lasts until recovery, the first of `recovery_days` consecutive days above it; interruptions
shorter than that are counted in. Periods add up (cumulative) or the longest counts
(`count_longest_run`). For platelets below 20, a day within `transfusion_window_days` after
a platelet transfusion is never a recovery day.

Early grades are given from the values there are (design.md: an integer grade whenever
evaluable), with the measured days and the grades if every unmeasured day were low / not
low; only inpatient days (lab_overdue's monitoring phase, up to discharge) are prompted for.
Late T-ICAHT grade 4 still counts daily with `carry_forward_days` and bridges unknown days
between results below 20.

Replay (backtesting) runs the same as-of functions as `evaluate`, once per day on the full
course (replay.py). An early window is recounted each day while open (bridging reads the next
result, so a prefix of the whole course's count is not the count as known then) and
computed once when closed; late rules read per-course tables by prefix.

Modules: counting (declaration constants, daily grid, counting machine, censoring), replay
(per-course cache, evaluate and replay hooks, result windows, counts by prefix), grading
(early counting and late depth tables, shared by ICAHT and T-ICAHT), then one module per
rule family: icaht, ticaht, prolonged, hematotox. RULES lists them in display order.
"""

from __future__ import annotations

from collections.abc import Callable

from core.rules.base import Finding, RuleSpec, Thresholds
from core.rules.cytopenia import hematotox, icaht, prolonged, ticaht
from core.rules.cytopenia.counting import ABOVE, BELOW, SUPPORTED, UNKNOWN, count_days
from core.vocabulary.course import Course

__all__ = ["ABOVE", "BELOW", "EVALUATORS", "RULES", "SUPPORTED", "UNKNOWN", "count_days"]

RULES: tuple[RuleSpec, ...] = (*icaht.RULES, *ticaht.RULES, *prolonged.RULES,
                               *hematotox.RULES)

EVALUATORS: dict[str, Callable[[Course, Thresholds], Finding]] = {
    r.rule.id: r.evaluate for r in RULES if r.evaluate is not None
}

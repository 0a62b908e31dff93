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

Every rule is judged over a whole ward (core.rules.frames.Ward): each course-day reads what
was known at its end. Modules: counting (declaration constants, the counting machine over
many windows at once), readers (what the rules read from the ward, per instant), early and
late (the ICAHT / T-ICAHT grading, shared by both), then one module per rule family: icaht,
ticaht, prolonged, hematotox. RULES lists them in display order.
"""

from __future__ import annotations

from core.rules.base import RuleSpec
from core.rules.cytopenia import hematotox, icaht, prolonged, ticaht

__all__ = ["RULES"]

RULES: tuple[RuleSpec, ...] = (*icaht.RULES, *ticaht.RULES, *prolonged.RULES,
                               *hematotox.RULES)

"""The patient page's score panel (core.views.patient_summary) shows what the rules say."""

from __future__ import annotations

from core.rules.engine import evaluate_course
from core.views.patient_summary import score_blocks
from core.vocabulary.course import make_course


def test_the_icaht_rows_say_how_much_of_the_window_was_measured() -> None:
    # daily ANC to day 14, then three times a week (an outpatient course), never low
    days = [*range(0, 15), 16, 18, 21, 23, 25, 28, 30]
    course = make_course(labs=[("anc", d + 0.3, 2.5) for d in days], as_of_day=31.5)
    [block] = [b for b in score_blocks(evaluate_course(course)) if b.rule == "icaht"]
    label, state, detail = next(r for r in block.rows if r[0].startswith("Neutrophils, early"))
    assert state == "none", state  # grade 0
    assert "of 31 days measured" in detail, detail

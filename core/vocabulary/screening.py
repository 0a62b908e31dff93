"""The sentence every alert, page and notification carries (design.md: screening flags)."""

SCREENING_NOTE = "Screening flag for clinician review — not a diagnosis."

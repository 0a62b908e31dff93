"""CTCAE v5.0 grades of the monitored labs (criteria.md §8), one graded rule per analyte.

- grading: the thresholds as data (CTCAE_THRESHOLDS, DEFAULTS) and `ctcae_grades` (the
  grades of whole arrays of values);
- rules: the rules ctcae_<analyte> (RULES), judged over a whole ward by columns, and
  `grades_of` (a ward's lab rows graded against given baseline rows);
"""

from core.rules.ctcae.grading import ANALYTES_GRADED, CTCAE_THRESHOLDS, ctcae_grades
from core.rules.ctcae.rules import RULES

__all__ = ["ANALYTES_GRADED", "CTCAE_THRESHOLDS", "RULES", "ctcae_grades"]

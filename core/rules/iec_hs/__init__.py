"""IEC-HS screen (ASTCT 2023, Hines et al.), with ferritin kinetics and timing vs CRS.

criteria.md §1.2 [DESIGN screening logic]: fire when the ferritin key feature AND the timing
feature are met AND at least one lab manifestation (transaminases, fibrinogen, new cytopenia)
is met. Haemophagocytosis and the other features are evidence only. Every threshold of §1.2 is
[UNCONFIRMED] (the consensus tables were not retrieved) and is shown as provisional. A screening
flag for clinician review, never a diagnosis; the §1.5 treatment tiers ride along as context.

- rule: the declaration (thresholds, choices), missing-input prompts, treatment tiers;
- screen: `judge`, the features and the screen over a whole ward by columns;
- timing: the timing key feature against the CRS course, by whole arrays;
- explain: the finding of one judged course-day.
"""

from core.rules.base import RuleSpec
from core.rules.iec_hs.explain import explain
from core.rules.iec_hs.rule import MISSING, RULE
from core.rules.iec_hs.screen import READS, THRESHOLDS_OF, judge

RULES: tuple[RuleSpec, ...] = (
    RuleSpec(RULE, judge=judge, explain=explain, reads=READS, thresholds_of=THRESHOLDS_OF),)

__all__ = ["MISSING", "RULE", "RULES"]

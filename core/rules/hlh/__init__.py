"""HLH-type criteria: CARTOX HLH/MAS (§2), HLH-2004 (§3) and the HScore (§4).

All three are context for clinicians in the CAR-T setting (cytopenias, fever and high ferritin
are expected after lymphodepletion and CRS); each reports how much of it could be evaluated and
never calls a syndrome absent because an input is missing.

Modules: criteria (tri-state criteria over a ward's grid; the values they test are read by
core.rules.series), then one module per rule, each judged over a whole ward by columns:
cartox, hlh2004, hscore. RULES lists them in display order.
"""

from __future__ import annotations

from core.rules.base import RuleSpec
from core.rules.hlh import cartox, hlh2004, hscore

__all__ = ["RULES"]

RULES: tuple[RuleSpec, ...] = (*cartox.RULES, *hlh2004.RULES, *hscore.RULES)

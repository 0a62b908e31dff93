"""HLH-type criteria: CARTOX HLH/MAS (§2), HLH-2004 (§3) and the HScore (§4)."""

from __future__ import annotations

from core.rules.hlh.shared import RULES, probability_from_table

__all__ = ["RULES", "probability_from_table"]

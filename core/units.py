"""The analyte catalogue: codes, LOINC, canonical units, exact conversions and limits.

Every number comes from ../shared/clinical/criteria.md §9 with its evidence tag. Values are
stored in the canonical unit; a unit spelling not listed for an analyte is refused (criteria
§9 "do not guess").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum


class Evidence(StrEnum):
    """Evidence tags of criteria.md §0.1."""

    C = "C"
    C2 = "C2"
    UNCONFIRMED = "UNCONFIRMED"
    DESIGN = "DESIGN"

    @property
    def is_provisional(self) -> bool:
        return self in (Evidence.UNCONFIRMED, Evidence.DESIGN)


@dataclass(frozen=True)
class Limits:
    """Plausibility limits in canonical units [DESIGN, criteria §9].

    Outside (hard_low, hard_high) a value is refused; outside (soft_low, soft_high) it is
    accepted only with an explicit confirmation and flagged.
    """

    hard_low: float = 0.0
    hard_high: float | None = None
    soft_low: float | None = None
    soft_high: float | None = None
    # hard_low is inclusive of impossible values: "< 0" rejects negatives, so 0 is allowed.


@dataclass(frozen=True)
class Analyte:
    code: str
    name: str
    unit: str  # canonical display unit
    loinc: tuple[str, ...]
    # accepted spellings (normalised, see normalise_unit) -> factor to canonical
    units: dict[str, float]
    ref_low: float | None
    ref_high: float | None
    ref_evidence: Evidence
    limits: Limits
    panel: str  # display grouping
    loinc_unconfirmed: tuple[str, ...] = ()
    # unit mix-up heuristics (criteria §9): (spelling, low, high, likely unit) means a value
    # given in that spelling strictly between low and high probably was in the likely unit
    mixup: tuple[tuple[str, float | None, float | None, str], ...] = field(default=())

    @property
    def all_loinc(self) -> tuple[str, ...]:
        return self.loinc + self.loinc_unconfirmed


_COUNT_UNITS = {
    "10^9/l": 1.0,
    "10^3/ul": 1.0,
    "10^3/mm3": 1.0,
    "k/ul": 1.0,
    "thou/ul": 1.0,
    "/ul": 0.001,
    "cells/ul": 0.001,
    "/mm3": 0.001,
    "cells/mm3": 0.001,
}

_U_PER_L = {"u/l": 1.0, "iu/l": 1.0, "[iu]/l": 1.0, "ukat/l": 60.0}


def _limits(hard_high: float | None, soft_low: float | None = None,
            soft_high: float | None = None, hard_low: float = 0.0) -> Limits:
    return Limits(hard_low=hard_low, hard_high=hard_high, soft_low=soft_low, soft_high=soft_high)


ANALYTES: dict[str, Analyte] = {
    a.code: a
    for a in (
        Analyte("ferritin", "Ferritin", "ng/mL", ("2276-4", "20567-4"),
                {"ng/ml": 1.0, "ug/l": 1.0, "pmol/l": 1 / 2.247, "ug/dl": 10.0},
                30, 300, Evidence.C2, _limits(2_000_000, 5, 250_000), "inflammation"),
        Analyte("fibrinogen", "Fibrinogen", "mg/dL", ("3255-7",),
                {"mg/dl": 1.0, "g/l": 100.0},
                200, 400, Evidence.C2, _limits(2_000, 30, 1_000), "coagulation",
                mixup=(("mg/dl", None, 10.0, "g/L"),)),
        Analyte("ast", "AST", "U/L", ("1920-8",), dict(_U_PER_L),
                10, 40, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("30239-8",)),
        Analyte("alt", "ALT", "U/L", ("1742-6",), dict(_U_PER_L),
                7, 56, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("1743-4",)),
        Analyte("bilirubin", "Total bilirubin", "mg/dL", ("1975-2", "14631-6"),
                {"mg/dl": 1.0, "umol/l": 1 / 17.1},
                0.1, 1.2, Evidence.UNCONFIRMED, _limits(80, None, 30), "liver",
                loinc_unconfirmed=("42719-5",)),
        Analyte("ldh", "LDH", "U/L", ("2532-0",), dict(_U_PER_L),
                120, 250, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("14804-9",)),
        Analyte("triglycerides", "Triglycerides", "mg/dL", ("2571-8",),
                {"mg/dl": 1.0, "mmol/l": 88.57},
                None, 150, Evidence.UNCONFIRMED, _limits(10_000, None, 2_000), "inflammation",
                loinc_unconfirmed=("14927-8",)),
        Analyte("crp", "CRP", "mg/L", ("1988-5", "30522-7"),
                {"mg/l": 1.0, "mg/dl": 10.0, "nmol/l": 1 / 9.524},
                None, 10, Evidence.UNCONFIRMED, _limits(1_000, None, 500), "inflammation"),
        Analyte("il6", "IL-6", "pg/mL", ("26881-3",),
                {"pg/ml": 1.0, "ng/l": 1.0},
                None, 7, Evidence.UNCONFIRMED, _limits(1_000_000, None, 100_000), "inflammation"),
        Analyte("scd25", "Soluble CD25 (sIL-2R)", "U/mL", (),
                {"u/ml": 1.0, "[arb'u]/ml": 1.0, "{u}/ml": 1.0, "iu/ml": 1.0},
                None, None, Evidence.UNCONFIRMED, _limits(1_000_000, None, 100_000),
                "inflammation"),
        Analyte("creatinine", "Creatinine", "mg/dL", ("2160-0", "14682-9", "38483-4"),
                {"mg/dl": 1.0, "umol/l": 1 / 88.4},
                0.6, 1.2, Evidence.UNCONFIRMED, _limits(40, 0.1, 20), "kidney"),
        Analyte("wbc", "WBC", "10^9/L", ("6690-2", "26464-8"), dict(_COUNT_UNITS),
                4.0, 11.0, Evidence.UNCONFIRMED, _limits(1_000, None, 200), "counts"),
        Analyte("anc", "ANC", "10^9/L", ("751-8", "753-4", "26499-4"), dict(_COUNT_UNITS),
                1.5, 8.0, Evidence.UNCONFIRMED, _limits(500, None, 100), "counts"),
        Analyte("alc", "ALC (lymphocytes)", "10^9/L", ("731-0", "26474-7"), dict(_COUNT_UNITS),
                1.0, 4.0, Evidence.UNCONFIRMED, _limits(1_000, None, 100), "counts",
                loinc_unconfirmed=("732-8",)),
        Analyte("hemoglobin", "Hemoglobin", "g/dL", ("718-7", "59260-0"),
                {"g/dl": 1.0, "g/l": 0.1, "mmol/l": 1 / 0.6206},
                12, 17, Evidence.C2, _limits(30, 3, 22, hard_low=0.5), "counts",
                mixup=(("g/dl", 30.0, None, "g/L"),)),
        Analyte("platelets", "Platelets", "10^9/L", ("777-3", "26515-7"), dict(_COUNT_UNITS),
                150, 400, Evidence.UNCONFIRMED, _limits(5_000, None, 1_500), "counts",
                mixup=(("10^9/l", 5_000.0, None, "/uL"),)),
        Analyte("ddimer", "D-dimer (FEU)", "mg/L FEU", ("48065-7",),
                {"mg/l": 1.0, "mg/lfeu": 1.0, "mg/l{feu}": 1.0, "ug/ml": 1.0, "ug/mlfeu": 1.0,
                 "ng/ml": 0.001, "ng/mlfeu": 0.001, "ug/l": 0.001, "ug/lfeu": 0.001},
                None, 0.5, Evidence.UNCONFIRMED, _limits(200, None, 80), "coagulation"),
        # INR (criteria §9): a ratio with no unit (UCUM `{INR}`), never derived from PT
        # seconds, so every spelling is 1:1 and a unit in seconds is refused. A blank unit is
        # accepted for this analyte only, as labs send a unitless ratio. Both LOINC codes are
        # [UNCONFIRMED] (6301-6 plasma; 34714-6 point-of-care blood).
        Analyte("inr", "INR", "ratio", (),
                {"ratio": 1.0, "{ratio}": 1.0, "inr": 1.0, "{inr}": 1.0, "": 1.0},
                0.8, 1.2, Evidence.UNCONFIRMED, _limits(20, None, 10, hard_low=0.5),
                "coagulation", loinc_unconfirmed=("6301-6", "34714-6")),
    )
}

# The spellings that mean the same count unit (criteria §9 "as WBC").
COUNT_PER_UL_SPELLINGS = frozenset(k for k, v in _COUNT_UNITS.items() if v == 0.001)

LOINC_TO_ANALYTE: dict[str, str] = {
    code: a.code for a in ANALYTES.values() for code in a.all_loinc
}

_SUPERSCRIPTS = str.maketrans({"⁹": "9", "³": "3", "µ": "u", "μ": "u", "×": "x"})


def normalise_unit(unit: str) -> str:
    """Fold the spellings real lab reports use onto one key: `x10*9/L` -> `10^9/l`."""
    u = unit.strip().translate(_SUPERSCRIPTS).lower().replace(" ", "")
    u = re.sub(r"10(\*\*|\*|e|\^)?([39])(?=/)", r"10^\2", u)
    u = re.sub(r"^x(?=10\^)", "", u)
    return u.replace("mcl", "ul").replace("mcg", "ug")


def resolve_analyte(text: str) -> Analyte | None:
    """An analyte by short code (`ferritin`) or by LOINC code (`2276-4`)."""
    key = text.strip()
    if key.lower() in ANALYTES:
        return ANALYTES[key.lower()]
    code = LOINC_TO_ANALYTE.get(key)
    return ANALYTES[code] if code else None


def conversion_factor(analyte: Analyte, unit: str) -> float | None:
    """Factor that turns a value in `unit` into the analyte's canonical unit, or None."""
    return analyte.units.get(normalise_unit(unit))


def convert(value: float, analyte: str | Analyte, unit: str) -> float:
    """Value in the canonical unit; raises ValueError for a unit the analyte does not accept."""
    a = ANALYTES[analyte] if isinstance(analyte, str) else analyte
    factor = conversion_factor(a, unit)
    if factor is None:
        raise ValueError(f"{unit!r} is not an accepted unit for {a.name}")
    return value * factor


def accepted_units(analyte: Analyte) -> list[str]:
    """Human-readable list of accepted unit spellings (each one a valid unit to pass back).

    A blank unit (accepted for a unitless ratio such as INR) is not listed: a blank choice
    would read as "nothing chosen" in a list of units.
    """
    pretty = {
        "ug/l": "µg/L", "umol/l": "µmol/L", "ug/dl": "µg/dL", "ug/ml": "µg/mL",
        "10^9/l": "10^9/L", "10^3/ul": "10^3/µL", "/ul": "/µL",
        "cells/ul": "cells/µL", "k/ul": "K/µL", "ukat/l": "µkat/L",
        "inr": "INR", "{inr}": "{INR}",
    }
    out = []
    for key in analyte.units:
        if not key:
            continue
        out.append(pretty.get(key, key.replace("/l", "/L").replace("/dl", "/dL")
                              .replace("/ml", "/mL").replace("ng/", "ng/")))
    return out


def fmt(x: float) -> str:
    """A number as a nurse writes it: 5,000,000 or 2.1 (no exponent)."""
    x = float(x)
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.4f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Plausibility:
    ok: bool  # not refused
    needs_confirmation: bool
    reason: str | None = None


def check_plausibility(analyte: Analyte, canonical: float) -> Plausibility:
    """Hard and soft plausibility limits [DESIGN, criteria §9]."""
    lim = analyte.limits
    if math.isnan(canonical) or math.isinf(canonical):
        return Plausibility(False, False, "is not a number")
    if canonical < lim.hard_low or (lim.hard_high is not None and canonical > lim.hard_high):
        hi = fmt(lim.hard_high) if lim.hard_high is not None else "∞"
        return Plausibility(
            False, False,
            f"{fmt(canonical)} {analyte.unit} is outside the possible range "
            f"({fmt(lim.hard_low)}–{hi} {analyte.unit})",
        )
    if (lim.soft_low is not None and canonical < lim.soft_low) or (
        lim.soft_high is not None and canonical > lim.soft_high
    ):
        return Plausibility(
            True, True,
            f"{fmt(canonical)} {analyte.unit} is unusual; confirm it before it is saved",
        )
    return Plausibility(True, False)


def unit_mixup(analyte: Analyte, value: float, unit: str) -> str | None:
    """A sentence when a value looks like a unit mix-up (criteria §9 heuristics), else None."""
    key = normalise_unit(unit)
    for spelling, low, high, likely in analyte.mixup:
        if key != spelling:
            continue
        if (low is None or value > low) and (high is None or value < high):
            return (
                f"{analyte.name} {fmt(value)} {unit} is far from any plausible value in {unit}: "
                f"was it {likely}?"
            )
    return None

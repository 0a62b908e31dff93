"""The analyte catalogue: codes, LOINC, canonical units, exact conversions and limits.

Every number comes from ../shared/clinical/criteria.md §9 with its evidence tag. Values are
stored in the canonical unit; a unit spelling not listed for an analyte is refused (criteria
§9 "do not guess").
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


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
    ucum: str  # the canonical unit in UCUM: any UCUM unit of the same dimension converts
    common: tuple[str, ...]  # the UCUM spellings labs use, listed for a nurse to choose from
    # what UCUM cannot express, by normalised spelling (see normalise_unit) -> factor to
    # canonical: molar conversions (criteria §9 factors), lab shorthand (K/µL, cells/µL),
    # IU taken as U, arbitrary units and annotations
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


# lab shorthand for counts that is not UCUM (UCUM reads 10*9/L, 10*3/uL, /uL, /mm3 itself)
_COUNT_UNITS = {"k/ul": 1.0, "thou/ul": 1.0, "cells/ul": 0.001, "cells/mm3": 0.001}
_COUNTS = ("10*9/L", "10*3/uL", "/uL")
# an international unit is taken as the enzyme unit, as laboratories report them (UCUM keeps
# the two apart); U/L and ukat/L convert through UCUM
_U_PER_L = {"iu/l": 1.0, "[iu]/l": 1.0}
_ENZYME = ("U/L", "ukat/L")


def _limits(hard_high: float | None, soft_low: float | None = None,
            soft_high: float | None = None, hard_low: float = 0.0) -> Limits:
    return Limits(hard_low=hard_low, hard_high=hard_high, soft_low=soft_low, soft_high=soft_high)


ANALYTES: dict[str, Analyte] = {
    a.code: a
    for a in (
        Analyte("ferritin", "Ferritin", "ng/mL", ("2276-4", "20567-4"), "ng/mL",
                ("ng/mL", "ug/L", "ug/dL"), {"pmol/l": 1 / 2.247},
                30, 300, Evidence.C2, _limits(2_000_000, 5, 250_000), "inflammation"),
        Analyte("fibrinogen", "Fibrinogen", "mg/dL", ("3255-7",), "mg/dL",
                ("mg/dL", "g/L"), {},
                200, 400, Evidence.C2, _limits(2_000, 30, 1_000), "coagulation",
                mixup=(("mg/dl", None, 10.0, "g/L"),)),
        Analyte("ast", "AST", "U/L", ("1920-8",), "U/L", _ENZYME, dict(_U_PER_L),
                10, 40, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("30239-8",)),
        Analyte("alt", "ALT", "U/L", ("1742-6",), "U/L", _ENZYME, dict(_U_PER_L),
                7, 56, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("1743-4",)),
        Analyte("bilirubin", "Total bilirubin", "mg/dL", ("1975-2", "14631-6"), "mg/dL",
                ("mg/dL",), {"umol/l": 1 / 17.1},
                0.1, 1.2, Evidence.UNCONFIRMED, _limits(80, None, 30), "liver",
                loinc_unconfirmed=("42719-5",)),
        Analyte("ldh", "LDH", "U/L", ("2532-0",), "U/L", _ENZYME, dict(_U_PER_L),
                120, 250, Evidence.UNCONFIRMED, _limits(100_000, None, 10_000), "liver",
                loinc_unconfirmed=("14804-9",)),
        Analyte("triglycerides", "Triglycerides", "mg/dL", ("2571-8",), "mg/dL",
                ("mg/dL",), {"mmol/l": 88.57},
                None, 150, Evidence.UNCONFIRMED, _limits(10_000, None, 2_000), "inflammation",
                loinc_unconfirmed=("14927-8",)),
        Analyte("crp", "CRP", "mg/L", ("1988-5", "30522-7"), "mg/L",
                ("mg/L", "mg/dL"), {"nmol/l": 1 / 9.524},
                None, 10, Evidence.UNCONFIRMED, _limits(1_000, None, 500), "inflammation"),
        Analyte("il6", "IL-6", "pg/mL", ("26881-3",), "pg/mL",
                ("pg/mL", "ng/L"), {},
                None, 7, Evidence.UNCONFIRMED, _limits(1_000_000, None, 100_000), "inflammation"),
        Analyte("scd25", "Soluble CD25 (sIL-2R)", "U/mL", (), "U/mL", (),
                {"u/ml": 1.0, "[arb'u]/ml": 1.0, "{u}/ml": 1.0, "iu/ml": 1.0},
                None, None, Evidence.UNCONFIRMED, _limits(1_000_000, None, 100_000),
                "inflammation"),
        Analyte("creatinine", "Creatinine", "mg/dL", ("2160-0", "14682-9", "38483-4"), "mg/dL",
                ("mg/dL",), {"umol/l": 1 / 88.4},
                0.6, 1.2, Evidence.UNCONFIRMED, _limits(40, 0.1, 20), "kidney"),
        Analyte("wbc", "WBC", "10^9/L", ("6690-2", "26464-8"), "10*9/L", _COUNTS,
                dict(_COUNT_UNITS),
                4.0, 11.0, Evidence.UNCONFIRMED, _limits(1_000, None, 200), "counts"),
        Analyte("anc", "ANC", "10^9/L", ("751-8", "753-4", "26499-4"), "10*9/L",
                _COUNTS, dict(_COUNT_UNITS),
                1.5, 8.0, Evidence.UNCONFIRMED, _limits(500, None, 100), "counts"),
        Analyte("alc", "ALC (lymphocytes)", "10^9/L", ("731-0", "26474-7"), "10*9/L",
                _COUNTS, dict(_COUNT_UNITS),
                1.0, 4.0, Evidence.UNCONFIRMED, _limits(1_000, None, 100), "counts",
                loinc_unconfirmed=("732-8",)),
        Analyte("hemoglobin", "Hemoglobin", "g/dL", ("718-7", "59260-0"), "g/dL",
                ("g/dL", "g/L"), {"mmol/l": 1 / 0.6206},
                12, 17, Evidence.C2, _limits(30, 3, 22, hard_low=0.5), "counts",
                mixup=(("g/dl", 30.0, None, "g/L"),)),
        Analyte("platelets", "Platelets", "10^9/L", ("777-3", "26515-7"), "10*9/L",
                _COUNTS, dict(_COUNT_UNITS),
                150, 400, Evidence.UNCONFIRMED, _limits(5_000, None, 1_500), "counts",
                mixup=(("10^9/l", 5_000.0, None, "/uL"),)),
        Analyte("ddimer", "D-dimer (FEU)", "mg/L FEU", ("48065-7",), "mg/L",
                ("mg/L", "ug/mL", "ng/mL", "ug/L"),
                {"mg/lfeu": 1.0, "ug/mlfeu": 1.0, "ng/mlfeu": 0.001, "ug/lfeu": 0.001},
                None, 0.5, Evidence.UNCONFIRMED, _limits(200, None, 80), "coagulation"),
        # INR (criteria §9): a ratio with no unit (UCUM `{INR}`), never derived from PT
        # seconds, so every spelling is 1:1 and a unit in seconds is refused. A blank unit is
        # accepted for this analyte only, as labs send a unitless ratio. Both LOINC codes are
        # [UNCONFIRMED] (6301-6 plasma; 34714-6 point-of-care blood).
        Analyte("inr", "INR", "ratio", (), "{INR}", (),
                {"ratio": 1.0, "{ratio}": 1.0, "inr": 1.0, "{inr}": 1.0, "": 1.0},
                0.8, 1.2, Evidence.UNCONFIRMED, _limits(20, None, 10, hard_low=0.5),
                "coagulation", loinc_unconfirmed=("6301-6", "34714-6")),
    )
}

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
    """Factor that turns a value in `unit` into the analyte's canonical unit, or None.

    The analyte's own spellings first (what UCUM cannot express), then UCUM: any UCUM unit of
    the canonical unit's dimension converts exactly (mg/dL, g/L, 10*9/L, /uL, ukat/L, ...).
    """
    key = normalise_unit(unit)
    if key in analyte.units:
        return analyte.units[key]
    return ucum_factor(unit, analyte.ucum)


@functools.cache
def _ucum_registry() -> Any:
    from ucumvert import PintUcumRegistry  # loads its grammar and unit table (~1 s)

    return PintUcumRegistry()


def _ucum_case(key: str) -> str:
    """A folded spelling (`mg/dl`, `10^9/l`, `u/l`) in UCUM's case: labs often send capitals
    or lower case only, and UCUM is case-sensitive (`u` is the atomic mass unit)."""
    key = key.replace("10^", "10*")
    key = re.sub(r"(?<![a-z])([munpdk]?)l(?![a-z])", lambda m: f"{m.group(1)}L", key)
    key = re.sub(r"(?<![a-z])u(?=/)", "U", key)
    return key


@functools.cache
def ucum_factor(unit: str, canonical: str) -> float | None:
    """The factor from a UCUM unit to `canonical` (a UCUM unit), or None when the spelling is
    not UCUM or has another dimension (a mass where a substance amount is meant)."""
    import pint

    registry = _ucum_registry()
    target = registry.from_ucum(canonical)
    if not isinstance(target, pint.Quantity):  # "{INR}": an annotation, no dimension
        return None
    # the folded spelling in UCUM's case first (a lab's "U/l" or "MG/DL"), then as written
    # ("Cel", "[degF]")
    for spelling in dict.fromkeys((_ucum_case(normalise_unit(unit)), unit.strip())):
        if not spelling:
            continue
        try:
            quantity = registry.from_ucum(spelling)
        except Exception:  # noqa: BLE001 - the grammar's own errors: not a UCUM spelling
            continue
        if not isinstance(quantity, pint.Quantity):
            continue
        if "unified_atomic_mass_unit" in str(quantity.units):
            continue  # a lower-case "u" meant the enzyme unit, never daltons
        try:
            factor = (1 * quantity).to(target).magnitude / target.magnitude
        except pint.DimensionalityError:
            continue
        return float(f"{factor:.12g}")  # exact decimal factors, without binary noise
    return None


def convert(value: float, analyte: str | Analyte, unit: str) -> float:
    """Value in the canonical unit; raises ValueError for a unit the analyte does not accept."""
    a = ANALYTES[analyte] if isinstance(analyte, str) else analyte
    factor = conversion_factor(a, unit)
    if factor is None:
        raise ValueError(f"{unit!r} is not an accepted unit for {a.name}")
    return value * factor


def accepted_units(analyte: Analyte) -> list[str]:
    """Human-readable list of the usual spellings (each one a valid unit to pass back): the
    common UCUM units, then the analyte's own. Any other UCUM unit of the same dimension is
    accepted too.

    A blank unit (accepted for a unitless ratio such as INR) is not listed: a blank choice
    would read as "nothing chosen" in a list of units.
    """
    pretty = {
        "ug/l": "µg/L", "umol/l": "µmol/L", "ug/dl": "µg/dL", "ug/ml": "µg/mL",
        "10^9/l": "10^9/L", "10^3/ul": "10^3/µL", "/ul": "/µL", "ukat/l": "µkat/L",
        "cells/ul": "cells/µL", "k/ul": "K/µL", "inr": "INR", "{inr}": "{INR}",
        "thou/ul": "thou/µL", "iu/l": "IU/L", "[iu]/l": "[IU]/L", "u/ml": "U/mL",
        "iu/ml": "IU/mL", "{u}/ml": "{U}/mL", "[arb'u]/ml": "[arb'U]/mL", "u/l": "U/L",
    }
    out = []
    for key in [normalise_unit(u) for u in analyte.common] + list(analyte.units):
        if not key:
            continue
        shown = pretty.get(key, key.replace("/l", "/L").replace("/dl", "/dL")
                           .replace("/ml", "/mL").replace("ug/", "µg/")
                           .replace("feu", " FEU"))
        if shown not in out:
            out.append(shown)
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

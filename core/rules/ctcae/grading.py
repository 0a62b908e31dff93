"""CTCAE v5.0 grades of the monitored labs (criteria.md §8): the thresholds and the grading.

The grading follows pharmaverse `admiral` (criteria §8 implementation notes):

- AST/ALT/bilirubin: the "x baseline" column when the baseline is above its ULN, else "x ULN";
- creatinine: max(ULN-based grade, baseline-based grade); baseline rules exist for grades 2-3;
- fibrinogen: absolute < 50 mg/dL = grade 4; "% decrease from baseline" clauses only when the
  value is below LLN; grade = max(LLN-based, decrease-based);
- counts: grade 1 needs value < LLN, grades 2-4 are absolute; anaemia grades 1-3 only;
- triglycerides: absolute mg/dL bands.

Every number lives in a `Threshold` row. `ctcae_grades` grades whole arrays of values (one
value is an array of one), reading the threshold values from a mapping (the code defaults, or
a rule's `Thresholds` with site overrides). A cut computed as multiple x limit is compared exactly
(1.5 x 1.2 = 1.8): "above" is strictly above unless math.isclose(rel_tol=1e-9).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from core.rules.base import Threshold
from core.vocabulary.units import Evidence

C = Evidence.C

# ---------------------------------------------------------------------------------------------
# Thresholds as data (criteria §8, all [C])
# ---------------------------------------------------------------------------------------------


def _t(key: str, value: float, unit: str, op: str, description: str) -> Threshold:
    return Threshold(key=key, value=value, unit=unit, evidence=C, description=description, op=op)


def _ladder(prefix: str, unit: str, op: str, text: str, values: tuple[float, ...],
            first: int = 1, first_text: str = "") -> tuple[Threshold, ...]:
    """Rows <prefix>_g<first>, <prefix>_g<first + 1>, ... of `values`, each described as
    "grade g <text>" (the first row as `first_text` when given)."""
    return tuple(_t(f"{prefix}_g{g}", v, unit, op,
                    first_text if g == first and first_text else f"grade {g} {text}")
                 for g, v in enumerate(values, first))


def _liver(g1_base: float, g1_base_op: str, uln: tuple[float, float, float, float],
           base: tuple[float, float, float]) -> tuple[Threshold, ...]:
    return (
        *_ladder("uln", "x ULN", ">", "above this multiple of ULN", uln,
                 first_text="grade 1 above this multiple of ULN (normal baseline)"),
        _t("base_g1", g1_base, "x baseline", g1_base_op,
           "grade 1 from this multiple of baseline (baseline above ULN)"),
        *_ladder("base", "x baseline", ">", "above this multiple of baseline", base, first=2),
    )


def _counts(unit: str, *values: float) -> tuple[Threshold, ...]:
    return _ladder("abs", unit, "<", "below this value", values, first=2,
                   first_text="grade 2 below this value (grade 1: below LLN)")


CTCAE_THRESHOLDS: dict[str, tuple[Threshold, ...]] = {
    "ast": _liver(1.5, ">=", (1.0, 3.0, 5.0, 20.0), (3.0, 5.0, 20.0)),
    "alt": _liver(1.5, ">=", (1.0, 3.0, 5.0, 20.0), (3.0, 5.0, 20.0)),
    "bilirubin": _liver(1.0, ">", (1.0, 1.5, 3.0, 10.0), (1.5, 3.0, 10.0)),
    "creatinine": (
        *_ladder("uln", "x ULN", ">", "above this multiple of ULN", (1.0, 1.5, 3.0, 6.0),
                 first_text="grade 1 above ULN"),
        *_ladder("base", "x baseline", ">", "above this multiple of baseline", (1.5, 3.0),
                 first=2),
    ),
    "fibrinogen": (
        *_ladder("lln", "x LLN", "<", "below this multiple of LLN", (1.0, 0.75, 0.5, 0.25),
                 first_text="grade 1 below LLN"),
        _t("abs_g4", 50.0, "mg/dL", "<", "grade 4 below this absolute value"),
        *_ladder("drop", "% decrease", ">=", "from this decrease from baseline",
                 (25.0, 50.0, 75.0), first=2,
                 first_text="grade 2 from this decrease from baseline (value below LLN)"),
    ),
    "anc": _counts("10^9/L", 1.5, 1.0, 0.5),
    "platelets": _counts("10^9/L", 75.0, 50.0, 25.0),
    "hemoglobin": _counts("g/dL", 10.0, 8.0),
    "alc": _counts("10^9/L", 0.8, 0.5, 0.2),
    "wbc": _counts("10^9/L", 3.0, 2.0, 1.0),
    "triglycerides": (
        _t("abs_g1", 150.0, "mg/dL", ">=", "grade 1 from this value"),
        *_ladder("abs", "mg/dL", ">", "above this value", (300.0, 500.0, 1000.0), first=2),
    ),
}

DEFAULTS: dict[str, dict[str, float]] = {
    a: {t.key: t.value for t in rows} for a, rows in CTCAE_THRESHOLDS.items()
}

TERMS: dict[str, str] = {
    "ast": "Aspartate aminotransferase increased",
    "alt": "Alanine aminotransferase increased",
    "bilirubin": "Blood bilirubin increased",
    "creatinine": "Creatinine increased",
    "fibrinogen": "Fibrinogen decreased",
    "anc": "Neutrophil count decreased",
    "platelets": "Platelet count decreased",
    "hemoglobin": "Anemia",
    "alc": "Lymphocyte count decreased",
    "wbc": "White blood cell decreased",
    "triglycerides": "Hypertriglyceridemia",
}
ANALYTES_GRADED = tuple(TERMS)
RISE = ("ast", "alt", "bilirubin")
NEEDS_BASELINE = ("ast", "alt", "bilirubin", "creatinine", "fibrinogen")

# threshold keys per column, worst grade first ("uln" -> ((4, "uln_g4"), ..., (1, "uln_g1")))
_KEYS = {p: tuple((g, f"{p}_g{g}") for g in (4, 3, 2, 1))
         for p in ("uln", "base", "lln", "abs", "drop")}

# ---------------------------------------------------------------------------------------------
# The grading, of whole arrays (NaN: a missing value, limit, baseline or grade)
# ---------------------------------------------------------------------------------------------


def _close(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """math.isclose(a, b, rel_tol=1e-9) of each element (infinities close only to
    themselves, NaN to nothing)."""
    with np.errstate(invalid="ignore"):
        near = np.abs(a - b) <= 1e-9 * np.maximum(np.abs(a), np.abs(b))
    return (a == b) | (np.isfinite(a) & np.isfinite(b) & near)


def _gts(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a > b of each element, a cut computed as multiple x limit compared exactly
    (1.5 x 1.2 = 1.8 is not above 1.8)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a > b) & ~_close(a, b)


def _ges(a: np.ndarray | float, b: np.ndarray | float) -> np.ndarray:
    """a >= b of each element, compared as _gts does."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return (a > b) | _close(a, b)


# each threshold's comparison of a value with its cut, as its row declares (`op`)
_OPS = {a: {t.key: t.op for t in rows} for a, rows in CTCAE_THRESHOLDS.items()}
_PASSES: dict[str, Callable[[np.ndarray, np.ndarray | float], np.ndarray]] = {
    ">": _gts, ">=": _ges, "<": lambda value, cut: _gts(cut, value)}


def _worst(value: np.ndarray, ref: np.ndarray | float, t: Mapping[str, float], analyte: str,
           prefix: str) -> np.ndarray:
    """Per element: the worst grade of the analyte's `prefix` thresholds whose cut (threshold
    x ref) the value passes, compared as the threshold's `op` says (0: none)."""
    out = np.zeros(len(value))
    ops = _OPS[analyte]
    for g, key in reversed(_KEYS[prefix]):  # grade 1 first: a worse grade reached overwrites
        if key in ops:
            out[_PASSES[ops[key]](value, t[key] * ref)] = g
    return out


def ctcae_grades(analyte: str, value: np.ndarray, uln: np.ndarray, lln: np.ndarray,
                 baseline: np.ndarray | float = np.nan,
                 baseline_uln: np.ndarray | float = np.nan,
                 t: Mapping[str, float] | None = None) -> np.ndarray:
    """CTCAE v5.0 grade (0-4; anaemia 0-3) of every element (arrays of one length, or
    scalars), as floats, NaN where a value is not gradable.

    Values and limits are in the analyte's canonical unit (core/vocabulary/units.py); a NaN
    limit or baseline is one not known. `baseline_uln` is the baseline sample's ULN (NaN: the
    value's `uln`). A baseline that is unknown (or not positive) is treated as normal (the
    "x ULN" columns apply). `t` overrides the threshold values (keys as in
    CTCAE_THRESHOLDS[analyte]); an analyte without CTCAE grading raises KeyError."""
    if analyte not in DEFAULTS:
        raise KeyError(f"no CTCAE grading for analyte {analyte!r}")
    t = DEFAULTS[analyte] if t is None else t
    value, uln, lln, baseline, baseline_uln = np.broadcast_arrays(
        *(np.atleast_1d(np.asarray(x, dtype=float))
          for x in (value, uln, lln, baseline, baseline_uln)))
    with np.errstate(invalid="ignore"):
        base = np.where(baseline > 0, baseline, np.nan)  # NaN: no usable baseline
    has_uln, has_lln, has_base = ~np.isnan(uln), ~np.isnan(lln), ~np.isnan(base)

    if analyte in RISE:
        b_uln = np.where(np.isnan(baseline_uln), uln, baseline_uln)
        by_base = has_base & (base > np.nan_to_num(b_uln, nan=np.inf))
        out = np.where(by_base, _worst(value, base, t, analyte, "base"),
                       np.where(has_uln, _worst(value, uln, t, analyte, "uln"), np.nan))

    elif analyte == "creatinine":
        by_base_g = np.where(has_base, _worst(value, base, t, analyte, "base"), 0.0)
        # without ULN only baseline grades 2-3 are knowable; below them it is unknown
        out = np.where(has_uln, np.maximum(_worst(value, uln, t, analyte, "uln"), by_base_g),
                       np.where(by_base_g > 0, by_base_g, np.nan))

    elif analyte == "fibrinogen":
        by_lln = _worst(value, lln, t, analyte, "lln")
        with np.errstate(invalid="ignore", over="ignore"):
            drops = _gts(lln, value) & has_base & (value < base)
            drop = 100.0 * (base - value) / base
        by_drop = np.where(drops, np.maximum(_worst(drop, 1.0, t, analyte, "drop"), 1.0), 0.0)
        out = np.where(_gts(t["abs_g4"], value), 4.0,
                       np.where(has_lln, np.maximum(by_lln, by_drop), np.nan))

    elif analyte == "triglycerides":
        out = _worst(value, 1.0, t, analyte, "abs")

    else:  # blood counts (anc, platelets, hemoglobin, alc, wbc)
        by_abs = _worst(value, 1.0, t, analyte, "abs")
        out = np.where(by_abs > 0, by_abs,
                       np.where(has_lln, np.where(_gts(lln, value), 1.0, 0.0), np.nan))

    out[np.isnan(value)] = np.nan
    return out

"""Lab rows: analyte, value with its qualifier, unit conversion and plausibility limits."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from core.capture.importing.reading import RowError
from core.capture.importing.validate.frame import (
    NAN,
    Context,
    Rows,
    each,
    each_of,
    lookup,
    obj,
    present,
    strop,
    text,
)
from core.capture.importing.validate.rows import (
    kept,
    key_part,
    natural,
    number,
    patients,
    time_part,
    times,
    utc,
)
from core.vocabulary.units import (
    ANALYTES,
    LOINC_TO_ANALYTE,
    accepted_units,
    check_plausibility,
    conversion_factor,
    normalise_unit,
    ucum_factor,
    unit_mixup,
)

_OR_UCUM = ", or another UCUM unit of the same kind"
_UNKNOWN = ("Unknown analyte. Use one of " + ", ".join(ANALYTES) + ", its LOINC code, or a "
            "local code an admin mapped (Users & settings, Code map).")
# per analyte, by its position in ANALYTES (one more row for "no analyte"): hard low, hard
# high, soft low, soft high in canonical units, open ends infinite
_CODES = list(ANALYTES)
_ID = {c: i for i, c in enumerate(_CODES)}
_INF = float("inf")
_LIMITS = np.array(
    [[a.limits.hard_low, _INF if a.limits.hard_high is None else a.limits.hard_high,
      -_INF if a.limits.soft_low is None else a.limits.soft_low,
      _INF if a.limits.soft_high is None else a.limits.soft_high] for a in ANALYTES.values()]
    + [[-_INF, _INF, -_INF, _INF]], dtype="float64")
_MIXUP = {_ID[c]: a.mixup for c, a in ANALYTES.items() if a.mixup}


@functools.lru_cache(maxsize=4096)
def _factor(code: str, unit: str) -> float:
    """conversion_factor of an (analyte, unit) pair, NaN when the unit is not accepted."""
    f = conversion_factor(ANALYTES[code], unit)
    return NAN if f is None else f


@functools.lru_cache(maxsize=64)
def _unit_hint(code: str) -> str:
    a = ANALYTES[code]
    return (f"{', '.join(accepted_units(a))}"
            f"{_OR_UCUM if ucum_factor(*[a.ucum] * 2) else ''}")


def _codes(rows: Rows, ctx: Context) -> tuple[np.ndarray, str]:
    """The analyte code per row (NaN where unknown) and the dtype pandas gave the column:
    short code, else LOINC, else the site map."""
    raw = rows.values("analyte")
    lower = strop(rows.column("analyte").dtype, "lower")

    def short(v: object) -> object:
        low = lower(v)
        return low if isinstance(low, str) and low in ANALYTES else None

    codes = each(raw, short, rows.small)
    miss = np.array([c is None for c in codes], dtype=bool)
    if not miss.any():
        return codes, "str"
    # Series.map gives str unless nothing matched; fillna from a map of the empty site map
    # (float NaN) turns a str column with gaps into object
    dtype = "str" if not miss.all() or rows.n == 0 else "object"
    codes[miss] = lookup(raw[miss], LOINC_TO_ANALYTE, rows.small)
    miss = np.array([c is None for c in codes], dtype=bool)
    if miss.any():
        local = ctx.local_codes.get("analyte", {})
        if not local:
            dtype = "object"
        codes[miss] = lookup(raw[miss], local, rows.small)
    codes[np.array([c is None for c in codes], dtype=bool)] = NAN
    return codes, dtype


def _pairs(codes: np.ndarray, units: np.ndarray, small: bool) -> np.ndarray:
    """The conversion factor per row (NaN without an analyte or an accepted unit); an absent
    unit (NaN) counts as an empty one (a unitless ratio such as INR accepts it)."""
    ok = present(codes)
    out = np.full(len(codes), np.nan)
    if ok.any():
        given = units[ok]
        absent = np.asarray(pd.isna(given), dtype=bool)
        if absent.any():
            given = given.copy()
            given[absent] = ""
        pairs = obj(list(zip(codes[ok].tolist(), given.tolist(), strict=True)))
        out[ok] = each(pairs, lambda p: _factor(*p), small).astype("float64")
    return out


def prepare_labs(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    small = rows.small
    pk, infusion = patients(rows, ctx)
    when = times(rows, ctx, "collected_at", "day", infusion)
    codes, code_dtype = _codes(rows, ctx)
    known = present(codes)
    rows.flag(ctx, ~known, "analyte", _UNKNOWN)
    raw_analyte = rows.values("analyte")
    loinc_blank = rows.blank("loinc")
    if not loinc_blank.all():
        loinc = rows.values("loinc")
        by_loinc = lookup(loinc, LOINC_TO_ANALYTE, small)
        wrong = ~loinc_blank & known & present(by_loinc) & (by_loinc != codes)
        rows.flag(ctx, wrong, "loinc",
                  lambda i: f"LOINC {loinc[i]} is not a code for {raw_analyte[i]}.")
    # value, with an optional "<"/">" in the value itself or in the qualifier column
    raw_value = rows.values("value")
    despace = strop(rows.column("value").dtype, "replace", " ", "")

    def read(v: object) -> tuple[object, object]:
        """(the "<"/">" the value starts with, the value without it), spaces removed."""
        v = despace(v)
        if type(v) is not str:
            return NAN, v
        return (v[0] if v[:1] in ("<", ">") else NAN), v.lstrip("<>")

    inline, bare = each_of(raw_value, read, 2, small)
    q_blank = rows.blank("qualifier")
    qualifier = inline.copy()
    if not q_blank.all():
        qualifier[~q_blank] = rows.values("qualifier")[~q_blank]
    q_set = present(qualifier)
    if q_set.any():
        censored = each(qualifier, lambda q: q in ("<", ">"), small).astype(bool)
        rows.flag(ctx, q_set & ~censored, "qualifier",
                  "The qualifier must be < or > (a censored value like >2500), or empty.")
    value = np.asarray(pd.to_numeric(bare, errors="coerce"))
    value_blank = rows.blank("value")
    rows.flag(ctx, ~value_blank & np.asarray(pd.isna(value)), "value",
              "The value must be a number (like 2500 or >2500).")
    rows.flag(ctx, value_blank, "value", "A value is required.")
    units = rows.values("unit")
    factor = _pairs(codes, units, small)
    unit_blank = rows.blank("unit")  # an HL7 OBX-6 or FHIR unit may be absent (NaN)
    rows.flag(ctx, known & unit_blank & np.isnan(factor), "unit",
              lambda i: f"The unit is missing: give the unit {ANALYTES[codes[i]].name} was "
                        f"measured in (accepted: {_unit_hint(codes[i])}).")
    rows.flag(ctx, known & ~unit_blank & np.isnan(factor), "unit",
              lambda i: f"{units[i]!r} is not a unit accepted for "
                        f"{ANALYTES[codes[i]].name} (accepted: {_unit_hint(codes[i])}).")
    canonical = value * factor
    ids = np.asarray(lookup(codes, _ID, small), dtype=object)
    ids[~known] = len(_CODES)
    ids = ids.astype(np.intp)
    limits = _LIMITS[ids]
    _limits(rows, ctx, codes, ids, value, canonical, known & ~np.isnan(canonical), limits)
    ref_low = number(rows, ctx, "ref_low", "ref_low") * factor
    ref_high = number(rows, ctx, "ref_high", "ref_high") * factor
    keys = natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(codes),
                               time_part(when)], "analyte")
    index = frame.index
    past = ((canonical < limits[:, 2]) | (canonical > limits[:, 3])) & ~np.isnan(canonical)
    # the rounded value as pandas' astype(str) writes a float (numpy's shortest repr, as
    # str()), then the qualifier; missing where the value is
    value_key = np.round(canonical, 9).astype(str).astype(object)
    value_key[np.isnan(canonical)] = NAN
    for i in np.flatnonzero(q_set & ~np.isnan(canonical)).tolist():
        value_key[i] += qualifier[i]
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "analyte": (text(codes) if code_dtype == "str"
                    else pd.Series(codes, index=index, dtype=object)),
        "collected_at": utc(when), "value": canonical, "unit": text(_CANON_UNIT[ids]),
        "qualifier": text(qualifier),
        "original_value": rows.column("value"), "original_unit": rows.column("unit"),
        "ref_low": ref_low, "ref_high": ref_high, "loinc": kept(rows, "loinc"),
        "confirmed_unusual": np.asarray(ctx.confirm_unusual & past, dtype=bool),
        "_natural": text(keys), "_value_key": text(value_key),
    }, index=index, copy=False)


_CANON_UNIT = obj([a.unit for a in ANALYTES.values()] + [NAN])


def _limits(rows: Rows, ctx: Context, codes: np.ndarray, ids: np.ndarray, value: np.ndarray,
            canonical: np.ndarray, ok: np.ndarray, limits: np.ndarray) -> None:
    """Hard and soft limits, and unit mix-ups: only rows past a limit (or in a mix-up's
    range) need the sentences of core.vocabulary.units."""
    mixup = np.zeros(rows.n, dtype=bool)
    for code_id, spellings in _MIXUP.items():
        here = ids == code_id
        if not here.any():
            continue
        units = rows.values("unit")[here]
        # an absent unit (NaN, from HL7 or FHIR) is no spelling of a mix-up
        folded: dict[Any, str | None] = {u: normalise_unit(u) if isinstance(u, str) else None
                                         for u in dict.fromkeys(units.tolist())}
        norm = np.array([folded[u] for u in units], dtype=object)
        v = value[here]
        for spelling, low, high, _likely in spellings:
            m = norm == spelling
            if low is not None:
                m &= v > low
            if high is not None:
                m &= v < high
            mixup[np.flatnonzero(here)[m]] = True
    quick = ((canonical >= limits[:, 0]) & (canonical <= limits[:, 1])
             & (canonical >= limits[:, 2]) & (canonical <= limits[:, 3]) & ~mixup)
    raw_value = rows.values("value")
    for i in np.flatnonzero(ok & ~quick).tolist():
        a = ANALYTES[codes[i]]
        v, c = float(value[i]), float(canonical[i])
        row = rows.row(i)
        unit = rows.values("unit")[i]
        mix = unit_mixup(a, v, unit) if isinstance(unit, str) else None  # NaN: no spelling
        if mix:
            ctx.errors.append(RowError(row, "value", raw_value[i],
                                       mix + " Fix the value or the unit; nothing was converted."))
            continue
        p = check_plausibility(a, c)
        if not p.ok:
            ctx.errors.append(RowError(row, "value", raw_value[i],
                                       f"{a.name} {p.reason}: probably a typing or unit error."))
        elif p.needs_confirmation and not ctx.confirm_unusual:
            ctx.errors.append(RowError(
                row, "value", raw_value[i],
                f"{a.name} {p.reason}. If it is right, {ctx.confirm_hint}."))

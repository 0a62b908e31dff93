"""Observations, episodes, treatments, events, patients and explained gaps."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from core.capture.importing.reading import RowError
from core.capture.importing.validate.frame import (
    NAN,
    Context,
    Rows,
    each,
    is_missing,
    lookup,
    obj,
    present,
    strop,
    text,
)
from core.capture.importing.validate.rows import (
    FAR_DAY,
    MAX_DAY,
    NAT,
    kept,
    key_part,
    natural,
    number,
    patients,
    time_part,
    times,
    utc,
)
from core.store.models import EpisodeKind, EventKind, PatientStatus
from core.vocabulary.observations import (
    DRUGS,
    MISSING_REASONS,
    OBSERVATION_KINDS,
    ObservationKind,
    ValueType,
    parse_observation_value,
    resolve_drug,
)
from core.vocabulary.units import ANALYTES, LOINC_TO_ANALYTE

_KIND_UNIT = {k: spec.unit for k, spec in OBSERVATION_KINDS.items()}
_EPISODES = [k.value for k in EpisodeKind]
_EVENTS = [k.value for k in EventKind]
_STATUSES = [s.value for s in PatientStatus]
_PANEL_WORDS = ("cbc", "lft", "all")


def _within(values: np.ndarray, allowed: Collection[str], small: bool) -> np.ndarray:
    """Series.isin: cells equal to one of `allowed` (never a missing cell)."""
    return each(values, lambda v: not is_missing(v) and v in allowed, small).astype(bool)


def _folded(rows: Rows, col: str, *steps: tuple[str, ...]) -> np.ndarray:
    """A column through `.str` methods in turn, e.g. ("lower",), ("replace", " ", "_")."""
    dtype = rows.column(col).dtype
    fns = [strop(dtype, step[0], *step[1:]) for step in steps]

    def one(v: object) -> object:
        for fn in fns:
            v = fn(v)
        return v

    return each(rows.values(col), one, rows.small)


def prepare_observations(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    small = rows.small
    pk, infusion = patients(rows, ctx)
    when = times(rows, ctx, "observed_at", "day", infusion)
    kinds = _folded(rows, "kind", ("lower",), ("replace", " ", "_"))
    valid = _within(kinds, OBSERVATION_KINDS, small)
    if not valid.all():
        local = lookup(rows.values("kind")[~valid], ctx.local_codes.get("observation", {}),
                       small)
        kinds[~valid] = [k if m is None else m
                         for k, m in zip(kinds[~valid], local, strict=True)]
        valid = _within(kinds, OBSERVATION_KINDS, small)
        rows.flag(ctx, ~valid, "kind",
                  "Unknown observation kind. Use one of " + ", ".join(OBSERVATION_KINDS) + ".")
    nums: list[float | None] = []
    texts: list[str | None] = []
    blank = rows.blank("value")  # NaN from an HL7 or FHIR frame, or an empty cell
    for i, (kind, raw) in enumerate(zip(kinds, rows.values("value"), strict=True)):
        spec = OBSERVATION_KINDS.get(kind) if isinstance(kind, str) else None
        num = said = None
        if spec is not None:
            problem = None
            if blank[i]:
                problem = f"A value is required: {spec.label} {_expected(spec)}."
            else:
                try:  # "nan" reads as a number there, "inf" overflows a whole number
                    num, said = parse_observation_value(spec, raw)
                    if num is not None and not math.isfinite(num):
                        num, problem = None, _not_finite(spec, raw)
                except (ValueError, OverflowError) as exc:
                    problem = _not_finite(spec, raw) or str(exc) + "."
            if problem is not None:
                ctx.errors.append(RowError(rows.row(i), "value",
                                           "" if blank[i] else str(raw), problem))
        nums.append(num)
        texts.append(said)
    keys = natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(kinds),
                               time_part(when)], "kind")
    index = frame.index
    unit_blank = rows.blank("unit")
    unit: Any = rows.series("unit")
    if unit_blank.any():
        unit = text(np.where(unit_blank, lookup(kinds, _KIND_UNIT, small), rows.opt("unit")))
    value_num = np.array([NAN if v is None else v for v in nums], dtype="float64")
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "kind": text(kinds), "observed_at": utc(when), "value_num": value_num,
        "value_text": pd.Series(obj(texts), index=index, dtype=object),
        "unit": unit, "note": kept(rows, "note"), "_natural": text(keys),
        "_value_key": text(observation_value_keys(value_num, texts)),
    }, index=index, copy=False)


def observation_value_keys(value_num: np.ndarray, texts: list[str | None]) -> list[str]:
    """The content an observation's hash covers: the number rounded as a lab's value is (as
    numpy writes a float), "|", the text; an absent part is empty ("38.5|", "|high_flow").

    Before this form, every observation's key was missing (one part always is), so every
    stored observation's content hash is LEGACY_OBSERVATION_CONTENT and a different value
    passed as already present (core.capture.importing.legacy compares those rows by value)."""
    rounded = np.round(value_num, 9).astype(str).tolist()
    return [("" if v != v else r) + "|" + ("" if t is None else t)
            for v, r, t in zip(value_num.tolist(), rounded, texts, strict=True)]


def _not_finite(spec: ObservationKind, raw: object) -> str | None:
    """The sentence for a number kind's value that reads as nan or inf, else None."""
    if spec.type is not ValueType.NUMBER:
        return None
    try:
        number = float(str(raw).strip())
    except ValueError:
        return None
    return None if math.isfinite(number) else f"{spec.label} must be a number, not {raw!r}."


def _expected(spec: ObservationKind) -> str:
    if spec.type is ValueType.YESNO:
        return "is yes or no"
    if spec.type is ValueType.CHOICE:
        return "is one of " + ", ".join(spec.choices)
    unit = f" in {spec.unit}" if spec.unit else ""
    return f"is a number{unit}"


def prepare_episodes(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    pk, infusion = patients(rows, ctx)
    onset = times(rows, ctx, "onset", "onset_day", infusion)
    resolved = times(rows, ctx, "resolved", "resolved_day", infusion, required=False)
    kinds = _folded(rows, "kind", ("upper",), ("replace", "IECHS", "IEC-HS"))
    rows.flag(ctx, ~_within(kinds, _EPISODES, rows.small), "kind",
              "Episode kind must be CRS, ICANS or IEC-HS.")
    grade = number(rows, ctx, "grade", "The grade", required=True)
    graded = ~np.asarray(pd.isna(grade))
    off_scale = graded & ~np.isin(grade, [0, 1, 2, 3, 4, 5])
    rows.flag(ctx, off_scale, "grade", "The grade must be a whole number from 0 to 5.")
    if off_scale.any():  # refused above; blank here so the Int64 column can hold the rest
        grade = np.where(off_scale, np.nan, grade)
    rows.flag(ctx, (resolved != NAT) & (onset != NAT) & (resolved < onset),
              "resolved" if rows.has("resolved") else "resolved_day",
              "The episode resolves before it starts; check the dates.")
    keys = natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(kinds),
                               time_part(onset)], "kind")
    index = frame.index
    grades = pd.Series(grade, index=index)
    resolved_s = pd.Series(utc(resolved), index=index)
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "kind": text(kinds), "grade": grades.astype("Int64"), "onset": utc(onset),
        "resolved": resolved_s, "origin": "documented", "note": kept(rows, "note"),
        "_natural": text(keys),
        "_value_key": grades.astype(str) + "|" + resolved_s.astype(str),
    }, index=index, copy=False)


def prepare_treatments(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    small = rows.small
    pk, infusion = patients(rows, ctx)
    when = times(rows, ctx, "given_at", "day", infusion)
    raw = rows.values("drug")
    drugs, dtype = _filled(each(raw, resolve_drug, small), raw,
                           ctx.local_codes.get("drug", {}), small)
    gaps = ~present(drugs)
    rows.flag(ctx, gaps, "drug", "Unknown drug. Use one of " + ", ".join(DRUGS) + ".")
    dose = number(rows, ctx, "dose", "The dose")
    rows.flag(ctx, np.asarray(dose < 0, dtype=bool), "dose", "The dose cannot be negative.")
    keys = natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(drugs),
                               time_part(when)], "drug")
    index = frame.index
    doses = pd.Series(dose, index=index)
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "drug": text(drugs) if dtype == "str" else pd.Series(drugs, index=index, dtype=object),
        "given_at": utc(when), "dose": doses,
        "dose_unit": kept(rows, "dose_unit"), "route": kept(rows, "route"),
        "_natural": text(keys), "_value_key": doses.astype(str),
    }, index=index, copy=False)


def _filled(first: np.ndarray, raw: np.ndarray, table: dict[str, str],
            small: bool) -> tuple[np.ndarray, str]:
    """`first` (None where it has no answer) filled from `table` by the raw cell, NaN where
    neither has one, and the dtype pandas gives `Series.map(fn).fillna(Series.map(table))`:
    str, unless the first map found nothing or the table is empty (a float column of NaN)."""
    gaps = np.array([v is None for v in first], dtype=bool)
    if not gaps.any():
        return first, "str"
    dtype = "object" if gaps.all() and len(first) or not table else "str"
    first[gaps] = lookup(raw[gaps], table, small)
    first[np.array([v is None for v in first], dtype=bool)] = NAN
    return first, dtype


def prepare_events(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    pk, infusion = patients(rows, ctx)
    when = times(rows, ctx, "at", "day", infusion)
    kinds = _folded(rows, "kind", ("lower",), ("replace", " ", "_"))
    rows.flag(ctx, ~_within(kinds, _EVENTS, rows.small), "kind",
              "Event kind must be one of " + ", ".join(_EVENTS) + ".")
    keys = natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(kinds),
                               time_part(when)], "kind")
    index = frame.index
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "kind": text(kinds), "at": utc(when), "note": kept(rows, "note"),
        "_natural": text(keys), "_value_key": "",
    }, index=index, copy=False)


def prepare_patients(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    rows = Rows(frame)
    ids = frame["patient_id"]
    blank = rows.blank("patient_id")
    rows.flag(ctx, blank, "patient_id", "A patient_id is required on every row.")
    rows.flag(ctx, np.asarray(ids.str.len() > 64, dtype=bool), "patient_id",
              "The patient_id is longer than 64 characters.")
    infusion = pd.to_datetime(frame["infusion_date"], format="ISO8601", errors="coerce")
    rows.flag(ctx, infusion.isna().to_numpy(), "infusion_date",
              "The infusion date must be a date like 2026-11-03.")
    today = pd.Timestamp(ctx.now).tz_convert(ctx.tz).tz_localize(None).normalize()
    rows.flag(ctx, (infusion > today).to_numpy(dtype=bool), "infusion_date",
              "The infusion date is in the future.")
    ld_raw = rows.series("lymphodepletion_start")
    ld_blank = rows.blank("lymphodepletion_start")
    ld = pd.to_datetime(ld_raw.where(~ld_blank, None), format="ISO8601", errors="coerce")
    rows.flag(ctx, ~ld_blank & ld.isna().to_numpy(), "lymphodepletion_start",
              "The lymphodepletion start must be a date like 2026-10-29.")
    rows.flag(ctx, (ld.notna() & infusion.notna() & (ld > infusion)).to_numpy(dtype=bool),
              "lymphodepletion_start",
              "Lymphodepletion starts after the infusion; check the dates.")
    rows.values("product")  # a missing required column: KeyError
    rows.flag(ctx, rows.blank("product"), "product", "The product is required.")
    birth = number(rows, ctx, "birth_year", "The birth year")
    rows.flag(ctx, ~np.asarray(pd.isna(birth)) & ((birth < 1900) | (birth > today.year)),
              "birth_year", f"The birth year must be between 1900 and {today.year}.")
    weight = number(rows, ctx, "weight_kg", "The weight")
    rows.flag(ctx, ~np.asarray(pd.isna(weight)) & ((weight <= 0) | (weight > 400)),
              "weight_kg", "The weight must be in kilograms, between 0 and 400.")
    status = rows.series("status").str.lower()
    status_blank = rows.blank("status")
    rows.flag(ctx, ~status_blank & ~status.isin(_STATUSES).to_numpy(), "status",
              "The status must be one of " + ", ".join(_STATUSES) + ".")
    natural(rows, ctx, [key_part(rows.values("patient_id"))], "patient_id")
    index = frame.index
    out = pd.DataFrame({
        "patient_id": ids, "infusion_date": infusion.dt.date, "product": frame["product"],
        "lymphodepletion_start": ld.dt.date.where(ld.notna(), None),
        "initials": kept(rows, "initials"), "bed": kept(rows, "bed"), "sex": kept(rows, "sex"),
        "birth_year": pd.Series(birth, index=index).astype("Int64"),
        "weight_kg": pd.Series(weight, index=index), "disease": kept(rows, "disease"),
        "ward": kept(rows, "ward").fillna("main"),
        "status": status.where(~status_blank, PatientStatus.ACTIVE.value),
    })
    out["_natural"] = ids
    out["_value_key"] = infusion.astype(str) + "|" + frame["product"]
    return out


def prepare_missing(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Explained gaps: an expected lab of a day was not drawn, haemolysed, pending, ..."""
    rows = Rows(frame)
    small = rows.small
    pk, _infusion = patients(rows, ctx)
    day = number(rows, ctx, "day", "The day", required=True)
    given = ~np.asarray(pd.isna(day))
    infinite = given & np.isinf(day)
    far = given & ~infinite & (np.abs(day) > MAX_DAY)
    broken = given & ~infinite & ~far & (day != np.round(day))
    rows.flag(ctx, infinite | broken, "day",
              "The day must be a whole day after infusion, like 3 or -2.")
    rows.flag(ctx, far, "day", FAR_DAY)
    if (infinite | far | broken).any():  # refused above; blank so the Int64 column holds
        day = np.where(infinite | far | broken, np.nan, day)
    raw = rows.values("analyte")
    word = _folded(rows, "analyte", ("strip",), ("lower",))
    codes = each(word, lambda a: a if a in ANALYTES or a in _PANEL_WORDS else None, small)
    gaps = np.array([c is None for c in codes], dtype=bool)
    code_dtype = "object" if gaps.all() and len(codes) else "str"
    if gaps.any():
        codes[gaps] = lookup(raw[gaps], LOINC_TO_ANALYTE, small)
        gaps = np.array([c is None for c in codes], dtype=bool)
        codes[gaps] = NAN
    rows.flag(ctx, gaps, "analyte",
              "Unknown analyte. Use one of " + ", ".join(ANALYTES) + ", a panel (cbc, lft, "
              "all), or a LOINC code.")
    reason = _folded(rows, "reason", ("strip",), ("lower",), ("replace", " ", "_"))
    rows.flag(ctx, ~_within(reason, MISSING_REASONS, small), "reason",
              "The reason must be one of " + ", ".join(MISSING_REASONS) + ".")
    natural(rows, ctx, [key_part(rows.values("patient_id")), key_part(codes),
                        key_part(day)], "analyte")
    index = frame.index
    days = pd.Series(day, index=index)
    reasons = text(reason)
    return pd.DataFrame({
        "patient_pk": pd.Series(pk, index=index, dtype=object),
        "analyte": pd.Series(codes, index=index, dtype=code_dtype),
        "day": days.astype("Int64"), "reason": reasons,
        "_natural": text(["|".join(p) for p in zip(
            key_part(rows.values("patient_id")), key_part(codes),
            key_part(obj(days.astype(str).tolist())), strict=True)]),
        "_value_key": reasons,
    }, index=index, copy=False)

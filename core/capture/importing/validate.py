"""Row validation for the six CSV kinds, vectorised so 100,000 rows take about a second.

Each `prepare_<kind>` takes the frame of strings and a context, and returns the rows ready to
insert (a DataFrame whose columns are table fields) plus row errors. Nothing here writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from core.capture.importing.reading import RowError
from core.store.models import EpisodeKind, EventKind, PatientStatus
from core.vocabulary.observations import OBSERVATION_KINDS, parse_observation_value, resolve_drug
from core.vocabulary.units import (
    ANALYTES,
    LOINC_TO_ANALYTE,
    accepted_units,
    conversion_factor,
    normalise_unit,
    ucum_factor,
)

MAX_DAYS_BEFORE_INFUSION = 60  # design rule of issue 2: labs older than this are refused
FUTURE_TOLERANCE = timedelta(minutes=5)
_OR_UCUM = ", or another UCUM unit of the same kind"
_OFFSET = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass
class Context:
    tz: str
    now: datetime  # UTC
    # study ID -> (patient primary key, infusion date)
    patients: dict[str, tuple[int, date]]
    confirm_unusual: bool = False
    errors: list[RowError] = field(default_factory=list)
    # what the message for an unconfirmed soft-limit value tells the user to do
    confirm_hint: str = "import again with 'confirm unusual values' (--confirm-unusual)"
    # the site code map's entries for any system (core.capture.codemap.CodeMap.local_codes): a
    # local code in a CSV's analyte, kind or drug column -> analyte, observation kind, drug
    local_codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def local(self, target_kind: str, raw: pd.Series) -> pd.Series:
        """The site map's reading of raw codes (NaN where the map has none)."""
        return raw.map(self.local_codes.get(target_kind, {}))

    def add(self, frame: pd.DataFrame, mask: pd.Series | np.ndarray, column: str,
            message: Callable[[pd.Series], str] | str, value_col: str | None = None) -> None:
        """Record an error for every row where `mask` is true."""
        mask = pd.Series(mask, index=frame.index).fillna(False).astype(bool)
        if not mask.any():
            return
        vcol = value_col or column
        for idx, row in frame[mask].iterrows():
            text = message(row) if callable(message) else message
            value = str(row.get(vcol, "")) if vcol in frame.columns else ""
            self.errors.append(RowError(int(idx) + 2, column, value, text))


def _blank(s: pd.Series) -> pd.Series:
    return s.fillna("").astype(str).str.strip() == ""


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series("", index=frame.index)


def _patients(frame: pd.DataFrame, ctx: Context) -> tuple[pd.Series, pd.Series]:
    """(patient_pk, infusion date) per row; unknown IDs are errors."""
    ids = frame["patient_id"]
    # dict lookups are vectorised by pandas (a hash join), unlike a lambda per row
    pk = ids.map({pid: v[0] for pid, v in ctx.patients.items()}).astype(object)
    pk = pk.where(pk.notna(), None)
    inf = ids.map({pid: v[1] for pid, v in ctx.patients.items()}).astype(object)
    inf = inf.where(inf.notna(), None)
    ctx.add(frame, _blank(ids), "patient_id", "A patient_id is required on every row.")
    ctx.add(frame, ~_blank(ids) & pk.isna(), "patient_id",
            lambda r: f"No patient with study ID {r['patient_id']!r}. Import or register the "
                      "patient first (patients file), or check the ID.")
    return pk, inf


def parse_times(frame: pd.DataFrame, ctx: Context, time_col: str, day_col: str | None,
                infusion: pd.Series, required: bool = True,
                check_range: bool = True) -> pd.Series:
    """UTC timestamps from an ISO date/date-time column or a `day` column; NaT where bad."""
    out = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    raw = _col(frame, time_col)
    has_time = ~_blank(raw)
    if has_time.any():
        text = raw[has_time]
        aware = text.str.contains(_OFFSET)
        if aware.any():
            out.loc[aware[aware].index] = pd.to_datetime(
                text[aware], format="ISO8601", utc=True, errors="coerce")
        naive = text[~aware]
        if len(naive):
            parsed = pd.to_datetime(naive, format="ISO8601", errors="coerce")
            local = parsed.dt.tz_localize(ctx.tz, ambiguous="NaT", nonexistent="shift_forward")
            out.loc[naive.index] = local.dt.tz_convert("UTC")
        bad = has_time & out.isna()
        ctx.add(frame, bad, time_col,
                "Not a date or date-time we can read; use ISO form like 2026-11-03 or "
                "2026-11-03T08:30.")
    if day_col is not None:
        draw = _col(frame, day_col)
        use_day = ~has_time & ~_blank(draw)
        if use_day.any():
            days = pd.to_numeric(draw[use_day], errors="coerce")
            ctx.add(frame, use_day & pd.to_numeric(draw, errors="coerce").isna(), day_col,
                    "The day must be a number of days after infusion, like 3 or -5 or 3.5.")
            ok = days.notna() & infusion[use_day].notna()
            if ok.any():
                idx = ok[ok].index
                midnight = pd.to_datetime(infusion[idx].astype(str)).dt.tz_localize(ctx.tz)
                stamps = midnight + pd.to_timedelta(days[idx], unit="D")
                out.loc[idx] = stamps.dt.tz_convert("UTC")
        missing = ~has_time & _blank(draw)
    else:
        missing = ~has_time
    if required:
        cols = f"{time_col} or {day_col}" if day_col else time_col
        ctx.add(frame, missing, cols, f"A time is required: give {cols}.", value_col="")
    if check_range:
        future = out > pd.Timestamp(ctx.now + FUTURE_TOLERANCE)
        ctx.add(frame, future, time_col if time_col in frame.columns else (day_col or time_col),
                lambda r: "This time is in the future; check the date (and day number).")
        inf_ts = pd.to_datetime(infusion.astype(str), errors="coerce").dt.tz_localize(ctx.tz)
        too_old = out < inf_ts.dt.tz_convert("UTC") - pd.Timedelta(days=MAX_DAYS_BEFORE_INFUSION)
        ctx.add(frame, too_old, time_col if time_col in frame.columns else (day_col or time_col),
                f"This is more than {MAX_DAYS_BEFORE_INFUSION} days before the infusion; "
                "check the date or the patient.")
    return out


def _number(frame: pd.DataFrame, ctx: Context, col: str, label: str,
            required: bool = False) -> pd.Series:
    raw = _col(frame, col)
    num = pd.to_numeric(raw, errors="coerce")
    ctx.add(frame, ~_blank(raw) & num.isna(), col, f"{label} must be a number.")
    if required:
        ctx.add(frame, _blank(raw), col, f"{label} is required.")
    return num


def _duplicates(frame: pd.DataFrame, ctx: Context, keys: list[pd.Series], column: str) -> None:
    """Rows that repeat an earlier row's natural key in the same file are reported."""
    key = _natural(*keys)
    dup = key.duplicated(keep="first")
    if dup.any():
        first = key[~dup].reset_index().set_index(key.name or 0)["index"].to_dict()
        ctx.add(frame, dup, column,
                lambda r: f"Duplicate of row {first[key[r.name]] + 2}: the same "
                          "patient, item and time appear twice in this file.", value_col="")


def prepare_labs(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    pk, infusion = _patients(frame, ctx)
    times = parse_times(frame, ctx, "collected_at", "day", infusion)
    # analyte: short code or LOINC
    raw_analyte = frame["analyte"]
    codes = raw_analyte.str.lower().map(lambda a: a if a in ANALYTES else None)
    codes = codes.fillna(raw_analyte.map(LOINC_TO_ANALYTE)).fillna(ctx.local("analyte",
                                                                              raw_analyte))
    ctx.add(frame, codes.isna(), "analyte",
            "Unknown analyte. Use one of " + ", ".join(ANALYTES) + ", its LOINC code, or a "
            "local code an admin mapped (Users & settings, Code map).")
    loinc = _col(frame, "loinc")
    loinc_code = loinc.map(LOINC_TO_ANALYTE)
    ctx.add(frame, ~_blank(loinc) & codes.notna() & loinc_code.notna() & (loinc_code != codes),
            "loinc", lambda r: f"LOINC {r['loinc']} is not a code for {r['analyte']}.")
    # value, with an optional "<"/">" in the value itself or in the qualifier column
    raw_value = frame["value"].str.replace(" ", "", regex=False)
    inline_q = raw_value.str.extract(r"^([<>])", expand=False)
    qualifier = _col(frame, "qualifier").where(~_blank(_col(frame, "qualifier")), inline_q)
    qualifier = qualifier.fillna("").replace("", None)
    ctx.add(frame, qualifier.notna() & ~qualifier.isin(["<", ">"]), "qualifier",
            "The qualifier must be < or > (a censored value like >2500), or empty.")
    value = pd.to_numeric(raw_value.str.lstrip("<>"), errors="coerce")
    ctx.add(frame, ~_blank(frame["value"]) & value.isna(), "value",
            "The value must be a number (like 2500 or >2500).")
    ctx.add(frame, _blank(frame["value"]), "value", "A value is required.")
    # unit per (analyte, unit) pair
    pairs = pd.DataFrame({"a": codes, "u": frame["unit"]})
    factors = {
        (a, u): conversion_factor(ANALYTES[a], u)
        for a, u in pairs.dropna().drop_duplicates().itertuples(index=False)
    }
    pair_key = codes.fillna("").astype(str) + "\x00" + frame["unit"].astype(str)
    factor = pair_key.map({f"{a}\x00{u}": f for (a, u), f in factors.items()}).astype(
        "float64")
    ctx.add(frame, codes.notna() & factor.isna(), "unit",
            lambda r: f"{r['unit']!r} is not a unit accepted for "
                      f"{ANALYTES[codes[r.name]].name} (accepted: "
                      f"{', '.join(accepted_units(ANALYTES[codes[r.name]]))}"
                      f"{_OR_UCUM if ucum_factor(*[ANALYTES[codes[r.name]].ucum] * 2) else ''}).")
    canonical = value * factor
    ok = codes.notna() & canonical.notna()
    _limits(frame, ctx, codes, value, canonical, ok)
    ref_low = _number(frame, ctx, "ref_low", "ref_low") * factor
    ref_high = _number(frame, ctx, "ref_high", "ref_high") * factor
    _duplicates(frame, ctx, [frame["patient_id"], codes, times], "analyte")
    out = pd.DataFrame({
        "patient_pk": pk, "analyte": codes, "collected_at": times, "value": canonical,
        "unit": codes.map({c: a.unit for c, a in ANALYTES.items()}),
        "qualifier": qualifier,
        "original_value": frame["value"], "original_unit": frame["unit"],
        "ref_low": ref_low, "ref_high": ref_high,
        "loinc": loinc.where(~_blank(loinc), None),
        "confirmed_unusual": ctx.confirm_unusual & _unusual(codes, canonical),
    })
    out["_natural"] = _natural(frame["patient_id"], codes, times)
    out["_value_key"] = canonical.round(9).astype(str) + (qualifier.fillna(""))
    return out


def _unusual(codes: pd.Series, canonical: pd.Series) -> pd.Series:
    """Past a soft plausibility limit (vectorised)."""
    low = codes.map({c: a.limits.soft_low for c, a in ANALYTES.items()}).astype("float64")
    high = codes.map({c: a.limits.soft_high for c, a in ANALYTES.items()}).astype("float64")
    past = (canonical < low.fillna(-np.inf)) | (canonical > high.fillna(np.inf))
    return (past & canonical.notna()).astype(bool)


def _limits(frame: pd.DataFrame, ctx: Context, codes: pd.Series, value: pd.Series,
            canonical: pd.Series, ok: pd.Series) -> None:
    from core.vocabulary.units import check_plausibility, unit_mixup

    # vectorised first pass: only rows past a limit (or of an analyte with mix-up
    # heuristics) need the sentence-building checks below
    def lim(attr: str, default: float) -> pd.Series:
        table = {c: getattr(a.limits, attr) for c, a in ANALYTES.items()}
        return codes.map(table).astype("float64").fillna(default)

    inf = float("inf")
    maybe_mixup = pd.Series(False, index=codes.index)
    units = frame["unit"]
    for code, a in ANALYTES.items():
        if not a.mixup:
            continue
        here = codes == code
        if not here.any():
            continue
        norm = units[here].map({u: normalise_unit(u) for u in units[here].unique()})
        for spelling, low, high, _likely in a.mixup:
            m = norm == spelling
            if low is not None:
                m &= value[here] > low
            if high is not None:
                m &= value[here] < high
            maybe_mixup.loc[m[m].index] = True
    quick = ((canonical >= lim("hard_low", -inf)) & (canonical <= lim("hard_high", inf))
             & (canonical >= lim("soft_low", -inf)) & (canonical <= lim("soft_high", inf))
             & ~maybe_mixup)
    slow = ok & ~quick
    for idx in slow[slow].index:
        a = ANALYTES[codes[idx]]
        v, c = float(value[idx]), float(canonical[idx])
        mix = unit_mixup(a, v, frame.at[idx, "unit"])
        if mix:
            ctx.errors.append(RowError(int(idx) + 2, "value", frame.at[idx, "value"],
                                       mix + " Fix the value or the unit; nothing was converted."))
            continue
        p = check_plausibility(a, c)
        if not p.ok:
            ctx.errors.append(RowError(int(idx) + 2, "value", frame.at[idx, "value"],
                                       f"{a.name} {p.reason}: probably a typing or unit error."))
        elif p.needs_confirmation and not ctx.confirm_unusual:
            ctx.errors.append(RowError(
                int(idx) + 2, "value", frame.at[idx, "value"],
                f"{a.name} {p.reason}. If it is right, {ctx.confirm_hint}."))


def _natural(*cols: pd.Series) -> pd.Series:
    """One string key per row from several columns (vectorised; times as UTC microseconds)."""
    key: pd.Series | None = None
    for col in cols:
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            part = col.dt.tz_convert("UTC").dt.tz_localize(None).astype("int64").astype(str)
            part = part.where(col.notna(), "")
        else:
            part = col.astype(object).where(col.notna(), "").astype(str)
        key = part if key is None else key + "|" + part
    assert key is not None
    return key.rename("key")


def prepare_observations(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    pk, infusion = _patients(frame, ctx)
    times = parse_times(frame, ctx, "observed_at", "day", infusion)
    kinds = frame["kind"].str.lower().str.replace(" ", "_", regex=False)
    kinds = kinds.where(kinds.isin(list(OBSERVATION_KINDS)),
                        ctx.local("observation", frame["kind"]).astype(object).fillna(kinds))
    ctx.add(frame, ~kinds.isin(list(OBSERVATION_KINDS)), "kind",
            "Unknown observation kind. Use one of " + ", ".join(OBSERVATION_KINDS) + ".")
    nums, texts = [], []
    for idx, kind, raw in zip(frame.index, kinds, frame["value"], strict=True):
        spec = OBSERVATION_KINDS.get(kind)
        num = text = None
        if spec is not None:
            try:
                num, text = parse_observation_value(spec, raw)
            except ValueError as exc:
                ctx.errors.append(RowError(int(idx) + 2, "value", raw, str(exc) + "."))
        nums.append(num)
        texts.append(text)
    _duplicates(frame, ctx, [frame["patient_id"], kinds, times], "kind")
    note = _col(frame, "note")
    unit = _col(frame, "unit")
    out = pd.DataFrame({
        "patient_pk": pk, "kind": kinds, "observed_at": times,
        "value_num": pd.Series(nums, index=frame.index, dtype="float64"),
        "value_text": pd.Series(texts, index=frame.index, dtype="object"),
        "unit": unit.where(~_blank(unit), kinds.map(
            lambda k: OBSERVATION_KINDS[k].unit if k in OBSERVATION_KINDS else None)),
        "note": note.where(~_blank(note), None),
    })
    out["_natural"] = _natural(frame["patient_id"], kinds, times)
    out["_value_key"] = out["value_num"].astype(str) + "|" + out["value_text"].astype(str)
    return out


def prepare_episodes(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    pk, infusion = _patients(frame, ctx)
    onset = parse_times(frame, ctx, "onset", "onset_day", infusion)
    resolved = parse_times(frame, ctx, "resolved", "resolved_day", infusion, required=False)
    kinds = frame["kind"].str.upper().str.replace("IECHS", "IEC-HS", regex=False)
    valid = [k.value for k in EpisodeKind]
    ctx.add(frame, ~kinds.isin(valid), "kind", "Episode kind must be CRS, ICANS or IEC-HS.")
    grade = _number(frame, ctx, "grade", "The grade", required=True)
    ctx.add(frame, grade.notna() & ~grade.isin([0, 1, 2, 3, 4, 5]), "grade",
            "The grade must be a whole number from 0 to 5.")
    ctx.add(frame, resolved.notna() & onset.notna() & (resolved < onset),
            "resolved" if "resolved" in frame.columns else "resolved_day",
            "The episode resolves before it starts; check the dates.")
    _duplicates(frame, ctx, [frame["patient_id"], kinds, onset], "kind")
    note = _col(frame, "note")
    out = pd.DataFrame({
        "patient_pk": pk, "kind": kinds, "grade": grade.astype("Int64"), "onset": onset,
        "resolved": resolved, "origin": "documented", "note": note.where(~_blank(note), None),
    })
    out["_natural"] = _natural(frame["patient_id"], kinds, onset)
    out["_value_key"] = grade.astype(str) + "|" + resolved.astype(str)
    return out


def prepare_treatments(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    from core.vocabulary.observations import DRUGS

    pk, infusion = _patients(frame, ctx)
    times = parse_times(frame, ctx, "given_at", "day", infusion)
    drugs = frame["drug"].map(resolve_drug).fillna(ctx.local("drug", frame["drug"]))
    ctx.add(frame, drugs.isna(), "drug",
            "Unknown drug. Use one of " + ", ".join(DRUGS) + ".")
    dose = _number(frame, ctx, "dose", "The dose")
    ctx.add(frame, dose < 0, "dose", "The dose cannot be negative.")
    _duplicates(frame, ctx, [frame["patient_id"], drugs, times], "drug")
    dose_unit, route = _col(frame, "dose_unit"), _col(frame, "route")
    out = pd.DataFrame({
        "patient_pk": pk, "drug": drugs, "given_at": times, "dose": dose,
        "dose_unit": dose_unit.where(~_blank(dose_unit), None),
        "route": route.where(~_blank(route), None),
    })
    out["_natural"] = _natural(frame["patient_id"], drugs, times)
    out["_value_key"] = dose.astype(str)
    return out


def prepare_events(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    pk, infusion = _patients(frame, ctx)
    times = parse_times(frame, ctx, "at", "day", infusion)
    kinds = frame["kind"].str.lower().str.replace(" ", "_", regex=False)
    valid = [k.value for k in EventKind]
    ctx.add(frame, ~kinds.isin(valid), "kind", "Event kind must be one of " +
            ", ".join(valid) + ".")
    _duplicates(frame, ctx, [frame["patient_id"], kinds, times], "kind")
    note = _col(frame, "note")
    out = pd.DataFrame({
        "patient_pk": pk, "kind": kinds, "at": times, "note": note.where(~_blank(note), None),
    })
    out["_natural"] = _natural(frame["patient_id"], kinds, times)
    out["_value_key"] = ""
    return out


def prepare_patients(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    ids = frame["patient_id"]
    ctx.add(frame, _blank(ids), "patient_id", "A patient_id is required on every row.")
    ctx.add(frame, ids.str.len() > 64, "patient_id", "The patient_id is longer than 64 "
            "characters.")
    infusion = pd.to_datetime(frame["infusion_date"], format="ISO8601", errors="coerce")
    ctx.add(frame, infusion.isna(), "infusion_date",
            "The infusion date must be a date like 2026-11-03.")
    today = pd.Timestamp(ctx.now).tz_convert(ctx.tz).tz_localize(None).normalize()
    ctx.add(frame, infusion > today, "infusion_date", "The infusion date is in the future.")
    ld_raw = _col(frame, "lymphodepletion_start")
    ld = pd.to_datetime(ld_raw.where(~_blank(ld_raw), None), format="ISO8601", errors="coerce")
    ctx.add(frame, ~_blank(ld_raw) & ld.isna(), "lymphodepletion_start",
            "The lymphodepletion start must be a date like 2026-10-29.")
    ctx.add(frame, ld.notna() & infusion.notna() & (ld > infusion), "lymphodepletion_start",
            "Lymphodepletion starts after the infusion; check the dates.")
    ctx.add(frame, _blank(frame["product"]), "product", "The product is required.")
    birth = _number(frame, ctx, "birth_year", "The birth year")
    ctx.add(frame, birth.notna() & ((birth < 1900) | (birth > today.year)), "birth_year",
            f"The birth year must be between 1900 and {today.year}.")
    weight = _number(frame, ctx, "weight_kg", "The weight")
    ctx.add(frame, weight.notna() & ((weight <= 0) | (weight > 400)), "weight_kg",
            "The weight must be in kilograms, between 0 and 400.")
    status = _col(frame, "status").str.lower()
    valid = [s.value for s in PatientStatus]
    ctx.add(frame, ~_blank(status) & ~status.isin(valid), "status",
            "The status must be one of " + ", ".join(valid) + ".")
    _duplicates(frame, ctx, [ids], "patient_id")

    def opt(col: str) -> pd.Series:
        s = _col(frame, col)
        return s.where(~_blank(s), None)

    out = pd.DataFrame({
        "patient_id": ids, "infusion_date": infusion.dt.date, "product": frame["product"],
        "lymphodepletion_start": ld.dt.date.where(ld.notna(), None),
        "initials": opt("initials"), "bed": opt("bed"), "sex": opt("sex"),
        "birth_year": birth.astype("Int64"), "weight_kg": weight, "disease": opt("disease"),
        "ward": opt("ward").fillna("main"),
        "status": status.where(~_blank(status), PatientStatus.ACTIVE.value),
    })
    out["_natural"] = ids
    out["_value_key"] = infusion.astype(str) + "|" + frame["product"]
    return out


def prepare_missing(frame: pd.DataFrame, ctx: Context) -> pd.DataFrame:
    """Explained gaps: an expected lab of a day was not drawn, haemolysed, pending, ..."""
    from core.vocabulary.observations import MISSING_REASONS

    pk, _infusion = _patients(frame, ctx)
    day = _number(frame, ctx, "day", "The day", required=True)
    ctx.add(frame, day.notna() & (day != day.round()), "day",
            "The day must be a whole day after infusion, like 3 or -2.")
    raw = frame["analyte"].str.strip().str.lower()
    codes = raw.map(lambda a: a if a in ANALYTES or a in _PANEL_WORDS else None)
    codes = codes.fillna(frame["analyte"].map(LOINC_TO_ANALYTE))
    ctx.add(frame, codes.isna(), "analyte",
            "Unknown analyte. Use one of " + ", ".join(ANALYTES) + ", a panel (cbc, lft, "
            "all), or a LOINC code.")
    reason = frame["reason"].str.strip().str.lower().str.replace(" ", "_", regex=False)
    ctx.add(frame, ~reason.isin(list(MISSING_REASONS)), "reason",
            "The reason must be one of " + ", ".join(MISSING_REASONS) + ".")
    _duplicates(frame, ctx, [frame["patient_id"], codes, day], "analyte")
    out = pd.DataFrame({"patient_pk": pk, "analyte": codes, "day": day.astype("Int64"),
                        "reason": reason})
    out["_natural"] = _natural(frame["patient_id"], codes, day.astype(str))
    out["_value_key"] = reason
    return out


_PANEL_WORDS = ("cbc", "lft", "all")

PREPARE = {
    "labs": prepare_labs,
    "observations": prepare_observations,
    "episodes": prepare_episodes,
    "treatments": prepare_treatments,
    "events": prepare_events,
    "patients": prepare_patients,
    "missing": prepare_missing,
}

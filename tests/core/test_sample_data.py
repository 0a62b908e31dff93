"""The synthetic sample cohort in data/sample/: contract, determinism and scenarios.

The committed CSVs must be exactly what `data/sample/generate.py` writes, every file must
follow design.md's import contract, and each scenario the README promises must really be in
the data (checked here on the values in canonical units, so a scenario cannot silently drift
when the generator is edited).
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from core.vocabulary.observations import DRUGS, OBSERVATION_KINDS, parse_observation_value
from core.vocabulary.units import ANALYTES, check_plausibility, conversion_factor, convert

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"
SCRIPT = SAMPLE / "generate.py"
TODAY = date(2026, 11, 21)
FILES = ("patients", "labs", "observations", "episodes", "treatments", "events")
PRODUCTS = {"axi-cel", "tisa-cel", "liso-cel", "brexu-cel", "ide-cel", "cilta-cel"}

# design.md "Import formats (contract)": required columns (a time column or `day`).
REQUIRED = {
    "patients": {"patient_id", "infusion_date", "product"},
    "labs": {"patient_id", "day", "analyte", "value", "unit"},
    "observations": {"patient_id", "day", "kind", "value"},
    "episodes": {"patient_id", "kind", "grade", "onset_day"},
    "treatments": {"patient_id", "day", "drug"},
    "events": {"patient_id", "kind", "day"},
}
OPTIONAL = {
    "patients": {"initials", "bed", "sex", "birth_year", "weight_kg", "disease",
                 "lymphodepletion_start"},
    "labs": {"ref_low", "ref_high", "qualifier", "loinc"},
    "observations": {"unit", "note"},
    "episodes": {"resolved_day"},
    "treatments": {"dose", "dose_unit", "route"},
    "events": {"note"},
}


def _load_generator():
    spec = importlib.util.spec_from_file_location("sample_generate", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def _run_script(out: Path, *args: str, hash_seed: str = "0") -> None:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *args],
                   check=True, capture_output=True, env=env)


def _read(directory: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(directory / f"{name}.csv", dtype=str, keep_default_na=False)
            for name in FILES}


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    return _read(SAMPLE)


@pytest.fixture(scope="module")
def labs(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Labs with numeric day, canonical value and canonical reference limits."""
    df = data["labs"].copy()
    df["day"] = df["day"].astype(float)
    df["d"] = df["day"].map(math.floor)
    df["canonical"] = [convert(float(v), a, u)
                       for v, a, u in zip(df["value"], df["analyte"], df["unit"], strict=True)]
    for col in ("ref_low", "ref_high"):
        df[col + "_c"] = [convert(float(v), a, u) if v else float("nan")
                          for v, a, u in zip(df[col], df["analyte"], df["unit"], strict=True)]
    return df


@pytest.fixture(scope="module")
def obs(data: dict[str, pd.DataFrame]) -> pd.DataFrame:
    df = data["observations"].copy()
    df["day"] = df["day"].astype(float)
    df["d"] = df["day"].map(math.floor)
    return df


def _table(data: dict[str, pd.DataFrame], name: str, pid: str) -> pd.DataFrame:
    df = data[name]
    return df[df["patient_id"] == pid]


def _series(labs: pd.DataFrame, pid: str, analyte: str) -> pd.Series:
    """Canonical values of one analyte for one patient, indexed by course day (floor)."""
    rows = labs[(labs["patient_id"] == pid) & (labs["analyte"] == analyte)]
    return rows.groupby("d")["canonical"].first()


def _uln(labs: pd.DataFrame, pid: str, analyte: str) -> float:
    rows = labs[(labs["patient_id"] == pid) & (labs["analyte"] == analyte)]
    return float(rows["ref_high_c"].iloc[0])


def _drug_days(data: dict[str, pd.DataFrame], pid: str, drug: str) -> list[float]:
    t = _table(data, "treatments", pid)
    return sorted(t.loc[t["drug"] == drug, "day"].astype(float))


def _episode(data: dict[str, pd.DataFrame], pid: str, kind: str) -> pd.Series:
    e = _table(data, "episodes", pid)
    rows = e[e["kind"] == kind]
    assert len(rows) == 1, f"{pid} should have one {kind} episode"
    return rows.iloc[0]


def _end_day(data: dict[str, pd.DataFrame], pid: str, today: date = TODAY) -> int:
    """Today's course day, or the last follow-up day when the course has ended."""
    p = _table(data, "patients", pid).iloc[0]
    ev = _table(data, "events", pid)
    last = ev.loc[ev["kind"] == "last_followup", "day"].astype(float)
    if len(last):
        return math.floor(last.iloc[0])
    return (today - date.fromisoformat(p["infusion_date"])).days


# --- generation ----------------------------------------------------------------------------

def test_generation_is_deterministic_across_processes(tmp_path: Path) -> None:
    _run_script(tmp_path / "a", hash_seed="1")
    _run_script(tmp_path / "b", hash_seed="2")
    for name in FILES:
        first = (tmp_path / "a" / f"{name}.csv").read_bytes()
        assert first == (tmp_path / "b" / f"{name}.csv").read_bytes(), name


def test_committed_csvs_equal_a_fresh_generation_with_the_default_today(
        tmp_path: Path) -> None:
    generate.write(tmp_path)
    for name in FILES:
        fresh = (tmp_path / f"{name}.csv").read_bytes()
        assert (SAMPLE / f"{name}.csv").read_bytes() == fresh, (
            f"data/sample/{name}.csv is stale: run python data/sample/generate.py")


def test_today_option_moves_only_the_infusion_dates(tmp_path: Path) -> None:
    _run_script(tmp_path, "--today", "2027-03-01")
    moved = _read(tmp_path)
    committed = _read(SAMPLE)
    for name in FILES[1:]:
        pd.testing.assert_frame_equal(moved[name], committed[name])
    shift = (date(2027, 3, 1) - TODAY).days
    for old, new in zip(committed["patients"]["infusion_date"],
                        moved["patients"]["infusion_date"], strict=True):
        assert (date.fromisoformat(new) - date.fromisoformat(old)).days == shift


def test_readme_says_the_data_are_synthetic() -> None:
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    assert "SYNTHETIC" in readme
    assert "generate.py" in readme
    assert "SYNTHETIC" in (generate.__doc__ or "")


# --- contract ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_every_file_has_the_contract_columns_and_nothing_else(
        data: dict[str, pd.DataFrame], name: str) -> None:
    columns = set(data[name].columns)
    assert REQUIRED[name] <= columns
    assert columns <= REQUIRED[name] | OPTIONAL[name]
    assert len(data[name]) > 0


def test_cohort_has_at_least_twelve_patients_with_study_ids_and_products(
        data: dict[str, pd.DataFrame]) -> None:
    p = data["patients"]
    assert len(p) >= 12
    assert p["patient_id"].is_unique
    assert p["patient_id"].str.fullmatch(r"SYN-\d{3}").all()
    assert set(p["product"]) == PRODUCTS
    for _, row in p.iterrows():
        infusion = date.fromisoformat(row["infusion_date"])
        assert date.fromisoformat(row["lymphodepletion_start"]) == infusion - timedelta(days=5)
        assert row["sex"] in {"F", "M"} and row["initials"].isalpha()
    for name in FILES[1:]:
        assert set(data[name]["patient_id"]) <= set(p["patient_id"]), name


def test_lab_rows_use_known_analytes_accepted_units_and_plausible_values(
        labs: pd.DataFrame) -> None:
    for _, row in labs.iterrows():
        analyte = ANALYTES[row["analyte"]]
        assert conversion_factor(analyte, row["unit"]) is not None, row.to_dict()
        assert check_plausibility(analyte, row["canonical"]).ok, row.to_dict()
        assert row["qualifier"] in {"", "<", ">"}
        if not math.isnan(row["ref_low_c"]) and not math.isnan(row["ref_high_c"]):
            assert row["ref_low_c"] < row["ref_high_c"]
    assert (labs["qualifier"] == ">").any(), "at least one censored '>' value"
    pivot = labs.pivot_table(index=["patient_id", "day"], columns="analyte",
                             values="canonical", aggfunc="first")
    both = pivot[["anc", "wbc"]].dropna()
    assert (both["anc"] <= both["wbc"]).all()


def test_observations_treatments_episodes_and_events_use_the_catalogue_vocabulary(
        data: dict[str, pd.DataFrame]) -> None:
    for _, row in data["observations"].iterrows():
        kind = OBSERVATION_KINDS[row["kind"]]
        parse_observation_value(kind, row["value"])  # raises on a bad value
        assert row["unit"] in {"", kind.unit}
    assert set(data["treatments"]["drug"]) <= set(DRUGS)
    assert set(data["episodes"]["kind"]) == {"CRS", "ICANS", "IEC-HS"}
    assert data["episodes"]["grade"].astype(int).between(1, 5).all()
    for _, e in data["episodes"].iterrows():
        if e["resolved_day"]:
            assert float(e["resolved_day"]) > float(e["onset_day"])
    assert set(data["events"]["kind"]) <= {"progression", "next_therapy", "death",
                                           "last_followup"}


# --- time placement ------------------------------------------------------------------------

@pytest.mark.parametrize("today", [TODAY, date(2027, 3, 1), date(2026, 1, 1)])
def test_nothing_is_dated_after_today_or_more_than_60_days_before_infusion(
        tmp_path: Path, today: date) -> None:
    generate.write(tmp_path, today)
    d = _read(tmp_path)
    infusion = {r["patient_id"]: date.fromisoformat(r["infusion_date"])
                for _, r in d["patients"].iterrows()}
    for name in FILES[1:]:
        col = "onset_day" if name == "episodes" else "day"
        for pid, day in zip(d[name]["patient_id"], d[name][col].astype(float), strict=True):
            when = infusion[pid] + timedelta(days=math.floor(day))
            assert when <= today, (name, pid, day)
            if name == "labs":
                assert day >= -60
                # the latest time written is 06:00 on `today`
                assert when < today or day - math.floor(day) <= 0.25


def test_most_patients_are_active_between_day_5_and_30_some_further_one_discharged(
        data: dict[str, pd.DataFrame]) -> None:
    p = data["patients"]
    current = {r["patient_id"]: (TODAY - date.fromisoformat(r["infusion_date"])).days
               for _, r in p.iterrows()}
    discharged = set(data["events"].loc[data["events"]["kind"] == "last_followup",
                                        "patient_id"])
    active = {pid: day for pid, day in current.items() if pid not in discharged}
    assert len(discharged) == 1
    assert sum(5 <= day <= 30 for day in active.values()) > len(current) / 2
    assert any(30 < day <= 100 for day in active.values())


def test_labs_run_daily_from_day_minus_5_to_the_end_of_each_course(
        data: dict[str, pd.DataFrame], labs: pd.DataFrame) -> None:
    reach = {}
    for pid in data["patients"]["patient_id"]:
        days = set(labs.loc[labs["patient_id"] == pid, "d"])
        end = _end_day(data, pid)
        reach[pid] = max(days)
        assert min(days) == -5, pid
        if pid != "SYN-009":  # the patient with gaps (checked below)
            assert max(days) == end, pid
            assert set(range(-5, min(end, 30) + 1)) <= days, pid
        later = sorted(d for d in days if d > 30)
        assert all(b - a <= 4 for a, b in zip(later, later[1:], strict=False)), pid
    assert sum(day >= 30 for day in reach.values()) >= 4
    assert max(reach.values()) >= 100


def test_temperature_is_charted_every_day_for_every_patient(
        data: dict[str, pd.DataFrame], obs: pd.DataFrame) -> None:
    temps = obs[obs["kind"] == "temperature"]
    for pid in data["patients"]["patient_id"]:
        days = set(temps.loc[temps["patient_id"] == pid, "d"])
        assert days == set(range(-5, _end_day(data, pid) + 1)), pid


def test_adults_have_daily_ice_scores_through_every_crs_and_icans_episode(
        data: dict[str, pd.DataFrame], obs: pd.DataFrame) -> None:
    for _, e in data["episodes"].iterrows():
        if e["kind"] not in {"CRS", "ICANS"} or e["patient_id"] == "SYN-011":
            continue
        pid = e["patient_id"]
        end = float(e["resolved_day"]) if e["resolved_day"] else _end_day(data, pid)
        want = set(range(int(float(e["onset_day"])), int(end) + 1))
        mine = obs[(obs["patient_id"] == pid) & (obs["kind"] == "ice_score")]
        assert want <= set(mine["d"]), (pid, e["kind"])
        for kind in ("consciousness", "oxygen_device", "vasopressors"):
            rows = obs[(obs["patient_id"] == pid) & (obs["kind"] == kind)]
            assert want <= set(rows["d"]), (pid, kind)


# --- the scenarios -------------------------------------------------------------------------

def test_syn001_is_uneventful(data, labs, obs) -> None:
    pid = "SYN-001"
    assert _table(data, "episodes", pid).empty
    assert _table(data, "treatments", pid).empty
    t = obs[(obs["patient_id"] == pid) & (obs["kind"] == "temperature")]
    assert t["value"].astype(float).max() < 38.0
    assert _series(labs, pid, "anc").loc[0:].min() > 0.5


def test_syn002_crs_grade_2_resolves_after_tocilizumab(data, labs, obs) -> None:
    pid = "SYN-002"
    crs = _episode(data, pid, "CRS")
    assert int(crs["grade"]) == 2
    toci = _drug_days(data, pid, "tocilizumab")
    assert toci and float(crs["onset_day"]) <= toci[0] < float(crs["resolved_day"])
    mine = obs[obs["patient_id"] == pid]
    day3 = mine[mine["d"] == 3].set_index("kind")["value"]
    assert day3["hypotension"] == "yes" and day3["vasopressors"] == "0"
    assert day3["oxygen_device"] == "low_flow_nc" and float(day3["oxygen_flow"]) <= 6
    temps = mine[mine["kind"] == "temperature"].copy()
    temps["t"] = temps["value"].astype(float)
    assert temps.loc[temps["d"] == 2, "t"].max() >= 38.0
    assert temps.loc[temps["day"] > float(crs["resolved_day"]), "t"].max() < 38.0


def test_syn003_crs_grade_3_with_icans_grade_3_on_dexamethasone(data, obs) -> None:
    pid = "SYN-003"
    assert int(_episode(data, pid, "CRS")["grade"]) == 3
    icans = _episode(data, pid, "ICANS")
    assert int(icans["grade"]) == 3
    mine = obs[obs["patient_id"] == pid]
    assert mine.loc[mine["kind"] == "vasopressors", "value"].astype(int).max() == 1
    ice = mine[mine["kind"] == "ice_score"]
    assert ice["value"].astype(int).min() <= 2
    assert "tactile" in set(mine.loc[mine["kind"] == "consciousness", "value"])
    dex = _drug_days(data, pid, "dexamethasone")
    onset, resolved = float(icans["onset_day"]), float(icans["resolved_day"])
    assert any(onset <= d <= resolved for d in dex)


def test_syn004_iec_hs_emerges_after_crs_resolves_and_responds_to_anakinra(
        data, labs, obs) -> None:
    pid = "SYN-004"
    crs_end = float(_episode(data, pid, "CRS")["resolved_day"])
    iec = _episode(data, pid, "IEC-HS")
    assert float(iec["onset_day"]) > crs_end
    ferritin = _series(labs, pid, "ferritin")
    after = ferritin.loc[crs_end:]
    trough_day = after.loc[: float(iec["onset_day"])].idxmin()
    assert after.loc[trough_day:].max() > 2 * after[trough_day]  # more than doubles
    assert ferritin.loc[crs_end:].max() > 2 * ferritin.loc[0]  # > 2 x baseline at infusion
    assert _series(labs, pid, "fibrinogen").loc[crs_end:].min() < 150
    ast, alt = _series(labs, pid, "ast"), _series(labs, pid, "alt")
    assert (ast.max() > 5 * _uln(labs, pid, "ast")) or (alt.max() > 5 * _uln(labs, pid, "alt"))
    anc = _series(labs, pid, "anc")
    assert anc.loc[crs_end: trough_day + 2].max() >= 1.5  # recovered ...
    assert anc.loc[float(iec["onset_day"]):].min() < 0.5  # ... then a new neutropenia
    anakinra = _drug_days(data, pid, "anakinra")
    start = anakinra[0]
    assert float(iec["onset_day"]) < start
    at_start = ferritin.loc[: math.floor(start)].iloc[-1]
    assert ferritin.loc[math.floor(start) + 2] < at_start  # improving 48 h later
    assert ferritin.loc[math.floor(start) + 7] < 0.5 * at_start
    hemo = obs[(obs["patient_id"] == pid) & (obs["kind"] == "hemophagocytosis")]
    assert list(hemo["value"]) == ["yes"]


def test_syn005_neelapu_hlh_mas_ferritin_over_10000_by_day_5_with_liver_and_kidney_injury(
        data, labs, obs) -> None:
    pid = "SYN-005"
    ferritin = _series(labs, pid, "ferritin")
    assert ferritin.loc[0:5].max() > 10_000
    censored = labs[(labs["patient_id"] == pid) & (labs["qualifier"] == ">")]
    assert list(censored["analyte"]) == ["ferritin"]
    assert _series(labs, pid, "ast").loc[0:10].max() > 5 * _uln(labs, pid, "ast")
    assert _series(labs, pid, "creatinine").loc[0:10].max() > 3 * _uln(labs, pid, "creatinine")
    mine = obs[obs["patient_id"] == pid]
    assert "yes" in set(mine.loc[mine["kind"] == "hemophagocytosis", "value"])
    # anakinra and dexamethasone, ferritin still rising 48 h later, then ruxolitinib
    start = _drug_days(data, pid, "anakinra")[0]
    at_start = ferritin.loc[: math.floor(start)].iloc[-1]
    assert ferritin.loc[math.floor(start) + 2] > at_start
    assert _drug_days(data, pid, "ruxolitinib")[0] > start + 2


def _days_at_or_below(series: pd.Series, limit: float, first: int, last: int) -> int:
    window = series.loc[first:last]
    assert list(window.index) == list(range(first, last + 1)), "needs daily values"
    return int((window <= limit).sum())


def test_syn006_early_icaht_grade_3(labs) -> None:
    anc = _series(labs, "SYN-006", "anc")
    assert 14 <= _days_at_or_below(anc, 0.5, 0, 30) <= 29
    assert _days_at_or_below(anc, 0.1, 0, 30) < 7
    assert anc.loc[25:].min() > 1.0  # recovered


def test_syn007_late_prolonged_cytopenia_after_day_30_is_still_present_today(labs) -> None:
    pid = "SYN-007"
    anc, plt = _series(labs, pid, "anc"), _series(labs, pid, "platelets")
    hb = _series(labs, pid, "hemoglobin")
    assert anc.loc[10:25].max() > 1.0  # recovered first
    late = slice(31, None)
    assert (anc.loc[late] < 1.0).sum() >= 2  # CTCAE grade >= 3
    assert ((anc.loc[late] <= 0.5) & (anc.loc[late] > 0.1)).sum() >= 2  # late ICAHT 3
    assert (plt.loc[late] < 50).sum() >= 2
    assert (hb.loc[late] < 8.0).sum() >= 2
    assert anc.index.max() >= 90
    assert anc.iloc[-1] < 1.0 and plt.iloc[-1] < 50  # still present today


def test_syn008_high_car_hematotox_baseline(labs) -> None:
    pid = "SYN-008"
    base = {a: _series(labs, pid, a).loc[-5]
            for a in ("platelets", "anc", "hemoglobin", "crp", "ferritin")}
    assert base["platelets"] < 75 and base["anc"] < 1.2 and base["hemoglobin"] < 9
    assert base["crp"] > 30 and base["ferritin"] > 2000


def test_syn009_has_gaps_in_daily_labs_and_is_overdue_today(data, labs) -> None:
    pid = "SYN-009"
    days = set(labs.loc[labs["patient_id"] == pid, "d"])
    end = _end_day(data, pid)
    missing = set(range(-5, end + 1)) - days
    assert len(missing) >= 5
    assert any(d + 1 in missing for d in missing if d < end)  # a 2-day gap
    assert max(days) <= end - 2  # nothing drawn yesterday or today
    counts_only = labs[(labs["patient_id"] == pid) & (labs["d"] == 10)]
    assert "ferritin" not in set(counts_only["analyte"]) and "anc" in set(counts_only["analyte"])


def test_syn010_mixes_units_from_a_second_lab_that_convert_to_a_smooth_course(labs) -> None:
    pid = "SYN-010"
    mine = labs[labs["patient_id"] == pid]
    units = mine.groupby("analyte")["unit"].agg(set)
    assert units["fibrinogen"] == {"mg/dL", "g/L"}
    assert units["bilirubin"] == {"mg/dL", "umol/L"}
    for a in ("wbc", "anc", "alc", "platelets"):
        assert units[a] == {"10^9/L", "/uL"}, a
    fib = _series(labs, pid, "fibrinogen")
    assert fib.between(200, 500).all()
    plt = _series(labs, pid, "platelets")
    assert plt.between(50, 400).all()
    assert (plt.diff().abs().dropna() < 0.25 * plt.max()).all()  # no unit jump


def test_syn011_is_a_child_with_icans_scored_by_capd(data, obs) -> None:
    pid = "SYN-011"
    p = _table(data, "patients", pid).iloc[0]
    assert date.fromisoformat(p["infusion_date"]).year - int(p["birth_year"]) < 12
    mine = obs[obs["patient_id"] == pid]
    assert mine[mine["kind"] == "ice_score"].empty
    capd = mine.loc[mine["kind"] == "capd_score", "value"].astype(int)
    assert capd.max() >= 9
    assert int(_episode(data, pid, "ICANS")["grade"]) == 3
    assert {"voice", "spontaneous"} <= set(mine.loc[mine["kind"] == "consciousness", "value"])


def test_syn012_is_discharged_with_a_last_followup_event_and_nothing_after_it(
        data, labs) -> None:
    pid = "SYN-012"
    ev = _table(data, "events", pid)
    assert list(ev["kind"]) == ["last_followup"]
    end = float(ev["day"].iloc[0])
    for name in ("labs", "observations", "treatments"):
        assert _table(data, name, pid)["day"].astype(float).max() <= end, name
    assert _series(labs, pid, "anc").index.max() >= 100


def test_syn013_progression_then_next_therapy(data) -> None:
    ev = _table(data, "events", "SYN-013").set_index("kind")["day"].astype(float)
    assert ev["progression"] < ev["next_therapy"]


def test_syn014_has_crs_still_ongoing_today(data, obs) -> None:
    pid = "SYN-014"
    crs = _episode(data, pid, "CRS")
    assert crs["resolved_day"] == ""
    end = _end_day(data, pid)
    today = obs[(obs["patient_id"] == pid) & (obs["d"] == end)].set_index("kind")["value"]
    assert float(today["temperature"]) >= 38.0
    assert today["oxygen_device"] == "low_flow_nc"

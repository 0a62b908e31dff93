"""Generate the SYNTHETIC CAR-T Watch sample cohort (no real patient, no real data).

Every value here is invented by this script from hand-written trajectories plus a fixed-seed
noise generator, so the same command always writes the same bytes. The cohort exists to
demonstrate and test the dashboard and the rules module; it is not clinical data and must
never be read as such.

    python data/sample/generate.py [--out DIR] [--today YYYY-MM-DD]

writes six CSVs in the import contract of design.md ("Import formats (contract)"):
patients.csv, labs.csv, observations.csv, episodes.csv, treatments.csv, events.csv.
Times are given as `day` (decimal days after infusion), so only patients.csv depends on
--today: each patient's infusion date is placed so that "today" is that patient's current
course day. Nothing is dated after early morning on --today (06:00 draws and a 06:28 dose
are the latest rows), and no lab is more than 5 days before infusion. `python -m core
seed-sample` shifts the dates as it loads them so that the ward's today plays --today.

The patient-by-patient scenarios and the alerts each one should raise are listed in
data/sample/README.md.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np

DEFAULT_TODAY = date(2026, 11, 21)
SEED = 20261121
MORNING = 0.25  # labs are drawn and the morning round is done at 06:00
EVENING = 0.75  # evening round at 18:00
OBS_WATCH_DAYS = 30  # daily neuro / oxygen / pressor charting from day 0 to this day

HERE = Path(__file__).resolve().parent

# Canonical units (core/vocabulary/units.py) and the typical adult ranges of criteria §9.
UNITS = {
    "ferritin": "ng/mL", "fibrinogen": "mg/dL", "ast": "U/L", "alt": "U/L",
    "bilirubin": "mg/dL", "ldh": "U/L", "triglycerides": "mg/dL", "crp": "mg/L",
    "il6": "pg/mL", "scd25": "U/mL", "creatinine": "mg/dL", "wbc": "10^9/L",
    "anc": "10^9/L", "alc": "10^9/L", "hemoglobin": "g/dL", "platelets": "10^9/L",
    "ddimer": "mg/L FEU",
}
REF: dict[str, tuple[float | None, float | None]] = {
    "ferritin": (30, 300), "fibrinogen": (200, 400), "ast": (10, 40), "alt": (7, 56),
    "bilirubin": (0.1, 1.2), "ldh": (120, 250), "triglycerides": (None, 150),
    "crp": (None, 10), "il6": (None, 7), "scd25": (None, None), "creatinine": (0.6, 1.2),
    "wbc": (4.0, 11.0), "anc": (1.5, 8.0), "alc": (1.0, 4.0), "platelets": (150, 400),
    "ddimer": (None, 0.5),
}
HB_REF = {"F": (12.0, 16.0), "M": (13.0, 17.0)}
DECIMALS = {
    "ferritin": 0, "fibrinogen": 0, "ast": 0, "alt": 0, "bilirubin": 1, "ldh": 0,
    "triglycerides": 0, "crp": 1, "il6": 1, "scd25": 0, "creatinine": 2, "wbc": 2,
    "anc": 2, "alc": 2, "hemoglobin": 1, "platelets": 0, "ddimer": 2,
}
# Relative noise (uniform +/-) applied to each generated lab value.
NOISE = {"anc": 0.05, "alc": 0.05, "platelets": 0.04, "hemoglobin": 0.02}
DEFAULT_NOISE = 0.04
CRP_LOQ = 0.5  # CRP below the assay's limit is reported as "<0.5"

# The analytes drawn at every lab draw (the daily panel); WBC is derived from its parts.
PANEL = ("ferritin", "fibrinogen", "ast", "alt", "bilirubin", "creatinine",
         "anc", "alc", "hemoglobin", "platelets")
# Drawn less often: CRP daily to day 14 then weekly, LDH weekly.
CRP_DAYS = set(range(-5, 15)) | {21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98}
LDH_DAYS = {-5, 0, 3, 7, 10, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77, 84, 91, 98}

# The "second lab" (referring hospital) reports in other units; factor from canonical.
SECOND_LAB_UNITS = {
    "fibrinogen": ("g/L", 0.01, 2), "bilirubin": ("umol/L", 17.1, 0),
    "wbc": ("/uL", 1000.0, -1), "anc": ("/uL", 1000.0, -1), "alc": ("/uL", 1000.0, -1),
    "platelets": ("/uL", 1000.0, -3),
}

Keyframes = dict[float, float]


def generic_adult() -> dict[str, Keyframes]:
    """An uneventful adult course after fludarabine/cyclophosphamide lymphodepletion."""
    return {
        "ferritin": {-5: 300, 0: 330, 3: 480, 7: 420, 14: 340, 30: 280, 100: 220},
        "fibrinogen": {-5: 320, 3: 390, 7: 350, 14: 310, 30: 300, 100: 290},
        "ast": {-5: 24, 3: 30, 7: 27, 30: 22, 100: 22},
        "alt": {-5: 22, 3: 31, 7: 29, 30: 21, 100: 20},
        "bilirubin": {-5: 0.6, 5: 0.7, 30: 0.5, 100: 0.5},
        "creatinine": {-5: 0.85, 3: 0.9, 30: 0.85, 100: 0.85},
        "crp": {-5: 4, 0: 6, 3: 14, 7: 6, 30: 3, 100: 2},
        "ldh": {-5: 230, 7: 215, 30: 195, 100: 185},
        "anc": {-5: 3.2, -2: 2.8, 0: 1.6, 2: 0.95, 4: 0.72, 7: 0.78, 10: 1.4, 14: 1.9,
                30: 2.4, 100: 2.8},
        "alc": {-5: 1.1, -3: 0.4, -1: 0.12, 7: 0.15, 14: 0.3, 30: 0.55, 100: 0.9},
        "mono": {-5: 0.5, 0: 0.2, 7: 0.1, 14: 0.4, 30: 0.5, 100: 0.5},
        "hemoglobin": {-5: 11.8, 3: 10.8, 10: 10.3, 30: 11.2, 100: 12.2},
        "platelets": {-5: 190, 0: 150, 7: 95, 14: 120, 30: 160, 100: 190},
    }


def interpolate(kf: Keyframes, day: float) -> float:
    """Log-linear interpolation between keyframes, flat beyond the ends."""
    xs = sorted(kf)
    ys = [math.log(kf[x]) for x in xs]
    return float(math.exp(np.interp(day, xs, ys)))


def fmt(value: float, decimals: int) -> str:
    if decimals <= 0:
        step = 10 ** (-decimals)
        return str(int(round(value / step) * step))
    return f"{round(value, decimals):.{decimals}f}"


def fmt_day(day: float) -> str:
    return f"{day:.2f}".rstrip("0").rstrip(".") if day != int(day) else str(int(day))


@dataclass
class Patient:
    """One synthetic patient: demographics, where "today" falls, and the course builder."""

    patient_id: str
    initials: str
    bed: str
    sex: str
    birth_year: int
    weight_kg: float
    disease: str
    product: str
    today_day: int  # course day of --today (infusion_date = today - today_day)
    last_day: int | None = None  # last day with data if the course ended (discharge)
    adult: bool = True
    kf: dict[str, Keyframes] = field(default_factory=generic_adult)
    temps: dict[int, tuple[float, float]] = field(default_factory=dict)
    o2: dict[int, tuple[str, float]] = field(default_factory=dict)
    pressors: dict[int, int] = field(default_factory=dict)
    hypotension: set[int] = field(default_factory=set)
    fluids: set[int] = field(default_factory=set)
    ice: dict[int, tuple[int, ...]] = field(default_factory=dict)
    capd: dict[int, tuple[int, ...]] = field(default_factory=dict)
    conscious: dict[int, str] = field(default_factory=dict)
    skip_days: set[int] = field(default_factory=set)
    skip: dict[int, set[str]] = field(default_factory=dict)
    extra_lab_days: dict[str, set[int]] = field(default_factory=dict)
    second_lab_days: set[int] = field(default_factory=set)
    points: list[tuple[float, str, float, str]] = field(default_factory=list)
    obs_rows: list[tuple[float, str, str, str]] = field(default_factory=list)
    treatments: list[tuple[float, str, float, str, str]] = field(default_factory=list)
    episodes: list[tuple[str, int, float, float | None]] = field(default_factory=list)
    events: list[tuple[str, float, str]] = field(default_factory=list)

    @property
    def end_day(self) -> int:
        return self.today_day if self.last_day is None else self.last_day

    # -- small builders used by the scenario functions ------------------------------------
    def lab(self, day: float, analyte: str, value: float, qualifier: str = "") -> None:
        """An exact lab value (no noise), e.g. IL-6 or a censored ferritin."""
        self.points.append((day, analyte, value, qualifier))

    def obs(self, day: float, kind: str, value: str, note: str = "") -> None:
        self.obs_rows.append((day, kind, value, note))

    def give(self, day: float, drug: str, dose: float, unit: str, route: str) -> None:
        self.treatments.append((day, drug, dose, unit, route))

    def give_every(self, start: float, stop: float, hours: float, drug: str, dose: float,
                   unit: str, route: str) -> None:
        """Repeated doses from `start` every `hours` while before `stop` (days)."""
        n = 0
        while start + n * hours / 24 < stop - 1e-9:
            self.give(round(start + n * hours / 24, 2), drug, dose, unit, route)
            n += 1

    def fever(self, days: dict[int, tuple[float, float]]) -> None:
        self.temps.update(days)


# --- the scenarios ---------------------------------------------------------------------------

def syn001(p: Patient) -> None:
    """Uneventful course: no CRS, no ICANS, ANC nadir stays above 0.5."""
    p.kf["ferritin"] = {-5: 240, 0: 260, 3: 390, 7: 350, 14: 280}
    p.kf["crp"] = {-5: 0.4, -1: 0.45, 0: 1.5, 3: 6, 7: 2.5, 14: 1.2}
    p.kf["anc"] = {-5: 3.6, -2: 3.0, 0: 1.7, 2: 1.0, 4: 0.74, 7: 0.78, 10: 1.5, 14: 2.1}
    p.kf["hemoglobin"] = {-5: 12.6, 3: 11.4, 10: 10.9, 14: 11.2}


def syn002(p: Patient) -> None:
    """CRS grade 2 (fever, hypotension on fluids, 2 L/min O2) resolving after tocilizumab."""
    p.kf["ferritin"] = {-5: 420, 0: 450, 2: 900, 3: 1600, 4: 1900, 6: 1300, 10: 800, 18: 420}
    p.kf["crp"] = {-5: 3, 0: 5, 2: 60, 3: 145, 4: 110, 5: 60, 7: 15, 14: 4, 18: 3}
    p.kf["anc"] = {-5: 3.8, -2: 3.0, 0: 1.5, 2: 0.7, 3: 0.42, 6: 0.38, 7: 0.7, 10: 1.3,
                   14: 1.8, 18: 2.0}
    p.kf["fibrinogen"] = {-5: 330, 3: 520, 5: 470, 10: 360, 18: 320}
    p.fever({2: (38.6, 38.9), 3: (39.2, 38.4), 4: (37.6, 37.3)})
    p.hypotension |= {3}
    p.fluids |= {3}
    p.o2.update({3: ("low_flow_nc", 2), 4: ("low_flow_nc", 1)})
    p.give(3.4, "tocilizumab", 656, "mg", "IV")
    for day, value in ((2.25, 180), (3.25, 850), (4.25, 2400), (6.25, 150)):
        p.lab(day, "il6", value)
    p.episodes.append(("CRS", 2, 2, 5))


def syn003(p: Patient) -> None:
    """CRS grade 3 (one vasopressor) then ICANS grade 3 (ICE 1-2, seizure) on dexamethasone."""
    p.kf["ferritin"] = {-5: 700, 0: 760, 1: 900, 3: 3500, 4: 5200, 6: 4200, 10: 2000,
                        18: 800, 25: 480}
    p.kf["crp"] = {-5: 8, 0: 10, 1: 40, 2: 120, 3: 210, 4: 160, 5: 90, 7: 30, 10: 10, 25: 4}
    p.kf["fibrinogen"] = {-5: 350, 3: 480, 6: 300, 10: 250, 20: 300}
    p.kf["creatinine"] = {-5: 0.9, 2: 1.0, 3: 1.45, 4: 1.55, 6: 1.1, 10: 0.95, 25: 0.9}
    p.kf["ast"] = {-5: 26, 3: 48, 5: 55, 8: 40, 15: 28}
    p.kf["anc"] = {-5: 3.0, -2: 2.4, 0: 1.2, 1: 0.72, 2: 0.35, 5: 0.15, 8: 0.3, 9: 0.42,
                   10: 0.78, 14: 1.5, 25: 2.1}
    p.fever({1: (38.3, 38.7), 2: (39.4, 39.1), 3: (38.9, 38.2), 4: (37.8, 37.4)})
    p.hypotension |= {2, 3, 4}
    p.fluids |= {2, 3}
    p.pressors.update({3: 1, 4: 1})
    p.o2.update({2: ("low_flow_nc", 3), 3: ("low_flow_nc", 4), 4: ("low_flow_nc", 2),
                 5: ("low_flow_nc", 1)})
    p.ice.update({4: (9, 8), 5: (6, 5), 6: (2, 2), 7: (1, 2), 8: (4, 5), 9: (7, 8),
                  10: (9, 9), 11: (10, 10)})
    p.conscious.update({6: "voice", 7: "tactile", 8: "voice"})
    p.obs(3.3, "icu_admission", "yes")
    p.obs(7.4, "seizure", "rapidly_resolving", "generalised, under 1 minute")
    p.obs(7.6, "cerebral_edema", "none", "CT head")
    p.give(2.3, "tocilizumab", 720, "mg", "IV")
    p.give(3.1, "tocilizumab", 720, "mg", "IV")
    p.give_every(3.2, 5.0, 12, "dexamethasone", 10, "mg", "IV")
    p.give_every(5.0, 10.0, 6, "dexamethasone", 10, "mg", "IV")
    p.give_every(10.0, 12.0, 12, "dexamethasone", 5, "mg", "IV")
    p.give_every(7.45, 20.0, 12, "levetiracetam", 750, "mg", "PO")
    for day, value in ((2.25, 950), (3.25, 3800), (4.25, 5200), (6.25, 400)):
        p.lab(day, "il6", value)
    p.episodes += [("CRS", 3, 1, 6), ("ICANS", 3, 4, 11)]


def syn004(p: Patient) -> None:
    """IEC-HS emerging after CRS resolves; treated with anakinra, ferritin then falls."""
    p.kf["ferritin"] = {-5: 600, 0: 640, 2: 1300, 3: 1500, 5: 1150, 7: 1000, 8: 1250,
                        9: 2100, 10: 4100, 11: 7800, 12: 13500, 13: 12500, 14: 9200,
                        15: 6500, 16: 4800, 18: 2900, 20: 1900, 22: 1400}
    p.kf["fibrinogen"] = {-5: 330, 2: 420, 5: 360, 8: 300, 9: 240, 10: 185, 11: 138,
                          12: 116, 13: 92, 14: 145, 15: 175, 17: 220, 22: 280}
    p.kf["ast"] = {-5: 22, 5: 28, 8: 45, 9: 90, 10: 160, 11: 260, 12: 340, 13: 310,
                   14: 240, 15: 150, 17: 80, 20: 45, 22: 35}
    p.kf["alt"] = {-5: 20, 5: 30, 8: 48, 9: 95, 10: 180, 11: 310, 12: 410, 13: 390,
                   14: 320, 15: 210, 17: 120, 20: 70, 22: 50}
    p.kf["bilirubin"] = {-5: 0.5, 9: 0.8, 11: 1.6, 12: 2.4, 13: 2.6, 15: 1.7, 18: 1.0,
                         22: 0.7}
    p.kf["anc"] = {-5: 3.5, -2: 2.9, 0: 1.4, 2: 0.8, 4: 0.66, 6: 1.2, 8: 1.9, 9: 1.6,
                   10: 1.0, 11: 0.6, 12: 0.35, 13: 0.3, 14: 0.44, 16: 0.9, 18: 1.3, 22: 1.7}
    p.kf["platelets"] = {-5: 210, 0: 170, 5: 120, 8: 140, 10: 95, 11: 60, 12: 38, 13: 30,
                         14: 34, 16: 62, 18: 80, 22: 110}
    p.kf["hemoglobin"] = {-5: 11.2, 5: 10.2, 10: 9.4, 12: 8.1, 13: 7.6, 14: 8.6, 22: 9.2}
    p.kf["ldh"] = {-5: 260, 7: 280, 10: 520, 12: 980, 13: 1100, 15: 700, 18: 420, 22: 300}
    p.kf["crp"] = {-5: 6, 0: 8, 2: 48, 3: 55, 5: 20, 8: 12, 10: 40, 12: 75, 14: 30, 22: 8}
    p.extra_lab_days["ldh"] = set(range(7, 23))
    p.extra_lab_days["crp"] = set(range(15, 23))
    p.fever({1: (38.5, 38.9), 2: (39.0, 38.6), 3: (38.4, 37.9), 10: (37.8, 38.2),
             11: (38.6, 38.9), 12: (38.8, 38.4), 13: (37.9, 37.6)})
    p.obs(0.5, "organomegaly", "none", "admission examination")
    p.obs(0.5, "immunosuppression", "no")
    p.obs(12.5, "organomegaly", "splenomegaly", "ultrasound: spleen 15 cm")
    p.obs(13.6, "hemophagocytosis", "yes", "bone marrow aspirate")
    p.obs(12.25, "fasting", "yes")
    p.obs(-4.75, "fasting", "yes")
    p.lab(-4.75, "triglycerides", 140)
    p.lab(12.25, "triglycerides", 290)
    p.lab(15.25, "triglycerides", 240)
    p.lab(12.25, "scd25", 9800)
    p.lab(12.25, "il6", 85)
    p.lab(12.25, "ddimer", 6.8)
    p.give(13.5, "cryoprecipitate", 10, "units", "IV")
    p.give_every(12.4, 16.4, 6, "anakinra", 100, "mg", "IV")
    p.give_every(16.4, 19.4, 12, "anakinra", 100, "mg", "IV")
    p.episodes += [("CRS", 1, 1, 4), ("IEC-HS", 3, 10, 18)]


def syn005(p: Patient) -> None:
    """Neelapu 2018 HLH/MAS: ferritin > 10,000 by day 3 with grade 3 liver and kidney injury."""
    p.kf["ferritin"] = {-5: 1100, 0: 1250, 1: 2300, 2: 5200, 3: 11800, 4: 24500, 5: 46000,
                        6: 78000, 7: 99000, 8: 92000, 9: 71000, 10: 52000, 12: 26000,
                        14: 14000, 17: 7000, 21: 3800, 28: 2200}
    p.kf["ast"] = {-5: 25, 2: 60, 3: 140, 4: 235, 5: 310, 6: 380, 7: 340, 8: 260, 10: 150,
                   12: 80, 15: 45, 20: 30, 28: 26}
    p.kf["alt"] = {-5: 24, 3: 110, 4: 190, 5: 290, 6: 350, 8: 300, 10: 190, 14: 80,
                   20: 40, 28: 30}
    p.kf["creatinine"] = {-5: 0.95, 2: 1.1, 3: 1.6, 4: 2.6, 5: 3.95, 6: 4.3, 7: 4.1, 8: 3.5,
                          9: 2.8, 11: 1.9, 14: 1.3, 20: 1.05, 28: 1.0}
    p.kf["bilirubin"] = {-5: 0.7, 3: 1.3, 5: 2.9, 6: 3.6, 7: 4.2, 8: 3.9, 10: 2.6, 14: 1.4,
                         20: 0.9, 28: 0.8}
    p.kf["fibrinogen"] = {-5: 380, 1: 450, 3: 330, 4: 210, 5: 140, 6: 105, 7: 88, 8: 95,
                          9: 130, 10: 165, 14: 240, 28: 320}
    p.kf["anc"] = {-5: 2.2, -2: 1.8, 0: 0.9, 1: 0.62, 2: 0.3, 4: 0.14, 6: 0.12, 8: 0.16,
                   10: 0.25, 12: 0.42, 13: 0.62, 14: 0.8, 18: 1.2, 28: 1.6}
    p.kf["platelets"] = {-5: 140, 0: 110, 3: 70, 5: 35, 7: 18, 8: 15, 9: 17, 10: 24,
                         12: 35, 15: 55, 20: 80, 28: 100}
    p.kf["hemoglobin"] = {-5: 10.5, 3: 9.4, 6: 8.2, 7: 7.4, 8: 6.7, 9: 7.9, 12: 8.4, 20: 9.0,
                          28: 9.6}
    p.kf["ldh"] = {-5: 300, 3: 650, 5: 1500, 7: 2400, 10: 1300, 14: 600, 28: 320}
    p.kf["crp"] = {-5: 12, 0: 14, 1: 55, 2: 160, 3: 260, 4: 190, 5: 120, 7: 60, 10: 25,
                   14: 10, 28: 5}
    p.extra_lab_days["ldh"] = set(range(0, 15))
    p.fever({1: (38.6, 39.0), 2: (39.5, 39.3), 3: (39.7, 39.4), 4: (39.2, 38.9),
             5: (38.4, 38.1), 6: (37.9, 37.6)})
    p.hypotension |= {2, 3, 4, 5}
    p.fluids |= {2, 3}
    p.pressors.update({3: 1, 4: 1})
    p.o2.update({2: ("low_flow_nc", 3), 3: ("high_flow_nc", 40), 4: ("high_flow_nc", 35),
                 5: ("high_flow_nc", 20), 6: ("low_flow_nc", 4), 7: ("low_flow_nc", 2)})
    p.ice.update({3: (10,), 4: (9,), 5: (9,), 6: (10,)})
    p.obs(0.5, "organomegaly", "none", "admission examination")
    p.obs(0.5, "immunosuppression", "no")
    p.obs(3.3, "icu_admission", "yes")
    p.obs(4.5, "pulmonary_edema", "2", "chest X-ray: interstitial oedema")
    p.obs(5.5, "oliguria", "3", "urine output < 0.3 mL/kg/h")
    p.obs(6.5, "oliguria", "3")
    p.obs(6.5, "organomegaly", "both", "CT: hepatosplenomegaly")
    p.obs(8.4, "bleeding", "yes", "epistaxis")
    p.obs(8.6, "hemophagocytosis", "yes", "bone marrow aspirate, CD68+")
    p.obs(5.25, "fasting", "yes")
    p.lab(-4.75, "triglycerides", 160)
    p.lab(5.25, "triglycerides", 380)
    p.lab(8.25, "triglycerides", 410)
    p.lab(6.25, "scd25", 24000)
    for day, value in ((2.25, 1200), (3.25, 9800), (4.25, 14500), (6.25, 3200)):
        p.lab(day, "il6", value)
    p.lab(5.25, "ddimer", 18.0)
    p.lab(7.25, "ddimer", 34.0)
    # the laboratory's ferritin assay tops out at 100,000 without dilution on day 7
    p.lab(7.25, "ferritin", 100000, ">")
    p.skip[7] = {"ferritin"}
    p.give(2.2, "tocilizumab", 616, "mg", "IV")
    p.give(3.1, "tocilizumab", 616, "mg", "IV")
    p.give_every(3.2, 7.0, 6, "dexamethasone", 10, "mg", "IV")
    p.give_every(7.0, 10.0, 12, "dexamethasone", 10, "mg", "IV")
    p.give_every(10.0, 14.0, 24, "dexamethasone", 4, "mg", "IV")
    p.give_every(4.6, 14.6, 6, "anakinra", 100, "mg", "IV")
    p.give_every(7.5, 21.5, 12, "ruxolitinib", 10, "mg", "PO")
    p.give(6.6, "cryoprecipitate", 10, "units", "IV")
    p.give(7.6, "cryoprecipitate", 10, "units", "IV")
    for day in (7.5, 8.5, 9.5):
        p.give(day, "platelet_transfusion", 1, "unit", "IV")
    p.give(8.5, "rbc_transfusion", 1, "unit", "IV")
    p.episodes += [("CRS", 3, 1, 8), ("IEC-HS", 4, 4, 14)]


def syn006(p: Patient) -> None:
    """Early ICAHT grade 3: ANC <= 0.5 on 18 of days 0-30 with a one-day blip; G-CSF."""
    p.kf["anc"] = {-5: 2.1, -2: 1.5, 0: 0.8, 1: 0.45, 3: 0.2, 5: 0.09, 7: 0.08, 9: 0.3,
                   10: 0.62, 11: 0.4, 13: 0.3, 16: 0.25, 18: 0.4, 19: 0.45, 20: 0.8,
                   22: 1.1, 25: 1.4, 30: 1.75, 40: 2.0}
    p.kf["platelets"] = {-5: 160, 0: 120, 4: 72, 5: 62, 6: 54, 7: 44, 10: 38, 14: 43,
                         15: 46, 16: 57, 17: 63, 21: 85, 30: 120, 40: 150}
    p.kf["hemoglobin"] = {-5: 11.0, 7: 9.2, 14: 8.6, 21: 9.0, 30: 10.2, 40: 11.0}
    p.kf["ferritin"] = {-5: 480, 0: 520, 3: 900, 7: 760, 14: 600, 30: 420, 40: 380}
    p.kf["crp"] = {-5: 8, 0: 9, 2: 35, 3: 40, 5: 15, 10: 6, 40: 4}
    p.fever({2: (38.3, 38.4), 3: (38.1, 37.7)})
    p.give_every(14.4, 21.0, 24, "gcsf", 480, "ug", "SC")
    p.episodes.append(("CRS", 1, 2, 4))


def syn007(p: Patient) -> None:
    """Late prolonged cytopenia: recovery, then ANC <= 0.5, platelets < 50 after day 30, ongoing."""
    p.kf["anc"] = {-5: 2.6, -2: 2.0, 0: 1.0, 2: 0.45, 4: 0.3, 7: 0.25, 9: 0.42, 10: 0.72,
                   12: 1.0, 16: 1.3, 21: 1.2, 25: 1.05, 28: 0.95, 30: 0.85, 33: 0.62,
                   35: 0.44, 37: 0.38, 40: 0.35, 42: 0.41, 44: 0.46, 47: 0.56, 51: 0.6,
                   56: 0.64, 63: 0.66, 70: 0.7, 77: 0.74, 84: 0.76, 90: 0.8}
    p.kf["platelets"] = {-5: 170, 0: 130, 5: 80, 9: 60, 14: 70, 21: 62, 27: 56, 28: 53,
                         29: 47, 31: 40, 35: 32, 40: 28, 45: 31, 50: 35, 56: 38, 63: 40,
                         70: 42, 80: 44, 90: 45}
    p.kf["hemoglobin"] = {-5: 10.8, 10: 9.5, 21: 8.8, 30: 8.2, 35: 7.6, 40: 7.3, 41: 8.3,
                          45: 7.8, 56: 8.2, 70: 8.5, 90: 8.8}
    p.kf["ferritin"] = {-5: 520, 0: 560, 4: 1500, 7: 1200, 14: 800, 30: 650, 60: 500,
                        90: 420}
    p.kf["crp"] = {-5: 5, 0: 7, 3: 45, 4: 50, 6: 18, 10: 6, 90: 3}
    p.fever({3: (38.4, 38.7), 4: (38.2, 37.8)})
    p.give(40.5, "rbc_transfusion", 1, "unit", "IV")
    for day in (38.4, 40.4, 42.4, 45.4, 47.4):
        p.give(day, "gcsf", 300, "ug", "SC")
    p.episodes.append(("CRS", 1, 3, 5))


def syn008(p: Patient) -> None:
    """High CAR-HEMATOTOX at day -5 (score 7) followed by deep, ongoing cytopenia."""
    p.kf["anc"] = {-5: 0.95, -2: 0.8, 0: 0.35, 2: 0.14, 5: 0.06, 8: 0.07, 11: 0.15,
                   14: 0.3, 16: 0.42}
    p.kf["alc"] = {-5: 0.6, -3: 0.25, -1: 0.08, 7: 0.1, 16: 0.2}
    p.kf["mono"] = {-5: 0.3, 0: 0.1, 16: 0.15}
    p.kf["platelets"] = {-5: 62, 0: 45, 3: 28, 6: 16, 8: 12, 10: 17, 12: 23, 14: 26, 16: 29}
    p.kf["hemoglobin"] = {-5: 8.6, 3: 7.9, 6: 7.3, 7: 6.9, 8: 8.0, 12: 7.6, 14: 7.2,
                          15: 8.2, 16: 8.1}
    p.kf["ferritin"] = {-5: 2650, 0: 2800, 3: 4200, 6: 3800, 10: 3000, 16: 2600}
    p.kf["crp"] = {-5: 45, 0: 38, 2: 70, 3: 95, 5: 60, 8: 25, 16: 12}
    p.fever({2: (38.2, 38.6), 3: (38.3, 37.9)})
    p.give_every(2.4, 16.0, 24, "gcsf", 480, "ug", "SC")
    for day in (6.5, 8.5, 10.5):
        p.give(day, "platelet_transfusion", 1, "unit", "IV")
    for day in (7.5, 14.5):
        p.give(day, "rbc_transfusion", 1, "unit", "IV")
    p.episodes.append(("CRS", 1, 2, 4))


def syn009(p: Patient) -> None:
    """Gaps in the daily labs (missed draws, a counts-only day), no labs for the last 2 days."""
    p.skip_days |= {-3, 6, 7, 13, 14, 20, 21}
    p.skip[10] = {"ferritin", "fibrinogen", "ast", "alt", "bilirubin", "creatinine", "crp"}
    p.skip[17] = {"fibrinogen"}
    p.kf["anc"] = {-5: 3.0, -2: 2.5, 0: 1.3, 2: 0.7, 3: 0.45, 5: 0.38, 8: 0.42, 9: 0.7,
                   12: 1.3, 19: 1.9}
    p.kf["ferritin"] = {-5: 350, 0: 380, 4: 820, 8: 600, 19: 400}
    p.kf["crp"] = {-5: 3, 0: 4, 3: 30, 4: 42, 6: 15, 10: 5, 19: 3}
    p.fever({4: (38.3, 38.5), 5: (38.1, 37.6)})
    p.episodes.append(("CRS", 1, 4, 6))


def syn010(p: Patient) -> None:
    """Labs from a second (referring) laboratory in g/L, /uL and umol/L before and after."""
    p.second_lab_days = set(range(-5, 0)) | set(range(15, 27))
    p.kf["anc"] = {-5: 2.4, -2: 1.9, 0: 0.9, 1: 0.62, 2: 0.42, 5: 0.25, 8: 0.4, 9: 0.72,
                   12: 1.2, 20: 1.8, 26: 2.1}
    p.kf["ferritin"] = {-5: 480, 0: 520, 3: 1800, 5: 3200, 8: 2100, 14: 900, 26: 430}
    p.kf["fibrinogen"] = {-5: 310, 3: 420, 6: 360, 10: 300, 26: 280}
    p.kf["crp"] = {-5: 5, 0: 6, 3: 80, 4: 110, 5: 70, 7: 20, 14: 5}
    p.fever({3: (38.7, 39.1), 4: (38.9, 38.3), 5: (37.8, 37.5)})
    p.hypotension |= {4}
    p.fluids |= {4}
    p.ice.update({6: (8, 8), 7: (9, 10), 8: (10,)})
    p.give(4.3, "tocilizumab", 488, "mg", "IV")
    p.episodes += [("CRS", 2, 3, 6), ("ICANS", 1, 6, 8)]


def syn011(p: Patient) -> None:
    """Paediatric (8 years): CRS grade 2, then ICANS grade 3 by CAPD >= 9; dexamethasone."""
    p.kf["anc"] = {-5: 2.0, -2: 1.6, 0: 0.7, 1: 0.45, 3: 0.2, 6: 0.15, 9: 0.35, 10: 0.46,
                   11: 0.75, 14: 1.2, 19: 1.6}
    p.kf["alc"] = {-5: 1.8, -3: 0.6, -1: 0.15, 7: 0.2, 14: 0.45, 19: 0.6}
    p.kf["hemoglobin"] = {-5: 10.6, 3: 9.8, 10: 9.1, 19: 9.8}
    p.kf["platelets"] = {-5: 140, 0: 110, 5: 70, 9: 60, 14: 85, 19: 110}
    p.kf["creatinine"] = {-5: 0.42, 3: 0.5, 8: 0.45, 19: 0.4}
    p.kf["ferritin"] = {-5: 650, 0: 700, 2: 2400, 4: 4800, 7: 3100, 12: 1300, 19: 520}
    p.kf["crp"] = {-5: 4, 0: 5, 1: 40, 2: 95, 3: 120, 4: 70, 6: 20, 10: 5, 19: 3}
    p.fever({1: (38.9, 39.4), 2: (39.6, 39.0), 3: (38.6, 38.1), 4: (37.7, 37.4)})
    p.o2.update({2: ("low_flow_nc", 1), 3: ("low_flow_nc", 1)})
    p.capd.update({5: (6, 7), 6: (12, 13), 7: (10, 9), 8: (6, 5), 9: (3, 2), 10: (0, 0)})
    p.conscious.update({6: "voice", 7: "voice"})
    p.give(2.3, "tocilizumab", 312, "mg", "IV")
    p.give_every(6.4, 9.4, 6, "dexamethasone", 4, "mg", "IV")
    p.episodes += [("CRS", 2, 1, 5), ("ICANS", 3, 5, 10)]


def syn012(p: Patient) -> None:
    """Completed course: CRS grade 1, labs thinning after day 30, discharged at day 100."""
    p.kf["anc"] = {-5: 3.4, -2: 2.8, 0: 1.4, 2: 0.7, 3: 0.42, 7: 0.4, 8: 0.7, 12: 1.5,
                   30: 2.3, 100: 3.0}
    p.fever({2: (38.4, 38.8), 3: (38.2, 37.6)})
    p.give(3.3, "tocilizumab", 704, "mg", "IV")
    p.episodes.append(("CRS", 1, 2, 4))
    p.events.append(("last_followup", 100.4,
                     "day +100 review; discharged to the referring haematologist"))


def syn013(p: Patient) -> None:
    """Myeloma progression at day 45 and next therapy at day 50; cytopenia after relapse."""
    p.kf["anc"] = {-5: 2.5, -2: 2.0, 0: 1.1, 1: 0.48, 3: 0.3, 6: 0.42, 7: 0.8, 10: 1.3,
                   20: 1.8, 30: 2.0, 44: 1.9, 47: 1.3, 52: 0.9, 62: 0.8}
    p.kf["platelets"] = {-5: 150, 0: 120, 5: 75, 10: 90, 20: 120, 30: 135, 44: 120,
                         47: 80, 52: 45, 56: 40, 62: 42}
    p.kf["hemoglobin"] = {-5: 10.4, 7: 9.6, 30: 10.6, 44: 10.2, 52: 8.9, 62: 8.6}
    p.kf["ferritin"] = {-5: 800, 0: 850, 2: 1900, 4: 1600, 10: 1000, 30: 480, 62: 420}
    p.kf["crp"] = {-5: 6, 0: 7, 1: 38, 2: 45, 4: 12, 10: 5, 62: 6}
    p.fever({1: (38.3, 38.6), 2: (38.1, 37.4)})
    p.episodes.append(("CRS", 1, 1, 3))
    p.events += [
        ("progression", 45.4, "progressive disease: rising paraprotein, 60 % marrow plasma cells"),
        ("next_therapy", 50.4, "next line started (bispecific antibody)"),
    ]


def syn014(p: Patient) -> None:
    """CRS grade 2 still ongoing today (cilta-cel, onset day 6)."""
    p.kf["ferritin"] = {-5: 600, 0: 640, 5: 900, 6: 1300, 7: 1900, 8: 2400}
    p.kf["crp"] = {-5: 5, 0: 6, 5: 12, 6: 70, 7: 150, 8: 120}
    p.kf["anc"] = {-5: 2.8, -2: 2.2, 0: 1.3, 3: 0.9, 6: 0.75, 8: 0.7}
    p.kf["platelets"] = {-5: 120, 0: 105, 8: 80}
    p.fever({6: (38.7, 39.1), 7: (39.3, 38.6), 8: (38.4, 38.4)})
    p.hypotension |= {7}
    p.fluids |= {7}
    p.o2.update({7: ("low_flow_nc", 2), 8: ("low_flow_nc", 2)})
    p.give(7.3, "tocilizumab", 736, "mg", "IV")
    p.episodes.append(("CRS", 2, 6, None))


COHORT: tuple[tuple[Patient, Callable[[Patient], None]], ...] = (
    (Patient("SYN-001", "AB", "4A-01", "F", 1961, 68.0, "DLBCL", "liso-cel", 14), syn001),
    (Patient("SYN-002", "CD", "4A-02", "M", 1958, 82.0, "DLBCL", "axi-cel", 18), syn002),
    (Patient("SYN-003", "EF", "4A-03", "M", 1966, 90.0, "transformed FL", "axi-cel", 25),
     syn003),
    (Patient("SYN-004", "GH", "4B-01", "F", 1970, 64.0, "DLBCL", "tisa-cel", 22), syn004),
    (Patient("SYN-005", "IJ", "ICU-2", "M", 1959, 77.0, "multiple myeloma", "cilta-cel",
             28), syn005),
    (Patient("SYN-006", "KL", "4B-02", "M", 1952, 74.0, "mantle cell lymphoma",
             "brexu-cel", 40), syn006),
    (Patient("SYN-007", "MN", "5C-01", "F", 1963, 59.0, "DLBCL", "tisa-cel", 90), syn007),
    (Patient("SYN-008", "OP", "4A-04", "M", 1955, 85.0, "DLBCL", "axi-cel", 16), syn008),
    (Patient("SYN-009", "QR", "4B-03", "F", 1972, 70.0, "follicular lymphoma", "liso-cel",
             21), syn009),
    (Patient("SYN-010", "ST", "4B-04", "F", 1988, 61.0, "B-ALL", "brexu-cel", 26), syn010),
    (Patient("SYN-011", "UV", "P-03", "M", 2018, 26.0, "B-ALL", "tisa-cel", 19,
             adult=False), syn011),
    (Patient("SYN-012", "WX", "", "M", 1969, 88.0, "DLBCL", "axi-cel", 112, last_day=100),
     syn012),
    (Patient("SYN-013", "YZ", "5C-02", "F", 1957, 66.0, "multiple myeloma", "ide-cel", 62),
     syn013),
    (Patient("SYN-014", "BC", "4A-05", "M", 1961, 92.0, "multiple myeloma", "cilta-cel", 8),
     syn014),
)


# --- rendering ------------------------------------------------------------------------------

def lab_days(p: Patient) -> list[int]:
    """Daily from day -5 to 30, then three times a week, twice a week after day 60."""
    days = []
    for d in range(-5, p.end_day + 1):
        if d <= 30:
            keep = True
        elif d <= 60:
            keep = (d - 31) % 7 in (0, 2, 4)
        else:
            keep = (d - 31) % 7 in (0, 3)
        if keep or d == p.end_day:
            days.append(d)
    return [d for d in days if d not in p.skip_days]


def noisy(rng: random.Random, value: float, analyte: str) -> float:
    spread = NOISE.get(analyte, DEFAULT_NOISE)
    return value * (1 + rng.uniform(-spread, spread))


def lab_row(p: Patient, day: float, analyte: str, value: float,
            qualifier: str = "") -> list[str]:
    low, high = HB_REF[p.sex] if analyte == "hemoglobin" else REF[analyte]
    unit, decimals = UNITS[analyte], DECIMALS[analyte]
    if analyte == "crp" and value < CRP_LOQ and not qualifier:
        value, qualifier = CRP_LOQ, "<"
    if math.floor(day) in p.second_lab_days and analyte in SECOND_LAB_UNITS:
        unit, factor, decimals = SECOND_LAB_UNITS[analyte]
        value *= factor
        low = None if low is None else low * factor
        high = None if high is None else high * factor
        if analyte == "bilirubin":  # the second lab's own printed range
            low, high = 2, 21
    ref = [fmt(x, max(decimals, 0) if x != int(x) else 0) if x is not None else ""
           for x in (low, high)]
    return [p.patient_id, fmt_day(day), analyte, fmt(value, decimals), unit, qualifier, *ref]


def render_labs(p: Patient, rng: random.Random) -> list[list[str]]:
    rows: list[tuple[float, int, list[str]]] = []
    order = {a: i for i, a in enumerate(UNITS)}
    for d in lab_days(p):
        t = d + MORNING
        skipped = p.skip.get(d, set())
        drawn = [a for a in PANEL if a not in skipped]
        for analyte, days in (("crp", CRP_DAYS), ("ldh", LDH_DAYS)):
            if (d in days or d in p.extra_lab_days.get(analyte, set())) and analyte not in skipped:
                drawn.append(analyte)
        # keyframes are written per course day, so they are read at the day itself
        values = {a: round(noisy(rng, interpolate(p.kf[a], d), a), DECIMALS[a]) for a in drawn}
        if "anc" in values:  # WBC = neutrophils + lymphocytes + the rest, so ANC <= WBC
            rest = noisy(rng, interpolate(p.kf["mono"], d), "mono")
            values["wbc"] = round(values["anc"] + values.get("alc", 0) + rest, 2)
        for analyte, value in values.items():
            rows.append((t, order[analyte], lab_row(p, t, analyte, value)))
    for day, analyte, value, qualifier in p.points:
        rows.append((day, order[analyte], lab_row(p, day, analyte, value, qualifier)))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in rows]


def render_observations(p: Patient, rng: random.Random) -> list[list[str]]:
    rows: list[tuple[float, str, str, str]] = []
    episode_end = max((e[3] if e[3] is not None else p.end_day for e in p.episodes),
                      default=0)
    watch_until = min(p.end_day, max(OBS_WATCH_DAYS, int(episode_end)))
    for d in range(-5, p.end_day + 1):
        slots = (MORNING,) if d == p.today_day or d > 30 else (MORNING, EVENING)
        for i, slot in enumerate(slots):
            if d in p.temps:
                temp = p.temps[d][i] + rng.uniform(-0.05, 0.05)
            else:
                temp = 36.8 + rng.uniform(-0.4, 0.4)
            rows.append((d + slot, "temperature", f"{temp:.1f}", ""))
            if temp >= 38.0:
                dose = 1000 if p.adult else round(15 * p.weight_kg / 10) * 10
                p.give(round(d + slot + 0.02, 2), "paracetamol", dose, "mg", "PO")
        if not 0 <= d <= watch_until:
            continue
        t = d + MORNING
        device, flow = p.o2.get(d, ("none", 0))
        rows.append((t, "oxygen_device", device, ""))
        if device != "none":
            rows.append((t, "oxygen_flow", fmt(flow, 0), ""))
        rows.append((t, "vasopressors", str(p.pressors.get(d, 0)), ""))
        rows.append((t, "hypotension", "yes" if d in p.hypotension else "no", ""))
        if d in p.fluids:
            rows.append((t, "iv_fluids", "yes", ""))
        rows.append((t, "consciousness", p.conscious.get(d, "spontaneous"), ""))
        scores = p.ice if p.adult else p.capd
        normal = 10 if p.adult else 0
        kind = "ice_score" if p.adult else "capd_score"
        for i, score in enumerate(scores.get(d, (normal,))):
            if d == p.today_day and i > 0:
                break
            rows.append((d + (MORNING, EVENING)[i], kind, str(score), ""))
    rows += p.obs_rows
    rows.sort(key=lambda r: (r[0], r[1]))
    return [[p.patient_id, fmt_day(t), kind, value, OBS_UNITS.get(kind, ""), note]
            for t, kind, value, note in rows]


OBS_UNITS = {"temperature": "°C", "oxygen_flow": "L/min", "ice_score": "points",
             "capd_score": "points", "pulmonary_edema": "grade", "oliguria": "grade"}


def build(today: date) -> dict[str, list[list[str]]]:
    """All six tables (header row first) for a cohort whose "now" is `today`."""
    tables: dict[str, list[list[str]]] = {
        "patients": [["patient_id", "initials", "bed", "sex", "birth_year", "weight_kg",
                      "disease", "product", "infusion_date", "lymphodepletion_start"]],
        "labs": [["patient_id", "day", "analyte", "value", "unit", "qualifier", "ref_low",
                  "ref_high"]],
        "observations": [["patient_id", "day", "kind", "value", "unit", "note"]],
        "episodes": [["patient_id", "kind", "grade", "onset_day", "resolved_day"]],
        "treatments": [["patient_id", "day", "drug", "dose", "dose_unit", "route"]],
        "events": [["patient_id", "kind", "day", "note"]],
    }
    for index, (template, scenario) in enumerate(COHORT):
        p = Patient(**{f: getattr(template, f) for f in (
            "patient_id", "initials", "bed", "sex", "birth_year", "weight_kg", "disease",
            "product", "today_day", "last_day", "adult")})
        scenario(p)
        rng = random.Random(SEED + index)
        infusion = today - timedelta(days=p.today_day)
        tables["patients"].append([
            p.patient_id, p.initials, p.bed, p.sex, str(p.birth_year), fmt(p.weight_kg, 1),
            p.disease, p.product, infusion.isoformat(),
            (infusion - timedelta(days=5)).isoformat(),
        ])
        tables["labs"] += render_labs(p, rng)
        tables["observations"] += render_observations(p, rng)
        for kind, grade, onset, resolved in p.episodes:
            tables["episodes"].append([p.patient_id, kind, str(grade), fmt_day(onset),
                                       "" if resolved is None else fmt_day(resolved)])
        for day, drug, dose, unit, route in sorted(p.treatments, key=lambda r: (r[0], r[1])):
            tables["treatments"].append([p.patient_id, fmt_day(day), drug, f"{dose:g}",
                                         unit, route])
        for kind, day, note in p.events:
            tables["events"].append([p.patient_id, kind, fmt_day(day), note])
    return tables


def write(out: Path, today: date = DEFAULT_TODAY) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rows in build(today).items():
        path = out / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh, lineterminator="\n").writerows(rows)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the SYNTHETIC sample cohort CSVs.")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory")
    parser.add_argument("--today", type=date.fromisoformat, default=DEFAULT_TODAY,
                        help="the date the cohort is 'as of' (default %(default)s)")
    args = parser.parse_args(argv)
    for path in write(args.out, args.today):
        print(path)


if __name__ == "__main__":
    main()

"""ASTCT 2019 CRS grade from bedside observations (criteria.md §5.1).

The grade is the *current* grade of each ward day: for each input the latest observation
charted that day is used. Fever (T >= 38.0 °C) is required for any grade unless the patient
has had an antipyretic, anti-cytokine (e.g. tocilizumab) or corticosteroid dose, after which
hypotension and hypoxia alone drive the grade. Grade = the more severe of hypotension and
hypoxia (at least 1 with fever). CTCAE organ grades never feed into it (§5.1).

`judge` grades every course-day of a ward at once (numpy arrays over the grid rows);
`explain` writes one row's finding from the observations the judge cited.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
    graded_status,
)
from core.rules.frames import Columns, Ward
from core.rules.monitoring import (
    MONITORING_GAP,
    Charted,
    charted_today,
    dropped,
    prompts_shown,
)
from core.rules.tables import NONE
from core.vocabulary.observations import DrugClass, drugs_in
from core.vocabulary.units import Evidence

FEVER_WAIVER_DRUGS = tuple(sorted(
    drugs_in(DrugClass.ANTIPYRETIC) | drugs_in(DrugClass.ANTI_CYTOKINE)
    | drugs_in(DrugClass.STEROID)
))

POSITIVE_PRESSURE = ("cpap", "bipap", "ventilator")
HIGH_FLOW_DEVICES = ("high_flow_nc", "facemask", "non_rebreather", "venturi")
LOW_FLOW_DEVICES = ("low_flow_nc", "blow_by")

RULE = Rule(
    id="crs_grade",
    title="CRS grade (ASTCT 2019)",
    version="1.0",
    citation=Citation(
        source="Lee et al., Biol Blood Marrow Transplant 2019;25(4):625-638 (ASTCT consensus)",
        section="CRS grading table and footnotes; criteria.md §5.1",
        doi="10.1016/j.bbmt.2018.12.758",
    ),
    evidence=Evidence.C2,
    severity=Severity.WARNING,
    graded=True,
    escalates_at_grade=3,
    short_name="CRS", syndrome="graded", episode_kind="CRS",
    thresholds=(
        Threshold("fever_c", 38.0, "°C", Evidence.C2, "fever: temperature at or above", ">="),
        Threshold("low_flow_max_l_min", 6.0, "L/min", Evidence.C2,
                  "oxygen up to this flow by low-flow nasal cannula (or blow-by) is grade 2; "
                  "above it (high-flow) grade 3", "<="),
        Threshold("multiple_vasopressors", 2.0, "count", Evidence.C2,
                  "this many vasopressors (excluding vasopressin) or more is grade 4", ">="),
        MONITORING_GAP,
    ),
    inputs=("temperature", "hypotension", "iv_fluids", "vasopressors", "vasopressin",
            "oxygen_device", "oxygen_flow", "antipyretic / anti-cytokine / steroid doses"),
    choices=(
        "Current grade = the latest observation of each input on the evaluated ward day "
        "(not the day's worst); suggested episodes take the maximum over days.",
        "Fever is waived after any antipyretic, anti-cytokine (tocilizumab, siltuximab, "
        "anakinra, emapalumab) or corticosteroid dose given on or after day 0, for the rest "
        "of the course (the broader ASTCT form, §5.1); the drug and day are shown.",
        "Vasopressin alone counts as one vasopressor (grade 3); the vasopressor count "
        "excludes vasopressin.",
        "Hypotension is graded 2 when recorded (or an IV fluid bolus was given) without "
        "vasopressors; it is known absent only when 'hypotension: no' is recorded, or "
        "vasopressors 0 and no IV fluids.",
        "A low-flow cannula above the flow limit counts as high-flow (grade 3); a flow with no "
        "device recorded is taken as nasal cannula; a named high-flow device is grade 3 "
        "whatever the flow.",
        "With fever but hypotension or oxygen not logged, the grade is a lower bound (met, "
        "with the missing inputs listed).",
        "A day without observations neither starts nor ends a CRS stretch (since_day).",
        "'Not attributable to another cause' needs clinician review and is not checked.",
        "After the bedside monitoring phase [DESIGN]: a 'log today's ...' prompt is dropped "
        "when that input was charted before but not in the last monitoring_gap_days (3) "
        "days; a day left without a grade and without prompts is not_evaluable with empty "
        "missing and extra outside_monitoring_window (no nagging for outpatients). Charting "
        "the input again restores the prompt; a fever with uncharted BP/oxygen still asks.",
        "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
    ),
    description="ASTCT consensus CRS grade 0-4 for the evaluated day (grade 5 = death is "
                "clinician-entered).",
)

MISSING_TEMP = "log today's temperature"
MISSING_BP = "log today's blood pressure status (hypotension yes/no, vasopressors)"
MISSING_O2 = "log today's oxygen device (or 'none' for room air) and flow"

PROMPTS = {  # each prompt and the observation kinds that answer it
    MISSING_TEMP: ("temperature",),
    MISSING_BP: ("hypotension", "vasopressors", "vasopressin", "iv_fluids"),
    MISSING_O2: ("oxygen_device", "oxygen_flow"),
}


class Today(NamedTuple):
    """What the grade reads on each graded ward day: the latest observation of each input
    charted that day (as of the day's end), and whether fever is waived by then."""

    temperature: Charted
    hypotension: Charted
    iv_fluids: Charted
    vasopressors: Charted
    vasopressin: Charted
    oxygen_device: Charted
    oxygen_flow: Charted
    fever_waived: np.ndarray  # a fever-waiving dose given from day 0 to the day's end


INPUTS = Today._fields[:-1]


class Domain(NamedTuple):
    grade: np.ndarray  # the domain's grade 0-4 (NaN: not known today)
    by: np.ndarray  # the observation that decides it (NONE: none)


def hypotension(x: Today, t: Thresholds) -> tuple[Domain, np.ndarray]:
    """§5.1 hypotension: >= 2 vasopressors (excluding vasopressin) grade 4; one vasopressor or
    vasopressin grade 3; hypotension (or an IV fluid bolus) without vasopressors grade 2;
    known absent grade 0. Also the vasopressin observation cited with a grade 3."""
    n = x.vasopressors.num
    one = n >= 1
    cases = [n >= t["multiple_vasopressors"],
             one | x.vasopressin.yes,
             x.hypotension.yes | x.iv_fluids.yes,
             (x.hypotension.today & ~x.hypotension.yes)
             | ((n == 0) & x.iv_fluids.today & ~x.iv_fluids.yes)]  # known absent
    grade = np.select(cases, [4, 3, 2, 0], np.nan)
    by = np.select(cases, [
        x.vasopressors.pos, np.where(one, x.vasopressors.pos, NONE),
        np.where(x.hypotension.yes, x.hypotension.pos, x.iv_fluids.pos),
        np.where(x.hypotension.today, x.hypotension.pos, x.vasopressors.pos)], NONE)
    vasopressin = np.where((grade == 3) & x.vasopressin.yes, x.vasopressin.pos, NONE)
    return Domain(grade, by), vasopressin


def hypoxia(x: Today, t: Thresholds) -> Domain:
    """§5.1 hypoxia: positive pressure grade 4; a high-flow device, or a low-flow cannula above
    low_flow_max_l_min, grade 3; low-flow oxygen or blow-by grade 2; room air grade 0. A flow
    without a device is taken as nasal cannula."""
    device, flow = x.oxygen_device, x.oxygen_flow
    f = flow.num
    no_device = pd.isna(device.text)
    low = np.isin(device.text, LOW_FLOW_DEVICES) | (no_device & ~np.isnan(f))
    positive_pressure = np.isin(device.text, POSITIVE_PRESSURE)
    high_flow = np.isin(device.text, HIGH_FLOW_DEVICES)
    too_fast = low & (f > t["low_flow_max_l_min"])
    no_oxygen = low & no_device & (f <= 0)
    room_air = device.text == "none"
    cases = [positive_pressure, high_flow, too_fast, no_oxygen, low, room_air]
    grade = np.select(cases, [4, 3, 3, 0, 2, 0], np.nan)
    by = np.select(cases, [device.pos, device.pos, flow.pos, flow.pos,
                           np.where(device.today, device.pos, flow.pos), device.pos], NONE)
    return Domain(grade, by)


def crs_grade(x: Today, t: Thresholds) -> dict[str, np.ndarray]:
    """§5.1: with fever, the more severe of hypotension and hypoxia, at least 1; once fever is
    waived, that grade from 2 up (0 only when both are known); without fever and no waiver,
    grade 0. NaN: not evaluable. Also what is missing and the deciding observations."""
    temp = x.temperature.num
    fever, afebrile = temp >= t["fever_c"], temp < t["fever_c"]
    (h, h_by), vasopressin = hypotension(x, t)
    o2, o2_by = hypoxia(x, t)
    worst = np.nan_to_num(np.fmax(h, o2), nan=0.0)
    waived = x.fever_waived
    both_known = ~np.isnan(h) & ~np.isnan(o2)
    grade = np.select([fever, waived & ((worst >= 2) | both_known), waived, afebrile],
                      [np.maximum(worst, 1), np.where(worst >= 2, worst, 0), np.nan, 0], np.nan)
    asks_inputs = ~(afebrile & ~waived)  # graded 0 on the temperature alone otherwise
    return {
        "grade": grade,
        MISSING_TEMP: ~fever & ~afebrile & ~waived,
        MISSING_BP: asks_inputs & np.isnan(h),
        MISSING_O2: asks_inputs & np.isnan(o2),
        "temperature": np.where(np.isnan(temp), NONE, x.temperature.pos), "temperature_c": temp,
        "hypotension": h, "hypotension_by": h_by, "vasopressin_by": vasopressin,
        "vasopressors_n": x.vasopressors.num,
        "hypoxia": o2, "hypoxia_by": o2_by, "oxygen_l_min": x.oxygen_flow.num,
    }


def judge(ward: Ward, t: Thresholds) -> Columns:
    """The CRS grade of every course-day of the ward, as of each day's end."""
    # the first fever-waiving dose given from day 0 on, known at the row's end
    waiver = ward.first_dose(FEVER_WAIVER_DRUGS, np.zeros(ward.size), ward.days["end"])
    waived = waiver != NONE
    charted = charted_today(ward, INPUTS)
    found = crs_grade(Today._make([*(charted[kind] for kind in INPUTS), waived]), t)
    found["status"] = graded_status(found["grade"])
    found["waiver"] = waiver
    return found | dropped(ward, charted, PROMPTS, t)


def _hypotension_why(grade: float, vasopressors: float) -> str:
    if grade == 4:
        return f"{vasopressors:g} vasopressors (excluding vasopressin): grade 4"
    if grade == 3:
        return "one vasopressor: grade 3"
    if grade == 2:
        return "hypotension not requiring vasopressors: grade 2"
    return "no hypotension"


def _hypoxia_why(grade: float, by: EvidenceItem, flow: float, t: Thresholds) -> str:
    """Why the observation `by` (the device, or else the flow) gives the hypoxia grade."""
    limit = t["low_flow_max_l_min"]
    if grade == 4:
        return "positive-pressure ventilation: grade 4"
    if grade == 3:
        if by.analyte == "oxygen_device":
            return f"{str(by.value).replace('_', ' ')}: grade 3"
        return f"oxygen {flow:g} L/min > {limit:g} L/min (high-flow): grade 3"
    if grade == 2:
        return f"low-flow oxygen (<= {limit:g} L/min) or blow-by: grade 2"
    return "room air" if by.analyte == "oxygen_device" else "no supplemental oxygen"


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The finding of one judged row: the temperature, the waiving drug, the hypotension and
    hypoxia observations that decided, and the prompts for what is missing."""
    grade = None if math.isnan(row["grade"]) else int(row["grade"])
    ev: list[EvidenceItem] = []
    if row["temperature"] != NONE:
        c = row["temperature_c"]
        op = ">=" if c >= t["fever_c"] else "<"
        ev.append(ward.observation_evidence(
            row["temperature"], f"temperature {c:g} °C {op} {t['fever_c']:g} °C"))
    if row["waiver"] != NONE:
        w = int(row["waiver"])
        wd, drug = float(ward.treatments.day[w]), str(ward.treatments["drug"][w])
        ev.append(EvidenceItem(
            why=f"fever no longer required after {drug} (first given day {math.floor(wd)})",
            analyte=drug, day=wd))
    if row["hypotension_by"] != NONE:
        ev.append(ward.observation_evidence(
            row["hypotension_by"], _hypotension_why(row["hypotension"], row["vasopressors_n"])))
    if row["vasopressin_by"] != NONE:
        ev.append(ward.observation_evidence(
            row["vasopressin_by"], "vasopressin (with or without one vasopressor): grade 3"))
    if row["hypoxia_by"] != NONE:
        by = ward.observation_evidence(row["hypoxia_by"], "")
        by.why = _hypoxia_why(row["hypoxia"], by, row["oxygen_l_min"], t)
        ev.append(by)
    missing, extra = prompts_shown(row, PROMPTS, graded=grade is not None)
    return Finding(rule=RULE.id, status=Status(row["status"]), grade=grade, evidence=ev,
                   missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, judge=judge, explain=explain),)

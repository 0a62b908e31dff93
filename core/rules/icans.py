"""ASTCT 2019 ICANS grade: ICE (age >= 12) or CAPD (< 12) and the other domains (§5.2-5.4).

Grade = the most severe domain on each ward day, using the latest observation of each domain
charted that day. Age is the patient's age in the calendar year of the graded day (only the
birth year is stored).

`judge` grades every course-day of a ward at once (numpy arrays over the grid rows);
`explain` writes one row's finding from the observations the judge cited.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

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
from core.vocabulary.units import Evidence

RULE = Rule(
    id="icans_grade",
    title="ICANS grade (ASTCT 2019, ICE or CAPD)",
    version="1.0",
    citation=Citation(
        source="Lee et al., Biol Blood Marrow Transplant 2019;25(4):625-638 (ASTCT consensus); "
               "CAPD: Traube et al., Crit Care Med 2014;42(3):656-663",
        section="ICE score and ICANS grading tables; criteria.md §5.2, §5.3, §5.4",
        doi="10.1016/j.bbmt.2018.12.758",
    ),
    evidence=Evidence.C2,
    severity=Severity.WARNING,
    graded=True,
    escalates_at_grade=3,
    short_name="ICANS", syndrome="graded", episode_kind="ICANS",
    thresholds=(
        Threshold("ice_min_age_years", 12, "years", Evidence.C2,
                  "ICE score from this age; CAPD below it", ">="),
        Threshold("ice_normal", 10, "points", Evidence.C2, "ICE score at or above: normal", ">="),
        Threshold("ice_grade1_min", 7, "points", Evidence.C2,
                  "ICE from this score up to 9 is grade 1", ">="),
        Threshold("ice_grade2_min", 3, "points", Evidence.C2,
                  "ICE from this score up to 6 is grade 2; below it grade 3", ">="),
        Threshold("capd_delirium", 9, "points", Evidence.C,
                  "CAPD at or above: grade 3 (delirium cut-point)", ">="),
        Threshold("capd_symptom_min", 1, "points", Evidence.C2,
                  "CAPD from this score up to the cut-point is grade 1 (awakens spontaneously) "
                  "or 2 (awakens to voice)", ">="),
        MONITORING_GAP,
    ),
    inputs=("ice_score", "capd_score", "unable_to_assess", "consciousness", "seizure",
            "motor_weakness", "cerebral_edema", "birth_year"),
    choices=(
        "Current grade = the latest observation of each domain on the evaluated ward day.",
        "Age = calendar year of the evaluated day minus birth year (day precision is not "
        "stored); without a birth year the recorded tool is used (ICE first).",
        "If only the other tool is recorded (ICE for a child, CAPD for an adult) it is used "
        "and the evidence says so.",
        "Consciousness 'spontaneous' is read as normal alertness (domain grade 0): grade 1 "
        "needs an ICE 7-9 or CAPD 1-8, as in the §5.3 worked example.",
        "'Unable to perform ICE' in a patient who is not unarousable = ICE 0 while awake "
        "(global aphasia) = grade 3; 'unable to perform CAPD' = grade 4 (§5.4).",
        "Seizure, motor weakness and cerebral oedema are event observations: absent unless "
        "logged that day. An ICE/CAPD result (or 'unable to assess') is required to call "
        "grade 0.",
        "With ICE < 10 or CAPD >= 1 but consciousness not logged, the grade is a lower bound "
        "(met, consciousness listed as missing).",
        "Tremor/myoclonus and intracranial haemorrhage are outside ICANS grading (§5.3) and "
        "are not inputs; grade 5 (death) is clinician-entered.",
        "After the bedside monitoring phase [DESIGN]: a 'record today's ...' prompt is "
        "dropped when that input was charted before but not in the last monitoring_gap_days "
        "(3) days; a day left without a grade and without prompts is not_evaluable with empty "
        "missing and extra outside_monitoring_window. Charting it again restores the prompt.",
        "Alarm policy [DESIGN]: warning; severe from grade 3 (escalates_at_grade).",
    ),
    description="ASTCT consensus ICANS grade 0-4 for the evaluated day.",
)

LOC_GRADE = {"spontaneous": 0, "voice": 2, "tactile": 3, "unarousable": 4}
SEIZURE_GRADE = {"none": 0, "rapidly_resolving": 3, "prolonged_or_repetitive": 4}
EDEMA_GRADE = {"none": 0, "focal": 3, "diffuse": 4}

MISSING_ICE = "record today's ICE score (or 'unable to assess')"
MISSING_CAPD = "record today's CAPD score (or 'unable to assess')"
MISSING_LOC = "log today's level of consciousness"
MISSING_AGE = "record the patient's birth year (ICE from age 12, CAPD under 12)"

SCORES = ("ice_score", "capd_score", "unable_to_assess")
PROMPTS = {  # each prompt and the observation kinds that answer it (the birth year: none)
    MISSING_ICE: SCORES,
    MISSING_CAPD: SCORES,
    MISSING_AGE: (),  # never dropped; alone, it leaves a day outside the monitoring window
    MISSING_LOC: ("consciousness",),
}


class Today(NamedTuple):
    """What the grade reads on each graded ward day: the latest observation of each domain
    charted that day (as of the day's end), and the patient's age group that year."""

    ice_score: Charted
    capd_score: Charted
    unable_to_assess: Charted
    consciousness: Charted
    seizure: Charted
    motor_weakness: Charted
    cerebral_edema: Charted
    child: np.ndarray  # 1.0: under ice_min_age_years; 0.0: not; NaN: no birth year


KINDS = Today._fields[:-1]


def is_child(ward: Ward, t: Thresholds) -> np.ndarray:
    """Per grid row: 1.0 if the patient is under ice_min_age_years in the calendar year of the
    row's day (year minus birth year), 0.0 if not, NaN without a birth year."""
    key, day = ward.days["key"], ward.days["day"]
    infused = np.array([p.infusion_date for p in ward.patients], dtype="datetime64[D]")
    born = np.array([p.birth_year for p in ward.patients], dtype=float)[key]  # None: NaN
    on = infused[key] + day.astype("timedelta64[D]")
    year = on.astype("datetime64[Y]").astype(np.int64) + 1970
    return np.where(np.isnan(born), np.nan, (year - born < t["ice_min_age_years"]) * 1.0)


class Encephalopathy(NamedTuple):
    """The ICE (or CAPD) domain: its grade (NaN: no score today), the tool, what decides."""

    grade: np.ndarray
    capd: np.ndarray  # the tool is CAPD (else ICE)
    by: np.ndarray  # the observation deciding it (NONE: none)
    score: np.ndarray  # the ICE or CAPD score used (a missing number counts 0)
    needs_consciousness: np.ndarray  # a score of grade 1 or more (CAPD: below the cut-point)


def encephalopathy(x: Today, t: Thresholds) -> Encephalopathy:
    """§5.2-5.4: ICE 7-9 grade 1, 3-6 grade 2, 0-2 grade 3; CAPD 1-8 grade 1 (or 2 by the
    level of consciousness), >= 9 grade 3; unable to perform ICE while awake grade 3, unable
    to perform CAPD grade 4. CAPD under 12, ICE from 12; the other tool when only it is
    recorded (ICE first without a birth year)."""
    child = x.child == 1
    ice, capd = x.ice_score.today, x.capd_score.today
    use_capd = (child & (capd | ~ice)) | (~child & ~ice & capd)
    unable = x.unable_to_assess.yes
    by_capd = ~unable & use_capd & capd
    by_ice = ~unable & ~by_capd & ice
    c, i = np.nan_to_num(x.capd_score.num), np.nan_to_num(x.ice_score.num)
    grade = np.select(
        [unable & use_capd, unable,
         by_capd & (c >= t["capd_delirium"]), by_capd & (c >= t["capd_symptom_min"]), by_capd,
         by_ice & (i >= t["ice_normal"]), by_ice & (i >= t["ice_grade1_min"]),
         by_ice & (i >= t["ice_grade2_min"]), by_ice],
        [4, 3, 3, 1, 0, 0, 1, 2, 3], np.nan)
    return Encephalopathy(
        grade, use_capd,
        np.select([unable, by_capd, by_ice],
                  [x.unable_to_assess.pos, x.capd_score.pos, x.ice_score.pos], NONE),
        np.where(by_capd, c, i),
        np.where(by_capd, grade == 1, by_ice & (grade >= 1)))


def _graded(text: np.ndarray, table: Mapping[str, int]) -> np.ndarray:
    """The grade of each text in `table` (NaN: not in it)."""
    return np.array([table.get(t, np.nan) for t in text], dtype=float)


def icans_grade(x: Today, t: Thresholds) -> dict[str, np.ndarray]:
    """§5.3: the most severe of the ICE/CAPD domain, depressed level of consciousness,
    seizure, motor findings and raised intracranial pressure / cerebral oedema. Without an
    ICE/CAPD result only another domain of grade >= 1 grades (a lower bound); NaN: not
    evaluable. Also what is missing and the deciding observations."""
    enc = encephalopathy(x, t)
    loc = _graded(x.consciousness.text, LOC_GRADE)
    seizure = np.nan_to_num(_graded(x.seizure.text, SEIZURE_GRADE))
    edema = np.nan_to_num(_graded(x.cerebral_edema.text, EDEMA_GRADE))
    motor = np.where(x.motor_weakness.yes, 4.0, 0.0)
    others = np.nan_to_num(np.fmax.reduce([loc, seizure, edema, motor]))
    no_score = np.isnan(enc.grade)
    grade = np.where(no_score, np.where(others >= 1, others, np.nan),
                     np.fmax(enc.grade, others))
    return {
        "grade": grade, "capd": enc.capd, "child": x.child,
        MISSING_ICE: no_score & (x.child != 1), MISSING_CAPD: no_score & (x.child == 1),
        MISSING_AGE: np.isnan(x.child) & ~x.ice_score.today & ~x.capd_score.today,
        MISSING_LOC: enc.needs_consciousness & np.isnan(loc),
        "encephalopathy": enc.grade, "encephalopathy_by": enc.by,
        "score": enc.score,
        "consciousness": np.where(np.isnan(loc), NONE, x.consciousness.pos),
        "consciousness_grade": loc,
        "seizure": np.where(seizure > 0, x.seizure.pos, NONE), "seizure_grade": seizure,
        "cerebral_edema": np.where(edema > 0, x.cerebral_edema.pos, NONE),
        "cerebral_edema_grade": edema,
        "motor_weakness": np.where(motor > 0, x.motor_weakness.pos, NONE),
    }


def judge(ward: Ward, t: Thresholds) -> Columns:
    """The ICANS grade of every course-day of the ward, as of each day's end."""
    charted = charted_today(ward, KINDS)
    found = icans_grade(Today._make([*(charted[kind] for kind in KINDS), is_child(ward, t)]), t)
    found["status"] = graded_status(found["grade"])
    return found | dropped(ward, charted, PROMPTS, t)


def _encephalopathy_why(row: Mapping[str, Any], by: EvidenceItem, t: Thresholds) -> str:
    """Why the observation `by` (unable to assess, the CAPD or the ICE score) gives the
    ICE/CAPD domain its grade."""
    g, s = row["encephalopathy"], row["score"]
    if by.analyte == "unable_to_assess":
        return ("unable to perform CAPD: grade 4" if row["capd"]
                else "unable to perform ICE while not unarousable (ICE 0): grade 3")
    if by.analyte == "capd_score":
        delirium = t["capd_delirium"]
        why = (f"CAPD {s:g} >= {delirium:g}: grade 3" if g == 3 else
               f"CAPD {s:g} (< {delirium:g}): grade 1 or more" if g == 1 else
               f"CAPD {s:g}: no delirium symptoms")
        return why + (" (CAPD used: no ICE recorded for a patient aged 12 or over)"
                      if row["child"] == 0 else "")
    g1, g2 = t["ice_grade1_min"], t["ice_grade2_min"]
    why = (f"ICE {s:g}/10: normal" if g == 0 else
           f"ICE {s:g} ({g1:g}-9): grade 1" if g == 1 else
           f"ICE {s:g} ({g2:g}-{g1 - 1:g}): grade 2" if g == 2 else
           f"ICE {s:g} (<= {g2 - 1:g}): grade 3")
    return why + (" (ICE used: no CAPD recorded for a child under 12)"
                  if row["child"] == 1 else "")


def _domain_why(by: EvidenceItem, grade: float) -> str:
    """Why the text observation `by` (consciousness, seizure, cerebral oedema) gives its
    domain `grade`."""
    text, g = str(by.value), int(grade)
    if by.analyte == "consciousness":
        if not g:
            return "awake, alert"
        return f"awakens {'to ' if text in ('voice', 'tactile') else ''}{text}: grade {g}"
    label = "seizure" if by.analyte == "seizure" else "cerebral oedema"
    return f"{label} {text.replace('_', ' ')}: grade {g}"


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The finding of one judged row: the observations of each domain that decided, the
    tool used, and the prompts for what is missing."""
    grade = None if math.isnan(row["grade"]) else int(row["grade"])
    ev: list[EvidenceItem] = []
    if row["encephalopathy_by"] != NONE:
        by = ward.observation_evidence(row["encephalopathy_by"], "")
        by.why = _encephalopathy_why(row, by, t)
        ev.append(by)
    for domain in ("consciousness", "seizure", "cerebral_edema"):
        if row[domain] != NONE:
            by = ward.observation_evidence(row[domain], "")
            by.why = _domain_why(by, row[f"{domain}_grade"])
            ev.append(by)
    if row["motor_weakness"] != NONE:
        ev.append(ward.observation_evidence(row["motor_weakness"],
                                            "deep focal motor weakness: grade 4"))
    missing, outside = prompts_shown(row, PROMPTS, graded=grade is not None)
    extra = {"tool": "CAPD" if row["capd"] else "ICE", **outside}
    return Finding(rule=RULE.id, status=Status(row["status"]), grade=grade, evidence=ev,
                   missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, judge=judge, explain=explain),)

"""CARTOX HLH/MAS (Neelapu 2018, criteria.md §2): peak ferritin in days 0-5 plus organ items.

On each course-day, as of the day's end: entry = the peak ferritin of days 0-5 above 10,000;
then 2 of 4 items, each from the worst value since day 0: liver (CTCAE grade >= 3 of
bilirubin, AST or ALT, counted once), kidney (creatinine grade >= 3 or oliguria grade >= 3),
lung (pulmonary oedema grade >= 3) and haemophagocytosis. The grades are
core.rules.ctcae's, with the thresholds of the ctcae_<analyte> rules in force.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Inputs,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.rules.ctcae.rules import graded_values
from core.rules.frames import Columns, Ward
from core.rules.hlh.criteria import C2, U, all_of, any_of, n_of, status, statuses, tri
from core.rules.series import Series, first_max, take
from core.rules.tables import NONE

CARTOX = Rule(
    id="cartox_hlh",
    title="CAR-T HLH/MAS (CARTOX, Neelapu 2018)",
    version="1.0",
    citation=Citation(
        source="Neelapu et al., Nat Rev Clin Oncol 2018;15(1):47-62 (CARTOX); organ-level "
               "summary via MGH White Book",
        section="HLH/MAS diagnostic box; criteria.md §2",
        doi="10.1038/nrclinonc.2017.148",
    ),
    evidence=U,
    severity=Severity.SEVERE,
    short_name="HLH/MAS", syndrome="met",
    thresholds=(
        Threshold("entry_ferritin", 10_000, "ng/mL", C2,
                  "entry: peak ferritin during the CRS phase above", ">"),
        Threshold("entry_window_end_day", 5, "day", C2,
                  "CRS phase for the entry criterion: days 0 to this day", "<="),
        Threshold("organ_grade_min", 3, "grade", C2,
                  "organ items: CTCAE grade at or above", ">="),
        Threshold("items_required", 2, "count", C2, "items needed of the 4", ">="),
    ),
    inputs=("ferritin", "bilirubin", "ast", "alt", "creatinine", "oliguria", "pulmonary_edema",
            "hemophagocytosis"),
    choices=(
        "Organ sub-items as recalled (§2, [UNCONFIRMED] wording): liver = bilirubin/AST/ALT "
        "(counts once); kidney = creatinine or oliguria; lung = pulmonary oedema grade; "
        "haemophagocytosis.",
        "Organ grades are the worst CTCAE v5 grade (core.rules.ctcae.ctcae_grades) of any value "
        "from day 0 on, with the §0.2 baseline; oliguria and pulmonary oedema are the worst "
        "clinician-entered CTCAE grade since day 0.",
        "Kidney item is not met when creatinine is below grade 3 and no oliguria grade >= 3 "
        "is logged (oliguria is an event observation), as in the §2 worked example.",
        "Entry met but items incomplete -> not evaluable ('possible, incomplete'); not met only "
        "when the missing items could no longer reach 2.",
    ),
    description="Peak ferritin > 10,000 ng/mL in days 0-5 plus >= 2 of 4 organ items.",
)


LIVER = ("bilirubin", "ast", "alt")
GRADED = (*LIVER, "creatinine")
ITEMS = ("liver", "kidney", "lung", "hemophagocytosis")
# the CTCAE rules whose thresholds in force grade the organ items
THRESHOLDS_OF = tuple(f"ctcae_{a}" for a in GRADED)
MISSING = {
    "liver": "log bilirubin, AST and ALT",
    "kidney": "log creatinine (or an oliguria grade)",
    "lung": "record the pulmonary oedema grade (0 if none)",
    "hemophagocytosis": "record the marrow/tissue haemophagocytosis result, if a biopsy was "
                        "done",
}


def judge(ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """Per grid row: entry and the four items (1 met, 0 not met, NaN not evaluable), the
    status, the grade of each worst value (`grade_<analyte or kind>`) and the positions
    (`at_<input>`, in ward.labs / ward.observations) of the values that decide them."""
    # the values that decide, from day 0 on: the peak ferritin of days 0-5, each analyte's
    # worst-graded value, the worst oliguria and oedema grades, haemophagocytosis
    ferritin = Series.lab(ward, "ferritin")
    cap = t["entry_window_end_day"] + 1.0 - 1e-6  # the end of day 5
    peak = first_max(ferritin.value, ferritin.first_from(0.0),
                     ferritin.latest(np.minimum(ward.days["until"], cap)))
    worst_lab = {a: worst_grade(ward, a, inputs.thresholds[f"ctcae_{a}"]) for a in GRADED}
    obs = {k: Series.observation(ward, k) for k in ("oliguria", "pulmonary_edema",
                                                    "hemophagocytosis")}
    worst = {k: first_max(obs[k].value, obs[k].first_from(0.0), obs[k].latest())
             for k in ("oliguria", "pulmonary_edema")}
    hemo = first_yes_else_latest(obs["hemophagocytosis"])
    grade = {**{a: g for a, (_, g) in worst_lab.items()},
             **{k: obs[k].values(worst[k]) for k in worst}}

    def organ(g: np.ndarray) -> np.ndarray:
        """An organ item: met at a grade >= organ_grade_min."""
        return tri(~np.isnan(g), g >= t["organ_grade_min"])

    entry = tri(peak != NONE, ferritin.values(peak) > t["entry_ferritin"])
    items = {
        "liver": any_of(*(organ(grade[a]) for a in LIVER)),  # counts once
        "kidney": any_of(organ(grade["creatinine"]), organ(grade["oliguria"])),
        "lung": organ(grade["pulmonary_edema"]),
        "hemophagocytosis": tri(hemo != NONE, obs["hemophagocytosis"].values(hemo) >= 1),
    }
    met = all_of(entry, n_of(t["items_required"], *items.values()))
    positions = {"ferritin": ferritin.frame_pos(peak),
                 **{a: at for a, (at, _) in worst_lab.items()},
                 **{k: obs[k].frame_pos(worst[k]) for k in worst},
                 "hemophagocytosis": obs["hemophagocytosis"].frame_pos(hemo)}
    return {"status": statuses(met), "entry": entry, **items,
                         **{f"grade_{k}": g for k, g in grade.items()},
                         **{f"at_{k}": p for k, p in positions.items()}}


def worst_grade(ward: Ward, analyte: str, tc: Thresholds) -> tuple[np.ndarray, np.ndarray]:
    """Per grid row: the position in ward.labs of the analyte's worst-graded value from day 0
    on (the first of equal grades; NONE: none gradable) and its CTCAE grade (NaN), each value
    graded against the baseline known at the row's end (a value that is the baseline itself
    against none)."""
    s = Series.lab(ward, analyte)
    gr = graded_values(s, analyte, tc, s.first_from(0.0), s.latest(), ward.baseline(analyte),
                       grades_baseline=False)
    at, grade = np.full(ward.size, NONE, dtype=np.int64), np.full(ward.size, np.nan)
    best = first_max(gr.grade, gr.first, gr.last)
    at[gr.rows], grade[gr.rows] = take(gr.pos, best, NONE), take(gr.grade, best, np.nan)
    return at, grade


def first_yes_else_latest(s: Series) -> np.ndarray:
    """Per grid row: the first 'yes' of the series from day 0 on, else its latest from
    day 0 on (NONE: none)."""
    hi = s.latest()
    first = first_max((s.value >= 1).astype(float), s.first_from(0.0), hi)  # NONE: no row
    return np.where(s.values(first) >= 1, first, np.where(first != NONE, hi, NONE))


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The row's finding: entry and items with their evidence, what to log for the ones not
    evaluable."""
    entry, verdict = status(row["entry"]), Status(row["status"])
    items = {i: status(row[i]) for i in ITEMS}
    ed, g_min = t["entry_window_end_day"], t["organ_grade_min"]
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    if entry is Status.NOT_EVALUABLE:
        missing.append(f"log ferritin during days 0-{ed:g}")
    else:
        ev.append(ward.lab_evidence(int(row["at_ferritin"]), (
            f"peak ferritin days 0-{ed:g} {'>' if entry is Status.MET else '<='} "
            f"{t['entry_ferritin']:g}")))

    def grade(a: str) -> int | None:
        g = row[f"grade_{a}"]
        return None if g != g else int(g)

    for a in LIVER:  # the liver tests that qualify
        g = grade(a)
        if g is not None and g >= g_min:
            ev.append(ward.lab_evidence(int(row[f"at_{a}"]), f"CTCAE grade {g} (>= {g_min:g})"))
    g = grade("creatinine")
    if g is not None:
        ev.append(ward.lab_evidence(int(row["at_creatinine"]), f"creatinine CTCAE grade {g}"))
    for kind, what in (("oliguria", "oliguria"), ("pulmonary_edema", "pulmonary oedema")):
        if row[f"at_{kind}"] != NONE:
            ev.append(ward.observation_evidence(int(row[f"at_{kind}"]),
                                                f"{what} grade {row[f'grade_{kind}']:g}"))
    if items["hemophagocytosis"] is not Status.NOT_EVALUABLE:
        ev.append(ward.observation_evidence(int(row["at_hemophagocytosis"]), (
            "haemophagocytosis reported" if items["hemophagocytosis"] is Status.MET
            else "no haemophagocytosis")))
    missing += [MISSING[i] for i, s in items.items() if s is Status.NOT_EVALUABLE]
    n_met = sum(s is Status.MET for s in items.values())
    n_ne = sum(s is Status.NOT_EVALUABLE for s in items.values())
    extra: dict[str, Any] = {
        "entry": str(entry), "items": {i: str(s) for i, s in items.items()},
        "items_met": n_met, "items_not_evaluable": n_ne,
    }
    if verdict is Status.NOT_EVALUABLE and entry is Status.MET:
        extra["summary"] = "possible, incomplete"
    return Finding(CARTOX.id, verdict, evidence=ev, missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(CARTOX, judge=judge, explain=explain, thresholds_of=THRESHOLDS_OF),)

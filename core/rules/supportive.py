"""IEC-HS supportive-care thresholds (ASTCT 2023 consensus Table 4, criteria.md §1.3 [C]).

Runs only for a patient with an active IEC-HS episode (documented and unresolved) or a met
iec_hs screen; for everyone else it is not met and says why.
"""

from __future__ import annotations

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
)
from core.rules.reading import end_of_day, latest_observation, latest_until
from core.rules.stretches import DailyRule
from core.vocabulary.course import Course
from core.vocabulary.units import Evidence

C = Evidence.C

RULE = Rule(
    id="supportive_thresholds",
    title="IEC-HS supportive-care thresholds (Hb, platelets, fibrinogen, INR)",
    version="1.1",
    citation=Citation(
        source="Hines et al., Transplant Cell Ther 2023;29(7):438.e1 (ASTCT IEC-HS consensus)",
        section="Table 4 (supportive care); criteria.md §1.3, §12.1",
        doi="10.1016/j.jtct.2023.03.006",
    ),
    evidence=C,
    severity=Severity.WARNING,
    short_name="Supportive-care thresholds", syndrome="listed",
    thresholds=(
        Threshold("hemoglobin_min", 7.0, "g/dL", C, "keep haemoglobin at or above", "<"),
        Threshold("platelets_min_bleeding", 50, "10^9/L", C,
                  "keep platelets at or above when bleeding or coagulopathic", "<"),
        Threshold("fibrinogen_min", 100, "mg/dL", C, "keep fibrinogen above (no bleeding)",
                  "<="),
        Threshold("fibrinogen_min_bleeding", 150, "mg/dL", C,
                  "keep fibrinogen above (bleeding)", "<="),
        Threshold("inr_vitamin_k", 1.5, "ratio", C, "INR above: consider vitamin K", ">"),
        Threshold("inr_ffp", 2.0, "ratio", C,
                  "INR above: consider FFP in addition to cryoprecipitate", ">"),
    ),
    inputs=("hemoglobin", "platelets", "fibrinogen", "INR", "bleeding",
            "IEC-HS episode or iec_hs screen"),
    choices=(
        "Applies while a documented IEC-HS episode is open or the iec_hs screen is met.",
        "Latest value of each lab as of the evaluated day.",
        "Bleeding is an event observation: assumed absent unless the latest bleeding record "
        "says yes. 'Coagulopathy' for the platelet limit = fibrinogen below the bleeding "
        "fibrinogen limit (150 mg/dL).",
        "Fibrinogen flags when not above the limit ('keep > 100 / > 150 mg/dL').",
        "INR flags when above 1.5 (consider vitamin K) and, above 2.0, says to consider FFP "
        "in addition to cryoprecipitate; 1.5 and 2.0 themselves do not flag ('> 1.5', '> 2').",
        "INR is optional: it is not a daily lab here (lab_overdue does not expect it), so a "
        "missing INR does not make the rule not evaluable; extra['inr'] says 'not measured'.",
        "G-CSF to keep ANC >= 500/mm3 is controversial (§1.3): shown as context, never flagged.",
    ),
    description="Flags labs below the consensus supportive-care targets during IEC-HS; "
                "screening flag for clinician review, never an order.",
)

MISSING = {
    "hemoglobin": "log haemoglobin",
    "platelets": "log a platelet count",
    "fibrinogen": "log fibrinogen",
}


def _active(course: Course, day: int) -> tuple[bool, str]:
    from core.rules.therapy_response import active_iec_hs_onset

    onset, source = active_iec_hs_onset(course, day)
    return onset is not None, f"{source} since day {int(onset)}" if onset is not None else ""


def _day(course: Course, day: int, t: Thresholds) -> Finding:
    active, why = _active(course, day)
    if not active:
        return Finding(RULE.id, Status.NOT_MET, evidence=[EvidenceItem(
            why="no active IEC-HS (documented episode or met screen): thresholds not applied")])
    end = min(end_of_day(day), course.as_of_day)
    ev = [EvidenceItem(why=why)]
    flags, missing = [], []
    bleed = latest_observation(course, "bleeding", end)
    bleeding = bleed is not None and bleed.is_yes
    if bleed is not None:
        ev.append(bleed.evidence("active bleeding" if bleeding else "no active bleeding"))
    hb = latest_until(course, "hemoglobin", end)
    if hb is None:
        missing.append(MISSING["hemoglobin"])
    elif hb.value < t["hemoglobin_min"]:
        flags.append("hemoglobin")
        ev.append(hb.evidence(f"< {t['hemoglobin_min']:g} g/dL (keep >= "
                              f"{t['hemoglobin_min']:g})"))
    fib = latest_until(course, "fibrinogen", end)
    coag = fib is not None and fib.value < t["fibrinogen_min_bleeding"]
    if fib is None:
        missing.append(MISSING["fibrinogen"])
    else:
        lim = t["fibrinogen_min_bleeding"] if bleeding else t["fibrinogen_min"]
        if fib.value <= lim:
            flags.append("fibrinogen")
            ev.append(fib.evidence(f"<= {lim:g} mg/dL (keep > {lim:g}"
                                   f"{' while bleeding' if bleeding else ''})"))
    plt = latest_until(course, "platelets", end)
    if plt is None:
        missing.append(MISSING["platelets"])
    elif (bleeding or coag) and plt.value < t["platelets_min_bleeding"]:
        flags.append("platelets")
        ev.append(plt.evidence(f"< {t['platelets_min_bleeding']:g} x 10^9/L with "
                               f"{'bleeding' if bleeding else 'coagulopathy'}"))
    extra: dict = {"flags": flags}
    inr = latest_until(course, "inr", end)
    if inr is None:
        extra["inr"] = "not measured"
    elif inr.value > t["inr_ffp"]:
        flags.append("inr")
        extra["inr"] = "ffp"
        ev.append(inr.evidence(f"> {t['inr_ffp']:g}: consider FFP in addition to "
                               f"cryoprecipitate (and vitamin K, > {t['inr_vitamin_k']:g})"))
    elif inr.value > t["inr_vitamin_k"]:
        flags.append("inr")
        extra["inr"] = "vitamin_k"
        ev.append(inr.evidence(f"> {t['inr_vitamin_k']:g}: consider vitamin K"))
    else:
        extra["inr"] = "within target"
    extra["context"] = ("G-CSF to keep ANC >= 500/mm3 is controversial during active "
                        "inflammation (consensus Table 4)")
    if flags:
        status = Status.MET
    elif missing:
        status = Status.NOT_EVALUABLE
    else:
        status = Status.NOT_MET
    return Finding(RULE.id, status, evidence=ev, missing=missing, extra=extra)


# The replay cuts each day at its end (cut_days): the IEC-HS screen read here reads baselines.
SUPPORTIVE = DailyRule(RULE, _day)
evaluate = SUPPORTIVE.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (SUPPORTIVE.spec(),)

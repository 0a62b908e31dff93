"""IEC-HS supportive-care thresholds (ASTCT 2023 consensus Table 4, criteria.md §1.3 [C]).

Runs only for a patient with an active IEC-HS episode (documented and unresolved) or a met
iec_hs screen; for everyone else it is not met and says why.
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
from core.rules.frames import Columns, Ward
from core.rules.tables import NONE
from core.rules.therapy_response import active_iec_hs
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


def judge(ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """Per course-day: whether IEC-HS is active (therapy_response.active_iec_hs) and the
    latest bleeding record and Hb, fibrinogen, platelets and INR known then (positions in
    ward.observations / ward.labs); the status is decided with the flags in `explain`."""
    onset, source = active_iec_hs(ward, inputs.frames["iec_hs"])
    end = ward.days["until"]
    out: dict[str, Any] = {"onset": onset, "source": source,
                           "bleeding": ward.latest_observation("bleeding", end)}
    for analyte in ("hemoglobin", "fibrinogen", "platelets", "inr"):
        out[analyte] = ward.latest(analyte, end)
    status = np.full(ward.size, Status.NOT_MET.value, dtype=object)
    active = ~np.isnan(onset)
    for i in np.flatnonzero(active):  # the flags are explain's: one reading of Table 4
        status[i] = explain(ward, {k: v[i] for k, v in out.items()}, t).status.value
    out["status"] = status
    return out


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """Table 4 over one course-day: its flags, evidence, missing inputs and extra."""
    if row["onset"] != row["onset"]:
        return Finding(RULE.id, Status.NOT_MET, evidence=[EvidenceItem(
            why="no active IEC-HS (documented episode or met screen): thresholds not applied")])
    ev = [EvidenceItem(why=f"{row['source']} since day {int(row['onset'])}")]
    flags: list[str] = []
    missing: list[str] = []
    values = ward.labs["value"]
    b = int(row["bleeding"])
    bleeding = False
    if b != NONE:
        said = ward.observations["value_num"][b]  # an event: yes (>= 1) or no
        bleeding = bool(said >= 1)  # NaN (no number): no
        ev.append(ward.observation_evidence(b, "active bleeding" if bleeding
                                            else "no active bleeding"))
    hb = int(row["hemoglobin"])
    if hb == NONE:
        missing.append(MISSING["hemoglobin"])
    elif values[hb] < t["hemoglobin_min"]:
        flags.append("hemoglobin")
        ev.append(ward.lab_evidence(hb, f"< {t['hemoglobin_min']:g} g/dL (keep >= "
                                        f"{t['hemoglobin_min']:g})"))
    fib = int(row["fibrinogen"])
    coag = fib != NONE and values[fib] < t["fibrinogen_min_bleeding"]
    if fib == NONE:
        missing.append(MISSING["fibrinogen"])
    else:
        lim = t["fibrinogen_min_bleeding"] if bleeding else t["fibrinogen_min"]
        if values[fib] <= lim:
            flags.append("fibrinogen")
            ev.append(ward.lab_evidence(fib, f"<= {lim:g} mg/dL (keep > {lim:g}"
                                             f"{' while bleeding' if bleeding else ''})"))
    plt = int(row["platelets"])
    if plt == NONE:
        missing.append(MISSING["platelets"])
    elif (bleeding or coag) and values[plt] < t["platelets_min_bleeding"]:
        flags.append("platelets")
        ev.append(ward.lab_evidence(plt, f"< {t['platelets_min_bleeding']:g} x 10^9/L with "
                                         f"{'bleeding' if bleeding else 'coagulopathy'}"))
    extra: dict[str, Any] = {"flags": flags}
    inr = int(row["inr"])
    if inr == NONE:
        extra["inr"] = "not measured"
    elif values[inr] > t["inr_ffp"]:
        flags.append("inr")
        extra["inr"] = "ffp"
        ev.append(ward.lab_evidence(inr, f"> {t['inr_ffp']:g}: consider FFP in addition to "
                                         f"cryoprecipitate (and vitamin K, > "
                                         f"{t['inr_vitamin_k']:g})"))
    elif values[inr] > t["inr_vitamin_k"]:
        flags.append("inr")
        extra["inr"] = "vitamin_k"
        ev.append(ward.lab_evidence(inr, f"> {t['inr_vitamin_k']:g}: consider vitamin K"))
    else:
        extra["inr"] = "within target"
    extra["context"] = ("G-CSF to keep ANC >= 500/mm3 is controversial during active "
                        "inflammation (consensus Table 4)")
    status = (Status.MET if flags else Status.NOT_EVALUABLE if missing
              else Status.NOT_MET)
    return Finding(RULE.id, status, evidence=ev, missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (RuleSpec(RULE, judge=judge, explain=explain, reads=("iec_hs",)),)

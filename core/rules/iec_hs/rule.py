"""The IEC-HS screen's declaration: thresholds, choices, missing-input prompts and the
consensus treatment tiers shown as context (criteria.md §1.2, §1.5, §1.6, §10.3, §11)."""

from __future__ import annotations

from core.rules.base import Citation, Rule, Severity, Threshold
from core.vocabulary.units import Evidence

U = Evidence.UNCONFIRMED
D = Evidence.DESIGN

RULE = Rule(
    id="iec_hs",
    title="IEC-HS screen (ASTCT 2023) with ferritin kinetics and timing vs CRS",
    version="1.0",
    citation=Citation(
        source="Hines et al., Transplant Cell Ther 2023;29(7):438.e1-438.e16 (ASTCT IEC-HS "
               "consensus)",
        section="diagnostic framework (table not verified); criteria.md §1.2, §1.6, §10.3, §11",
        doi="10.1016/j.jtct.2023.03.006",
    ),
    evidence=U,
    severity=Severity.SEVERE,
    short_name="IEC-HS screen", syndrome="met", episode_kind="IEC-HS",
    thresholds=(
        Threshold("ferritin_x_uln", 2.0, "x ULN", U, "key feature: ferritin above this x ULN",
                  ">"),
        Threshold("ferritin_x_baseline", 2.0, "x baseline", U,
                  "key feature: or above this x the baseline at infusion. The consensus is "
                  "quoted two ways (criteria §1.2): '> 2 x baseline' (default, the stricter "
                  "reading) and '> baseline' (NCCN CART-2); a site that follows the second "
                  "sets [thresholds.iec_hs] ferritin_x_baseline = 1", ">"),
        Threshold("transaminase_x_uln", 5.0, "x ULN", U,
                  "AST or ALT above this x ULN (baseline normal)", ">"),
        Threshold("transaminase_x_baseline", 5.0, "x baseline", U,
                  "AST or ALT above this x baseline (baseline abnormal)", ">"),
        Threshold("fibrinogen_low", 150.0, "mg/dL", U, "fibrinogen below this (or below LLN)",
                  "<"),
        Threshold("cytopenia_reference_day", 7, "day", D,
                  "new cytopenia is judged against the best count from this day on (the "
                  "post-lymphodepletion nadir before it is expected, not new)", ">="),
        Threshold("cytopenia_grade_drop", 2, "grade", D,
                  "new or worsening cytopenia: CTCAE grade at least this many grades worse "
                  "than the best grade since the reference day", ">="),
        Threshold("cytopenia_lookback_days", 7, "days", D,
                  "the best count is taken over the values of this many days before the "
                  "latest one (an acute fall, not a slow drift)", "<="),
        Threshold("cytopenia_min_grade", 3, "grade", D,
                  "and the latest count at least this CTCAE grade (ANC < 1.0, platelets < 50, "
                  "Hb < 8.0: the prolonged_cytopenia depth, §6.2)", ">="),
        Threshold("window_start_day", 5, "day", D, "screen from this day after infusion", ">="),
        Threshold("window_end_day", 30, "day", D,
                  "screen until this day; later only while ferritin is above the x ULN limit",
                  "<="),
    ),
    inputs=("ferritin", "ast", "alt", "fibrinogen", "anc", "platelets", "hemoglobin",
            "CRS episodes (documented) or crs_grade observations", "hemophagocytosis"),
    choices=(
        "Ferritin key feature, two readings of the consensus (criteria §1.2): above "
        "ferritin_x_baseline x the baseline at infusion, 2 by default ('> 2 x baseline'); "
        "1 reads it as '> baseline' (NCCN CART-2). The factor in force is the site's "
        "ferritin_x_baseline in the thresholds table.",
        "Key feature uses the latest ferritin; baseline = last value on or before the "
        "lymphodepletion start day, else on or before day 0 (§0.2). 'Rapidly rising' has no "
        "published number: the ferritin_kinetics default is shown as evidence and does not "
        "decide.",
        "Timing: documented CRS episodes win; all resolved -> met; one still open -> met only "
        "if the computed CRS grade today is below the worst computed grade of that episode "
        "on earlier days (resolving; the documented grade is the episode's final grade and "
        "is not used, so a CRS that is still rising is never 'resolving'). Without documented "
        "episodes the daily crs_grade course decides the same way; an ongoing CRS that is not "
        "improving -> not met. No CRS so far (every evaluable day grade 0) -> met, since "
        "IEC-HS is often not tied to CRS (§1.1).",
        "Transaminases: AST or ALT > 5 x ULN when the baseline is normal or unknown, "
        "> 5 x baseline when the baseline is above ULN.",
        "Fibrinogen: below 150 mg/dL OR below the lab's LLN, as §1.2 reads (with an LLN of "
        "200 mg/dL the LLN limit decides).",
        "New cytopenia [DESIGN]: for ANC, platelets or haemoglobin, the latest value's CTCAE "
        "grade is >= cytopenia_min_grade (3: ANC < 1.0, platelets < 50, Hb < 8.0) and at least "
        "cytopenia_grade_drop (2) grades worse than the best (lowest) grade of the earlier "
        "values within cytopenia_lookback_days (7) before it, counting only values from "
        "cytopenia_reference_day (7) on. Two grades, because a one-grade step is mostly a "
        "count drifting across one cut (Hb 10.0 -> 9.8, ANC 0.6 -> 0.4 in a prolonged "
        "nadir); grade 3, because with an LLN of 1.5 the ANC grade 1 band is empty (1.50 -> "
        "1.48 is grade 0 -> 2); 7 days, because IEC-HS cytopenia is an acute fall, not the "
        "slow drift of late ICAHT. Before a reference value exists the lineage is not met: "
        "the post-lymphodepletion nadir (days 0-7) is expected and cannot be told apart from "
        "a new cytopenia. A refractory cytopenia that never recovered is not counted.",
        "Screen window days 5-30 (§10.3 [DESIGN]); after day 30 only while ferritin stays "
        "> 2 x ULN. Outside it the screen is not met and says so.",
        "Haemophagocytosis is listed as evidence when recorded, else as a missing input; the "
        "IEC-HS grade (§1.4) needs clinical inputs and is never computed.",
    ),
    description="Screening flag for IEC-HS; the consensus treatment tiers (§1.5) are shown as "
                "context, never as an order.",
)

TREATMENT_TIERS = (
    "First line: anakinra, with or without corticosteroids (e.g. dexamethasone); stop or "
    "avoid further tocilizumab as IEC-HS-directed therapy.",
    "Inadequate response (re-assessment window ~48 h): escalate anakinra and/or "
    "corticosteroids; add ruxolitinib or emapalumab.",
    "Refractory: low-dose etoposide; other salvage (e.g. intensified HLH-type therapy).",
)
TREATMENT_CONTEXT = {
    "treatment_tiers": list(TREATMENT_TIERS),
    "treatment_tiers_evidence": "UNCONFIRMED",
    "treatment_tiers_note": "ASTCT 2023 consensus algorithm as recalled (criteria §1.5): "
                            "context for clinicians, never an order; no doses given.",
}

MISSING = {
    "ferritin": "log a ferritin result",
    "ferritin_baseline": "log a baseline ferritin (before lymphodepletion or on day 0)",
    "crs": "document the CRS episode (onset and resolution) or log daily vitals for CRS "
           "grading",
    "ast_alt": "log AST and ALT",
    "fibrinogen": "log a fibrinogen result",
    "counts": "log a blood count (ANC, platelets, haemoglobin)",
    "hemophagocytosis": "record the marrow/tissue haemophagocytosis result, if a biopsy was "
                        "done",
}
CYTOPENIA_LINEAGES = ("anc", "platelets", "hemoglobin")
# the screen's features, in the order the finding lists them
KEY_FEATURES = ("ferritin", "timing")
LAB_FEATURES = ("transaminase", "fibrinogen", "cytopenia")

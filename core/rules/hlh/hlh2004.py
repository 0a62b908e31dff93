"""HLH-2004 diagnostic criteria (criteria.md §3): n of 8 met and n evaluable.

On each course-day, as of the day's end, each of the 8 criteria of criterion B is met, not met
or not evaluable from the latest value of its input (fever: the highest temperature of the
day of the latest one, up to it); the rule is met at 5 of 8, not met only when even the not
evaluable criteria could not make 5, else indeterminate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
)
from core.rules.frames import Columns, Ward
from core.rules.hlh.criteria import C2, n_of, status, statuses, tri
from core.rules.series import Series, first_max
from core.rules.tables import NONE

HLH2004 = Rule(
    id="hlh_2004",
    title="HLH-2004 diagnostic criteria (5 of 8)",
    version="1.0",
    citation=Citation(
        source="Henter et al., Pediatr Blood Cancer 2007;48(2):124-131 (HLH-2004); "
               "reproduced in Blood 2011;118(15):4041 Table 1",
        section="diagnostic criteria, criterion B; criteria.md §3",
        doi="10.1002/pbc.21039",
    ),
    evidence=C2,
    severity=Severity.INFO,
    short_name="HLH-2004", syndrome="listed",
    thresholds=(
        Threshold("fever_c", 38.5, "°C", C2, "fever at or above", ">="),
        Threshold("hemoglobin", 9.0, "g/dL", C2, "cytopenia: haemoglobin below", "<"),
        Threshold("platelets", 100, "10^9/L", C2, "cytopenia: platelets below", "<"),
        Threshold("anc", 1.0, "10^9/L", C2, "cytopenia: neutrophils below", "<"),
        Threshold("cytopenia_lineages", 2, "count", C2, "lineages affected at or above", ">="),
        Threshold("triglycerides", 265, "mg/dL", C2,
                  "fasting triglycerides at or above (3.0 mmol/L)", ">="),
        Threshold("fibrinogen", 150, "mg/dL", C2, "fibrinogen at or below (1.5 g/L)", "<="),
        Threshold("ferritin", 500, "ng/mL", C2, "ferritin at or above", ">="),
        Threshold("scd25", 2400, "U/mL", C2, "soluble CD25 at or above", ">="),
        Threshold("criteria_required", 5, "count", C2, "criteria met of 8", ">="),
    ),
    inputs=("temperature", "organomegaly", "hemoglobin", "platelets", "anc", "triglycerides",
            "fibrinogen", "hemophagocytosis", "nk_activity", "ferritin", "scd25", "fasting"),
    choices=(
        "Each criterion uses the latest value as of the evaluated day; fever uses the highest "
        "temperature of the latest day with a temperature logged.",
        "Original inclusive limits (>= 3.0 mmol/L, <= 1.5 g/L) are used, as §3 asks.",
        "Triglycerides count whatever the fasting status; the evidence says when fasting was "
        "not recorded.",
        "The infant haemoglobin limit (< 10 g/dL under 4 weeks) is not applied: only the birth "
        "year is stored and CAR-T recipients are not neonates.",
        "Molecular diagnosis (criterion A) is not an input.",
        "Met at >= 5 met; not met only when met + not-evaluable < 5; otherwise not evaluable "
        "('indeterminate'), with n met and n evaluable in the extra fields.",
        "Shown as context only: HLH-2004 over-calls after CAR-T (§3 caveat).",
    ),
    description="HLH-2004 criterion B: n of 8 met and n evaluable.",
)

CRITERIA = ("fever", "splenomegaly", "cytopenias", "triglycerides_fibrinogen",
            "hemophagocytosis", "nk_activity", "ferritin", "scd25")
LABS = ("hemoglobin", "platelets", "anc", "triglycerides", "fibrinogen", "ferritin", "scd25")
# what to log when a criterion is not evaluable
MISSING = {
    "fever": "log temperature",
    "splenomegaly": "record spleen size (organomegaly exam/imaging)",
    "cytopenias": "log a blood count (Hb, platelets, ANC)",
    "triglycerides_fibrinogen": "log fasting triglycerides and fibrinogen",
    "hemophagocytosis": "record the marrow/tissue haemophagocytosis result, if a biopsy was "
                        "done",
    "nk_activity": "enter the NK-cell activity result, if sent",
    "ferritin": "log ferritin",
    "scd25": "enter the soluble CD25 result, if sent",
}


# how each lab test compares its value with its threshold, as the threshold declares (`op`),
# and the comparison an explanation shows when it fails
OPS = {x.key: x.op for x in HLH2004.thresholds}
PASSES = {"<": np.less, "<=": np.less_equal, ">=": np.greater_equal}
FAILS = {"<": ">=", "<=": ">", ">=": "<"}


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per grid row: each criterion and lab test (1 met, 0 not met, NaN not evaluable), the
    status, and the positions (`at_<input>`, in ward.labs / ward.observations) of the values
    that decide them."""
    temps = Series.observation(ward, "temperature")
    obs = {k: Series.observation(ward, k)
           for k in ("organomegaly", "hemophagocytosis", "nk_activity", "fasting")}
    labs = {a: Series.lab(ward, a) for a in LABS}
    series = {"temperature": temps, **obs, **labs}
    at = {k: s.latest() for k, s in series.items()}
    # fever: the highest temperature of the day of the latest one, up to it
    at["temperature"] = first_max(temps.value, temps.first_of_day(at["temperature"]),
                                  at["temperature"])
    text = {k: obs[k].texts(at[k]) for k in ("organomegaly", "nk_activity")}

    def given(k: str, met: np.ndarray) -> np.ndarray:
        """A test of input `k`: not evaluable where it has no value yet."""
        return tri(at[k] != NONE, met)

    # each lab's test: its latest value compared with its threshold (criteria.md §3)
    tests = {a: given(a, PASSES[OPS[a]](labs[a].values(at[a]), t[a])) for a in LABS}
    criteria = {  # criterion B, the 8 of criteria.md §3
        "fever": given("temperature", temps.values(at["temperature"]) >= t["fever_c"]),
        "splenomegaly": given("organomegaly", np.isin(text["organomegaly"],
                                                      ("splenomegaly", "both"))),
        "cytopenias": n_of(t["cytopenia_lineages"],
                           tests["hemoglobin"], tests["platelets"], tests["anc"]),
        "triglycerides_fibrinogen": n_of(1, tests["triglycerides"], tests["fibrinogen"]),
        "hemophagocytosis": given("hemophagocytosis", obs["hemophagocytosis"].values(
            at["hemophagocytosis"]) >= 1),
        "nk_activity": given("nk_activity", np.isin(text["nk_activity"], ("low", "absent"))),
        "ferritin": tests["ferritin"],
        "scd25": tests["scd25"],
    }
    met = n_of(t["criteria_required"], *criteria.values())
    return {"status": statuses(met), **criteria,
                         **{f"test_{a}": x for a, x in tests.items()},
                         **{f"at_{k}": s.frame_pos(at[k]) for k, s in series.items()}}


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The row's finding: each criterion's word and evidence, what to log for the ones not
    evaluable, n met and n evaluable."""
    crit = {c: status(row[c]) for c in CRITERIA}
    ev: list[EvidenceItem] = []

    def lab(a: str) -> None:
        """The evidence of lab test `a`, when there is a value."""
        test = row[f"test_{a}"]
        if test == test:  # not NaN: a value, met or not
            op = OPS[a]
            ev.append(ward.lab_evidence(int(row[f"at_{a}"]), f"{op if test else FAILS[op]} "
                                                              f"{t[a]:g}"))

    def obs(kind: str, criterion: str, met: str, not_met: str) -> None:
        if crit[criterion] is not Status.NOT_EVALUABLE:
            ev.append(ward.observation_evidence(
                int(row[f"at_{kind}"]), met if crit[criterion] is Status.MET else not_met))

    fever = f"{t['fever_c']:g} °C"
    obs("temperature", "fever", f"highest temperature of the day >= {fever}",
        f"highest temperature of the day < {fever}")
    obs("organomegaly", "splenomegaly", "splenomegaly", "no splenomegaly")
    for a in ("hemoglobin", "platelets", "anc", "triglycerides"):
        lab(a)
    if row["test_triglycerides"] == 1.0 and row["at_fasting"] == NONE:
        ev[-1].why += " (fasting status not recorded)"
    lab("fibrinogen")
    obs("hemophagocytosis", "hemophagocytosis", "haemophagocytosis", "no haemophagocytosis")
    if crit["nk_activity"] is not Status.NOT_EVALUABLE:
        nk = ward.observations["value_text"][int(row["at_nk_activity"])]
        nk_activity = f"NK-cell activity {None if pd.isna(nk) else nk}"
        obs("nk_activity", "nk_activity", nk_activity, nk_activity)
    lab("ferritin")
    lab("scd25")

    n_met = sum(s is Status.MET for s in crit.values())
    n_ne = sum(s is Status.NOT_EVALUABLE for s in crit.values())
    extra: dict[str, Any] = {"met_count": n_met, "evaluable": len(crit) - n_ne,
                             "criteria": {c: str(s) for c, s in crit.items()}}
    verdict = Status(row["status"])
    if verdict is Status.NOT_EVALUABLE:
        extra["summary"] = f"indeterminate ({n_met} met, {n_ne} not evaluable)"
    return Finding(HLH2004.id, verdict, evidence=ev, extra=extra,
                   missing=[MISSING[c] for c, s in crit.items() if s is Status.NOT_EVALUABLE])


RULES: tuple[RuleSpec, ...] = (RuleSpec(HLH2004, judge=judge, explain=explain),)

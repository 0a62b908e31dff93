"""HLH-2004 diagnostic criteria (criteria.md §3): n of 8 met and n evaluable."""

from __future__ import annotations

import operator
from dataclasses import replace

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
from core.rules.hlh.criteria import (
    C2,
    MET,
    NE,
    NOT_MET,
    WORD,
    Builder,
    Cells,
    DayFindings,
    Input,
    Item,
    Reader,
    daily_rule,
    day_findings,
)
from core.rules.stretches import thresholds_key
from core.vocabulary.course import Course

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

_COMPARE = {"<": (operator.lt, ">="), "<=": (operator.le, ">"), ">=": (operator.ge, "<"),
            ">": (operator.gt, "<=")}  # op: (test, the op shown when the test fails)


def _tri(found: list[Status]) -> Status:
    if MET in found:
        return MET
    return NOT_MET if found and all(s is NOT_MET for s in found) else NE


def _lab_cells(r: Reader, of: Input, analyte: str, limit: float, op: str, missing: str
               ) -> Cells[Item]:
    """For each position of `analyte`: met when `value op limit`, with the value as evidence
    (the two reasons formatted once); not evaluable with `missing` when there is no value."""
    s = r.labs.get(analyte)
    test, neg = _COMPARE[op]
    why = (f"{neg} {limit:g}", f"{op} {limit:g}")  # by whether the test is met

    def build(j: int) -> Item:
        if j < 0 or s is None:
            return Item(NE, [], missing)
        v = s.at(j)
        met = test(v.value, limit)
        return Item(MET if met else NOT_MET, [v.evidence(why[met])])

    return Cells(of, build)


def _hlh2004_findings(course: Course, t: Thresholds) -> DayFindings:
    return day_findings(course, (HLH2004.id, thresholds_key(t)),
                        lambda r: _hlh2004_builder(course, r, t))


def _hlh2004_builder(course: Course, r: Reader, t: Thresholds) -> Builder:
    """HLH-2004 from the latest value of each input (fever: the highest temperature of the
    day of the latest one).
    A criterion read from one input is built once per position of that input (`Cells`)."""
    temperature = r.obs_input("temperature")
    organomegaly, fasting = r.obs_input("organomegaly"), r.obs_input("fasting")
    hemo, nk = r.obs_input("hemophagocytosis"), r.obs_input("nk_activity")
    labs = {a: r.lab_input(a) for a in ("hemoglobin", "platelets", "anc", "triglycerides",
                                        "fibrinogen", "ferritin", "scd25")}
    inputs = [temperature, organomegaly, labs["hemoglobin"], labs["platelets"], labs["anc"],
              labs["triglycerides"], labs["fibrinogen"], fasting, hemo, nk, labs["ferritin"],
              labs["scd25"]]

    fever_why = tuple(f"highest temperature of the day {op} {t['fever_c']:g} °C"
                      for op in ("<", ">="))  # by whether it is a fever

    def fever(j: int) -> Item:
        temp = r.day_max_temperature(j)
        if temp is None or temp.num is None:
            return Item(NE, [], "log temperature")
        met = temp.num >= t["fever_c"]
        return Item(MET if met else NOT_MET, [temp.evidence(fever_why[met])])

    def splenomegaly(j: int) -> Item:
        org = r.observation("organomegaly", j)
        if org is None:
            return Item(NE, [], "record spleen size (organomegaly exam/imaging)")
        met = org.text in ("splenomegaly", "both")
        return Item(MET if met else NOT_MET, [org.evidence(
            "splenomegaly" if met else "no splenomegaly")])

    def lab_cells(a: str, op: str, missing: str) -> Cells[Item]:
        return _lab_cells(r, labs[a], a, t[a], op, missing)

    hb_low, plt_low, anc_low = (lab_cells(a, "<", "") for a in ("hemoglobin", "platelets",
                                                                  "anc"))

    def cytopenias(j_hb: int, j_plt: int, j_anc: int) -> Item:
        n_low, n_unknown, cyt_ev = 0, 0, []
        for i in (hb_low(j_hb), plt_low(j_plt), anc_low(j_anc)):
            n_low += i.status is MET
            n_unknown += i.status is NE
            cyt_ev += i.evidence
        need = t["cytopenia_lineages"]
        if n_low >= need:
            return Item(MET, cyt_ev)
        if n_low + n_unknown < need:
            return Item(NOT_MET, cyt_ev)
        return Item(NE, cyt_ev, "log a blood count (Hb, platelets, ANC)")

    tg_high, fib_low = lab_cells("triglycerides", ">=", ""), lab_cells("fibrinogen", "<=", "")

    def triglycerides_fibrinogen(j_tg: int, j_fib: int, fasting: bool) -> Item:
        tg, fib = tg_high(j_tg), fib_low(j_fib)
        tg_ev = tg.evidence
        if tg.status is MET and not fasting:  # a copy: the cell's item is shared
            tg_ev = [replace(tg_ev[0], why=tg_ev[0].why + " (fasting status not recorded)")]
        return Item(_tri([tg.status, fib.status]), tg_ev + fib.evidence,
                    "log fasting triglycerides and fibrinogen")

    def hemophagocytosis(j: int) -> Item:
        o = r.observation("hemophagocytosis", j)
        if o is None:
            return Item(NE, [], "record the marrow/tissue haemophagocytosis result, if a "
                                "biopsy was done")
        return Item(MET if o.is_yes else NOT_MET, [o.evidence(
            "haemophagocytosis" if o.is_yes else "no haemophagocytosis")])

    def nk_activity(j: int) -> Item:
        o = r.observation("nk_activity", j)
        if o is None:
            return Item(NE, [], "enter the NK-cell activity result, if sent")
        return Item(MET if o.text in ("low", "absent") else NOT_MET,
                    [o.evidence(f"NK-cell activity {o.text}")])

    cells = (Cells(temperature, fever), Cells(organomegaly, splenomegaly),
             Cells(hemo, hemophagocytosis), Cells(nk, nk_activity),
             lab_cells("ferritin", ">=", "log ferritin"),
             lab_cells("scd25", ">=", "enter the soluble CD25 result, if sent"))
    fever_at, spleen_at, hemo_at, nk_at, ferritin_at, scd25_at = cells

    def finding(j_temp: int, j_org: int, j_hb: int, j_plt: int, j_anc: int, j_tg: int,
                j_fib: int, j_fasting: int, j_hemo: int, j_nk: int, j_ferritin: int,
                j_scd25: int) -> Finding:
        crit = {
            "fever": fever_at(j_temp),
            "splenomegaly": spleen_at(j_org),
            "cytopenias": r.item(("cytopenias", j_hb, j_plt, j_anc), cytopenias,
                                 j_hb, j_plt, j_anc),
            "triglycerides_fibrinogen": r.item(("tg_fib", j_tg, j_fib, j_fasting >= 0),
                                               triglycerides_fibrinogen,
                                               j_tg, j_fib, j_fasting >= 0),
            "hemophagocytosis": hemo_at(j_hemo),
            "nk_activity": nk_at(j_nk),
            "ferritin": ferritin_at(j_ferritin),
            "scd25": scd25_at(j_scd25),
        }
        n_met, n_ne = 0, 0
        ev: list[EvidenceItem] = []
        missing: list[str] = []
        criteria: dict[str, str] = {}
        for name, i in crit.items():
            criteria[name] = WORD[i.status]
            ev += i.evidence
            if i.status is MET:
                n_met += 1
            elif i.status is NE:
                n_ne += 1
                if i.missing:
                    missing.append(i.missing)
        n_eval = len(crit) - n_ne
        need5 = t["criteria_required"]
        status = MET if n_met >= need5 else (NOT_MET if n_met + n_ne < need5 else NE)
        extra = {"met_count": n_met, "evaluable": n_eval, "criteria": criteria}
        if status is NE:
            extra["summary"] = f"indeterminate ({n_met} met, {n_ne} not evaluable)"
        return Finding(HLH2004.id, status, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


RULES: tuple[RuleSpec, ...] = (daily_rule(HLH2004, _hlh2004_findings),)

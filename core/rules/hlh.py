"""HLH-type criteria: CARTOX HLH/MAS (§2), HLH-2004 (§3) and the HScore (§4).

All three are context for clinicians in the CAR-T setting (cytopenias, fever and high ferritin
are expected after lymphodepletion and CRS); each reports how much of it could be evaluated and
never calls a syndrome absent because an input is missing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from core.course import Course
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
from core.rules.common import (
    Obs,
    Value,
    baseline,
    configured_thresholds,
    course_index,
    daily,
    end_of_day,
    episode_key,
    evaluated_day,
    latest_observation,
    latest_until,
    memo,
    met_since,
    observations_until,
    thresholds_key,
)
from core.units import Evidence

C2, U, D = Evidence.C2, Evidence.UNCONFIRMED, Evidence.DESIGN
MET, NOT_MET, NE = Status.MET, Status.NOT_MET, Status.NOT_EVALUABLE


@dataclass
class Item:
    status: Status
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: str | None = None


def _tri(found: list[Status]) -> Status:
    if MET in found:
        return MET
    return NOT_MET if found and all(s is NOT_MET for s in found) else NE


def tmax_latest_day(course: Course, end: float) -> Obs | None:
    """The highest temperature of the latest ward day with a temperature logged."""
    last = latest_observation(course, "temperature", end)
    if last is None:
        return None
    day = math.floor(last.day)
    temps = observations_until(course, "temperature", end, start=float(day))
    return max(temps, key=lambda o: o.num if o.num is not None else -math.inf)


def _daily_rule(rule_id: str, compute: Callable[[Course, int, Thresholds], Finding]
                ) -> Callable[[Course, Thresholds], Finding]:
    def evaluate(course: Course, t: Thresholds) -> Finding:
        key = (rule_id, thresholds_key(t))
        day = evaluated_day(course)

        def on(d: int) -> Finding:
            return daily(course, key, d, lambda: compute(course, d, t))

        today = on(day)
        since = met_since(course, key, day, today.status, lambda d: on(d).status)
        return Finding(rule_id, today.status, since_day=since, grade=today.grade,
                       score=today.score, evidence=list(today.evidence),
                       missing=list(today.missing), extra=dict(today.extra),
                       episode_key=episode_key(since))

    return evaluate


# --- CARTOX HLH/MAS (Neelapu 2018) -------------------------------------------------------------

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
        "Organ grades are the worst CTCAE v5 grade (core.rules.ctcae.ctcae_grade) of any value "
        "from day 0 on, with the §0.2 baseline; oliguria and pulmonary oedema are the worst "
        "clinician-entered CTCAE grade since day 0.",
        "Kidney item is not met when creatinine is below grade 3 and no oliguria grade >= 3 "
        "is logged (oliguria is an event observation), as in the §2 worked example.",
        "Entry met but items incomplete -> not evaluable ('possible, incomplete'); not met only "
        "when the missing items could no longer reach 2.",
    ),
    description="Peak ferritin > 10,000 ng/mL in days 0-5 plus >= 2 of 4 organ items.",
)


_CTCAE_RULES: dict[str, Rule] = {}


def _ctcae_rule(analyte: str) -> Rule:
    rule = _CTCAE_RULES.get(analyte)
    if rule is None:
        from core.rules import ctcae

        rule = _CTCAE_RULES[analyte] = next(
            s.rule for s in ctcae.RULES if s.rule.id == f"ctcae_{analyte}")
    return rule


def worst_ctcae(course: Course, analyte: str, end: float, start: float = 0.0
                ) -> tuple[int | None, Value | None]:
    """Worst CTCAE grade (and its value) of `analyte` with start <= day <= end."""
    from core.rules import ctcae

    s = course_index(course).labs.get(analyte)
    if s is None:
        return None, None
    tc = configured_thresholds(course, _ctcae_rule(analyte))
    b = baseline(course, analyte)
    i0 = bisect.bisect_left(s.days, start)

    def build() -> list[int]:
        # running argmax of the grade from i0: best[k] = index of the worst grade in [i0, k]
        best, cur, cur_g = [], -1, -1.0
        for i in range(len(s.days)):
            if i >= i0:
                v = s.at(i)
                g = ctcae.ctcae_grade(analyte, v.value, v.ref_high, v.ref_low,
                                      None if b is None or b is v else b.value,
                                      baseline_uln=None if b is None else b.ref_high,
                                      baseline_lln=None if b is None else b.ref_low, t=tc)
                if g is not None and g > cur_g:
                    cur, cur_g = i, float(g)
            best.append(cur)
        return best

    best = memo(course, ("cw_ctcae_worst", analyte, start,
                         None if b is None else b.day, thresholds_key(tc)), build)
    k = s.count(min(end, course.as_of_day))
    if k == 0 or best[k - 1] < 0:
        return None, None
    v = s.at(best[k - 1])
    return int(memo(course, ("cw_ctcae_g", analyte, best[k - 1], None if b is None else b.day,
                             thresholds_key(tc)), lambda: ctcae.ctcae_grade(
        analyte, v.value, v.ref_high, v.ref_low, None if b is None or b is v else b.value,
        baseline_uln=None if b is None else b.ref_high,
        baseline_lln=None if b is None else b.ref_low, t=tc))), v


def _worst_obs_grade(course: Course, kind: str, end: float) -> Obs | None:
    obs = [o for o in observations_until(course, kind, end, start=0.0) if o.num is not None]
    return max(obs, key=lambda o: o.num or 0.0) if obs else None


def _cartox_day(course: Course, day: int, t: Thresholds) -> Finding:
    end = min(end_of_day(day), course.as_of_day)
    g_min = t["organ_grade_min"]
    # entry
    w_end = min(end, t["entry_window_end_day"] + 1.0 - 1e-6)
    s = course_index(course).labs.get("ferritin")
    window: list[Value] = []
    if s is not None:
        i0 = bisect.bisect_left(s.days, 0.0)
        window = [s.at(i) for i in range(i0, s.count(w_end))]
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    if not window:
        entry = NE
        missing.append(f"log ferritin during days 0-{t['entry_window_end_day']:g}")
    else:
        peak = max(window, key=lambda v: v.value)
        entry = MET if peak.value > t["entry_ferritin"] else NOT_MET
        ev.append(peak.evidence(f"peak ferritin days 0-{t['entry_window_end_day']:g} "
                                f"{'>' if entry is MET else '<='} {t['entry_ferritin']:g}"))
    items: dict[str, Item] = {}
    # 1. liver
    liver: list[Status] = []
    liver_ev = []
    for a in ("bilirubin", "ast", "alt"):
        g, v = worst_ctcae(course, a, end)
        if g is None:
            liver.append(NE)
            continue
        liver.append(MET if g >= g_min else NOT_MET)
        if g >= g_min:
            liver_ev.append(v.evidence(f"CTCAE grade {g} (>= {g_min:g})"))  # type: ignore[union-attr]
    st = MET if MET in liver else (NOT_MET if NOT_MET in liver else NE)
    items["liver"] = Item(st, liver_ev, "log bilirubin, AST and ALT")
    # 2. kidney: creatinine or oliguria
    g, v = worst_ctcae(course, "creatinine", end)
    olig = _worst_obs_grade(course, "oliguria", end)
    kid_ev = []
    if g is not None and v is not None:
        kid_ev.append(v.evidence(f"creatinine CTCAE grade {g}"))
    if olig is not None:
        kid_ev.append(olig.evidence(f"oliguria grade {olig.num:g}"))
    if (g is not None and g >= g_min) or (olig is not None and (olig.num or 0) >= g_min):
        st = MET
    elif g is not None or olig is not None:
        st = NOT_MET
    else:
        st = NE
    items["kidney"] = Item(st, kid_ev, "log creatinine (or an oliguria grade)")
    # 3. pulmonary oedema, 4. haemophagocytosis
    pe = _worst_obs_grade(course, "pulmonary_edema", end)
    items["lung"] = Item(NE, [], "record the pulmonary oedema grade (0 if none)") if pe is None \
        else Item(MET if (pe.num or 0) >= g_min else NOT_MET,
                  [pe.evidence(f"pulmonary oedema grade {pe.num:g}")])
    hemo = observations_until(course, "hemophagocytosis", end, start=0.0)
    if not hemo:
        items["hemophagocytosis"] = Item(NE, [], "record the marrow/tissue haemophagocytosis "
                                                 "result, if a biopsy was done")
    else:
        yes = [o for o in hemo if o.is_yes]
        o = yes[0] if yes else hemo[-1]
        items["hemophagocytosis"] = Item(MET if yes else NOT_MET, [o.evidence(
            "haemophagocytosis reported" if yes else "no haemophagocytosis")])
    n_met = sum(i.status is MET for i in items.values())
    n_ne = sum(i.status is NE for i in items.values())
    need = t["items_required"]
    for i in items.values():
        ev += i.evidence
        if i.status is NE and i.missing:
            missing.append(i.missing)
    if entry is NOT_MET or n_met + n_ne < need:
        status = NOT_MET
    elif entry is MET and n_met >= need:
        status = MET
    else:
        status = NE
    extra = {
        "entry": str(entry), "items": {k: str(i.status) for k, i in items.items()},
        "items_met": n_met, "items_not_evaluable": n_ne,
    }
    if status is NE and entry is MET:
        extra["summary"] = "possible, incomplete"
    return Finding(CARTOX.id, status, evidence=ev, missing=missing, extra=extra)


# --- HLH-2004 ----------------------------------------------------------------------------------

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


def _lab_item(course: Course, end: float, analyte: str, limit: float, op: str,
              missing: str) -> Item:
    v = latest_until(course, analyte, end)
    if v is None:
        return Item(NE, [], missing)
    met = {"<": v.value < limit, "<=": v.value <= limit, ">=": v.value >= limit,
           ">": v.value > limit}[op]
    neg = {"<": ">=", "<=": ">", ">=": "<", ">": "<="}[op]
    return Item(MET if met else NOT_MET, [v.evidence(f"{op if met else neg} {limit:g}")])


def _hlh2004_day(course: Course, day: int, t: Thresholds) -> Finding:
    end = min(end_of_day(day), course.as_of_day)
    crit: dict[str, Item] = {}
    temp = tmax_latest_day(course, end)
    if temp is None or temp.num is None:
        crit["fever"] = Item(NE, [], "log temperature")
    else:
        met = temp.num >= t["fever_c"]
        crit["fever"] = Item(MET if met else NOT_MET, [temp.evidence(
            f"highest temperature of the day {'>=' if met else '<'} {t['fever_c']:g} °C")])
    org = latest_observation(course, "organomegaly", end)
    if org is None:
        crit["splenomegaly"] = Item(NE, [], "record spleen size (organomegaly exam/imaging)")
    else:
        met = org.text in ("splenomegaly", "both")
        crit["splenomegaly"] = Item(MET if met else NOT_MET, [org.evidence(
            "splenomegaly" if met else "no splenomegaly")])
    lineages = [_lab_item(course, end, a, t[a], "<", "") for a in ("hemoglobin", "platelets",
                                                                     "anc")]
    n_low = sum(i.status is MET for i in lineages)
    n_unknown = sum(i.status is NE for i in lineages)
    need = t["cytopenia_lineages"]
    cyt_ev = [e for i in lineages for e in i.evidence]
    if n_low >= need:
        crit["cytopenias"] = Item(MET, cyt_ev)
    elif n_low + n_unknown < need:
        crit["cytopenias"] = Item(NOT_MET, cyt_ev)
    else:
        crit["cytopenias"] = Item(NE, cyt_ev, "log a blood count (Hb, platelets, ANC)")
    tg = _lab_item(course, end, "triglycerides", t["triglycerides"], ">=", "")
    fib = _lab_item(course, end, "fibrinogen", t["fibrinogen"], "<=", "")
    if tg.status is MET:
        fasting = latest_observation(course, "fasting", end)
        if fasting is None:
            tg.evidence[0].why += " (fasting status not recorded)"
    st = _tri([tg.status, fib.status])
    crit["triglycerides_fibrinogen"] = Item(st, tg.evidence + fib.evidence,
                                            "log fasting triglycerides and fibrinogen")
    hemo = latest_observation(course, "hemophagocytosis", end)
    crit["hemophagocytosis"] = Item(NE, [], "record the marrow/tissue haemophagocytosis "
                                            "result, if a biopsy was done") if hemo is None \
        else Item(MET if hemo.is_yes else NOT_MET, [hemo.evidence(
            "haemophagocytosis" if hemo.is_yes else "no haemophagocytosis")])
    nk = latest_observation(course, "nk_activity", end)
    crit["nk_activity"] = Item(NE, [], "enter the NK-cell activity result, if sent") \
        if nk is None else Item(MET if nk.text in ("low", "absent") else NOT_MET,
                                [nk.evidence(f"NK-cell activity {nk.text}")])
    crit["ferritin"] = _lab_item(course, end, "ferritin", t["ferritin"], ">=", "log ferritin")
    crit["scd25"] = _lab_item(course, end, "scd25", t["scd25"], ">=",
                              "enter the soluble CD25 result, if sent")
    n_met = sum(i.status is MET for i in crit.values())
    n_eval = sum(i.status is not NE for i in crit.values())
    n_ne = len(crit) - n_eval
    need5 = t["criteria_required"]
    status = MET if n_met >= need5 else (NOT_MET if n_met + n_ne < need5 else NE)
    ev = [e for i in crit.values() for e in i.evidence]
    missing = [i.missing for i in crit.values() if i.status is NE and i.missing]
    extra = {"met_count": n_met, "evaluable": n_eval,
             "criteria": {k: str(i.status) for k, i in crit.items()}}
    if status is NE:
        extra["summary"] = f"indeterminate ({n_met} met, {n_ne} not evaluable)"
    return Finding(HLH2004.id, status, evidence=ev, missing=missing, extra=extra)


# --- HScore ------------------------------------------------------------------------------------

# Published probability table (Fardet 2014, criteria §4.2 [C2]): score -> probability of HS.
# <= 90 is "< 1 %" and >= 250 "> 99 %"; those ends are held flat at 1 % / 99 % for the number.
PROBABILITY_TABLE = (
    (90, 0.01), (100, 0.01), (110, 0.03), (120, 0.05), (130, 0.09), (140, 0.16), (150, 0.25),
    (160, 0.40), (170, 0.54), (180, 0.70), (190, 0.80), (200, 0.88), (210, 0.93),
    (220, 0.96), (230, 0.98), (240, 0.99), (250, 0.99),
)


def _pts(key: str, value: float, description: str) -> Threshold:
    return Threshold(key, value, "points", C2, description)


HSCORE = Rule(
    id="hscore",
    title="HScore (Fardet 2014): points, breakdown and probability",
    version="1.0",
    citation=Citation(
        source="Fardet et al., Arthritis Rheumatol 2014;66(9):2613-2620; table reproduced in "
               "Case Rep Rheumatol 2017:5304180 Table 3",
        section="HScore variables and probability table; criteria.md §4.1-4.3",
        doi="10.1002/art.38690",
    ),
    evidence=D,  # points, bins and cut-off are [C2]; the logistic fit (probability_fit) is ours
    severity=Severity.INFO,
    scored=True,
    thresholds=(
        _pts("immunosuppression_points", 18, "known underlying immunosuppression"),
        Threshold("temp_mid_c", 38.4, "°C", C2, "temperature from this (inclusive): 33 points",
                  ">="),
        Threshold("temp_high_c", 39.4, "°C", C2, "temperature above this: 49 points", ">"),
        _pts("temp_mid_points", 33, "temperature 38.4-39.4 °C"),
        _pts("temp_high_points", 49, "temperature > 39.4 °C"),
        _pts("organomegaly_one_points", 23, "hepatomegaly or splenomegaly"),
        _pts("organomegaly_both_points", 38, "hepatomegaly and splenomegaly"),
        Threshold("cyto_hemoglobin", 9.2, "g/dL", C2, "cytopenia: haemoglobin at or below",
                  "<="),
        Threshold("cyto_wbc", 5.0, "10^9/L", C2, "cytopenia: WBC at or below", "<="),
        Threshold("cyto_platelets", 110, "10^9/L", C2, "cytopenia: platelets at or below",
                  "<="),
        _pts("cyto_two_points", 24, "2 lineages"),
        _pts("cyto_three_points", 34, "3 lineages"),
        Threshold("ferritin_mid", 2000, "ng/mL", C2, "ferritin from this (inclusive)", ">="),
        Threshold("ferritin_high", 6000, "ng/mL", C2, "ferritin above this", ">"),
        _pts("ferritin_mid_points", 35, "ferritin 2,000-6,000 ng/mL"),
        _pts("ferritin_high_points", 50, "ferritin > 6,000 ng/mL"),
        Threshold("tg_mid", 132.7, "mg/dL", C2, "triglycerides from this (1.5 mmol/L)", ">="),
        Threshold("tg_high", 4.0 * 88.57, "mg/dL", C2,
                  "triglycerides above this (4.0 mmol/L exactly, x 88.57)", ">"),
        _pts("tg_mid_points", 44, "triglycerides 1.5-4 mmol/L"),
        _pts("tg_high_points", 64, "triglycerides > 4 mmol/L"),
        Threshold("fibrinogen", 250, "mg/dL", C2, "fibrinogen at or below (2.5 g/L)", "<="),
        _pts("fibrinogen_points", 30, "fibrinogen <= 2.5 g/L"),
        Threshold("ast", 30, "U/L", C2, "AST at or above", ">="),
        _pts("ast_points", 19, "AST >= 30 U/L"),
        _pts("hemophagocytosis_points", 35, "haemophagocytosis on bone-marrow aspirate"),
        Threshold("cutoff", 169, "points", C2,
                  "best cut-off (sensitivity 93 %, specificity 86 %): score at or above", ">="),
        Threshold("fit_slope", 0.0628, "logit/point", D,
                  "our least-squares logistic fit to the table (not published)"),
        Threshold("fit_intercept", -10.54, "logit", D, "our logistic fit intercept"),
    ),
    inputs=("immunosuppression", "temperature", "organomegaly", "hemoglobin", "wbc",
            "platelets", "ferritin", "triglycerides", "fibrinogen", "ast", "hemophagocytosis"),
    choices=(
        "Each item uses the latest value as of the evaluated day; temperature is the highest "
        "of the latest day with a temperature logged.",
        "Score = points of the items known; missing items are listed and the score is a lower "
        "bound: met when it reaches the cut-off, not met only when even the missing items' "
        "maximum points could not reach it, else not evaluable (score_max in extra).",
        "Cut-off: a score of 169 or more counts as above the cut-off (above_169).",
        "Upper triglyceride bin starts above 4.0 mmol/L converted exactly (354.28 mg/dL) so "
        "that 4.0 mmol/L scores 44 as §4.1 tabulates; the lower bin starts at 132.7 mg/dL.",
        "Probability: linear interpolation on the published table, held at 1 % below 100 and "
        "99 % from 240 (text '< 1 %' at <= 90, '> 99 %' at >= 250); the logistic fit of §4.2 "
        "[DESIGN] is reported beside it as probability_fit.",
        "Known immunosuppression is a clinician-entered yes/no (whether lymphodepletion or "
        "steroids count is not defined by the score).",
    ),
    description="HScore 0-337 for reactive haemophagocytic syndrome; context only after CAR-T.",
)


def probability_from_table(score: float) -> tuple[float, str]:
    """Interpolated probability and its text from the published table (§4.2)."""
    xs = [p[0] for p in PROBABILITY_TABLE]
    ys = [p[1] for p in PROBABILITY_TABLE]
    p = float(np.interp(score, xs, ys))
    if score <= 90:
        return p, "< 1 %"
    if score >= 250:
        return p, "> 99 %"
    for x, y in PROBABILITY_TABLE[1:-1]:
        if score == x:
            return p, f"{y * 100:.0f} %"
    i = int(np.searchsorted(xs, score))
    lo, hi = ys[i - 1], ys[i]
    if lo == hi:
        return p, f"{'<=' if score < 100 else '>='} {lo * 100:.0f} %"
    return p, f"{lo * 100:.0f}–{hi * 100:.0f} %"


def _hscore_day(course: Course, day: int, t: Thresholds) -> Finding:
    end = min(end_of_day(day), course.as_of_day)
    breakdown: dict[str, float | None] = {}
    maxima: dict[str, float] = {}
    ev: list[EvidenceItem] = []
    missing_items: list[str] = []

    def add(name: str, pts: float | None, most: float, e: EvidenceItem | None = None) -> None:
        breakdown[name] = pts
        if pts is None:
            maxima[name] = most
            missing_items.append(name)
        if e is not None:
            ev.append(e)

    imm = latest_observation(course, "immunosuppression", end)
    ip = t["immunosuppression_points"]
    add("immunosuppression", None if imm is None else (ip if imm.is_yes else 0.0), ip,
        None if imm is None else imm.evidence(f"{ip:g} points" if imm.is_yes else "0 points"))
    temp = tmax_latest_day(course, end)
    if temp is None or temp.num is None:
        add("temperature", None, t["temp_high_points"])
    else:
        x = temp.num
        p = t["temp_high_points"] if x > t["temp_high_c"] else (
            t["temp_mid_points"] if x >= t["temp_mid_c"] else 0.0)
        add("temperature", p, 0, temp.evidence(f"{p:g} points"))
    org = latest_observation(course, "organomegaly", end)
    if org is None:
        add("organomegaly", None, t["organomegaly_both_points"])
    else:
        p = {"both": t["organomegaly_both_points"], "hepatomegaly":
             t["organomegaly_one_points"], "splenomegaly": t["organomegaly_one_points"]
             }.get(org.text or "", 0.0)
        add("organomegaly", p, 0, org.evidence(f"{p:g} points"))
    n_low, n_unknown = 0, 0
    for a, key in (("hemoglobin", "cyto_hemoglobin"), ("wbc", "cyto_wbc"),
                   ("platelets", "cyto_platelets")):
        v = latest_until(course, a, end)
        if v is None:
            n_unknown += 1
            continue
        low = v.value <= t[key]
        n_low += low
        ev.append(v.evidence(f"{'<=' if low else '>'} {t[key]:g}: "
                             f"{'cytopenia' if low else 'no cytopenia'}"))

    def cyto_pts(n: int) -> float:
        return t["cyto_three_points"] if n >= 3 else (t["cyto_two_points"] if n == 2 else 0.0)

    lo, hi = cyto_pts(n_low), cyto_pts(n_low + n_unknown)
    if lo == hi:
        breakdown["cytopenias"] = lo
    else:
        breakdown["cytopenias"] = None
        maxima["cytopenias"] = hi
        missing_items.append("blood counts")
        breakdown["cytopenias_partial"] = lo
    for name, analyte, bins in (
        ("ferritin", "ferritin", lambda x: t["ferritin_high_points"] if x > t["ferritin_high"]
         else (t["ferritin_mid_points"] if x >= t["ferritin_mid"] else 0.0)),
        ("triglycerides", "triglycerides", lambda x: t["tg_high_points"] if x > t["tg_high"]
         else (t["tg_mid_points"] if x >= t["tg_mid"] else 0.0)),
        ("fibrinogen", "fibrinogen",
         lambda x: t["fibrinogen_points"] if x <= t["fibrinogen"] else 0.0),
        ("ast", "ast", lambda x: t["ast_points"] if x >= t["ast"] else 0.0),
    ):
        v = latest_until(course, analyte, end)
        most = {"ferritin": t["ferritin_high_points"], "triglycerides": t["tg_high_points"],
                "fibrinogen": t["fibrinogen_points"], "ast": t["ast_points"]}[name]
        if v is None:
            add(name, None, most)
        else:
            p = bins(v.value)
            add(name, p, 0, v.evidence(f"{p:g} points"))
    hemo = latest_observation(course, "hemophagocytosis", end)
    hp = t["hemophagocytosis_points"]
    add("hemophagocytosis", None if hemo is None else (hp if hemo.is_yes else 0.0), hp,
        None if hemo is None else hemo.evidence(f"{hp if hemo.is_yes else 0:g} points"))
    partial = breakdown.pop("cytopenias_partial", None)
    score = sum(v for v in breakdown.values() if v is not None) + (partial or 0.0)
    score_max = score + sum(maxima.values())
    cutoff = t["cutoff"]
    status = MET if score >= cutoff else (NOT_MET if score_max < cutoff else NE)
    prob, text = probability_from_table(score)
    fit = 1.0 / (1.0 + math.exp(-(t["fit_slope"] * score + t["fit_intercept"])))
    words = {"immunosuppression": "known immunosuppression (yes/no)",
             "temperature": "temperature", "organomegaly": "organomegaly (liver/spleen exam)",
             "blood counts": "a blood count (Hb, WBC, platelets)", "ferritin": "ferritin",
             "triglycerides": "triglycerides", "fibrinogen": "fibrinogen", "ast": "AST",
             "hemophagocytosis": "bone-marrow haemophagocytosis (if aspirate done)"}
    missing = []
    if missing_items:
        missing = [f"log {', '.join(words[m] for m in missing_items)} to complete the HScore"]
    extra = {
        "probability": round(prob, 4), "probability_table": text,
        "probability_fit": round(fit, 3), "above_169": score >= cutoff,
        "breakdown": breakdown, "score_max": score_max, "missing_items": missing_items,
    }
    return Finding(HSCORE.id, status, score=score, evidence=ev, missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(CARTOX, _daily_rule(CARTOX.id, _cartox_day)),
    RuleSpec(HLH2004, _daily_rule(HLH2004.id, _hlh2004_day)),
    RuleSpec(HSCORE, _daily_rule(HSCORE.id, _hscore_day)),
)

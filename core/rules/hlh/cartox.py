"""CARTOX HLH/MAS (Neelapu 2018, criteria.md §2): peak ferritin in days 0-5 plus organ items."""

from __future__ import annotations

import bisect

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
    DayFindings,
    Item,
    Reader,
    U,
    ctcae_rule,
    daily_rule,
    day_findings,
    running_max,
)
from core.rules.reading import baseline, course_index
from core.rules.stretches import configured_thresholds, memo, thresholds_key
from core.vocabulary.course import Course

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


def _worst_ctcae_table(course: Course, analyte: str, start: float = 0.0
                       ) -> tuple[list[int], list[int | None]]:
    """The worst CTCAE grade of `analyte` from day `start` on, for every count of its values:
    (worst[n] = index of the worst among the first n, -1 if none; the grade of each value)."""
    from core.rules import ctcae

    s = course_index(course).labs[analyte]
    tc = configured_thresholds(course, ctcae_rule(analyte))
    b = baseline(course, analyte)

    def build() -> tuple[list[int], list[int | None]]:
        i0 = bisect.bisect_left(s.days, start)
        grades: list[int | None] = [None] * len(s.days)
        for i in range(i0, len(s.days)):
            v = s.at(i)
            grades[i] = ctcae.ctcae_grade(
                analyte, v.value, v.ref_high, v.ref_low,
                None if b is None or b is v else b.value,
                baseline_uln=None if b is None else b.ref_high,
                baseline_lln=None if b is None else b.ref_low, t=tc)
        return running_max(grades), grades

    return memo(course, ("hlh_ctcae_worst", analyte, start, None if b is None else b.day,
                         thresholds_key(tc)), build)


def _worst_obs_table(r: Reader, kind: str) -> list[int]:
    """For every count of `kind` observations: the index of the highest number among them
    from day 0 on (-1 if none)."""
    s = r.obs.get(kind)
    if s is None:
        return [-1]
    return running_max([None if x != x else x for x in s.nums], bisect.bisect_left(s.days, 0.0))


_LIVER = ("bilirubin", "ast", "alt")
_GRADED = (*_LIVER, "creatinine")


def _cartox_findings(course: Course, t: Thresholds) -> DayFindings:
    # The organ grades depend on each analyte's baseline (which a day view cut before the
    # baseline draw sees differently) and on the CTCAE thresholds in force: both are in the key.
    deps = []
    for a in _GRADED:
        b = baseline(course, a)
        tc = configured_thresholds(course, ctcae_rule(a))
        deps.append((None if b is None else b.day, thresholds_key(tc)))
    return day_findings(course, (CARTOX.id, thresholds_key(t), *deps),
                        lambda r: _cartox_builder(course, r, t))


def _cartox_builder(course: Course, r: Reader, t: Thresholds) -> Builder:
    """CARTOX from the values that decide it: the ferritin peak of days 0-5, the worst-graded
    bilirubin/AST/ALT/creatinine, the worst oliguria and oedema grades, and the
    haemophagocytosis result (the first 'yes' from day 0, else the latest 'no')."""
    worst = {a: _worst_ctcae_table(course, a) if a in r.labs else ([-1], []) for a in _GRADED}
    ferritin = r.labs.get("ferritin")
    peak = [-1] if ferritin is None else running_max(
        ferritin.vals, bisect.bisect_left(ferritin.days, 0.0))
    hemo = r.obs.get("hemophagocytosis")
    hemo_table = [-1]
    if hemo is not None:
        h0, first_yes = bisect.bisect_left(hemo.days, 0.0), None
        for n in range(1, len(hemo.days) + 1):
            if first_yes is None and n > h0 and hemo.nums[n - 1] >= 1:
                first_yes = n - 1
            hemo_table.append(first_yes if first_yes is not None else (n - 1 if n > h0 else -1))
    inputs = [
        r.lab_input("ferritin", peak, cap=t["entry_window_end_day"] + 1.0 - 1e-6),
        *[r.lab_input(a, worst[a][0]) for a in _GRADED],
        r.obs_input("oliguria", _worst_obs_table(r, "oliguria")),
        r.obs_input("pulmonary_edema", _worst_obs_table(r, "pulmonary_edema")),
        r.obs_input("hemophagocytosis", hemo_table),
    ]
    g_min, ed = t["organ_grade_min"], t["entry_window_end_day"]

    def grade(a: str, j: int) -> int | None:
        g = worst[a][1][j] if j >= 0 else None
        return None if g is None else int(g)

    def finding(j_peak: int, j_bili: int, j_ast: int, j_alt: int, j_creat: int, j_olig: int,
                j_edema: int, j_hemo: int) -> Finding:
        ev: list[EvidenceItem] = []
        missing: list[str] = []
        peak_v = r.lab("ferritin", j_peak)
        if peak_v is None:
            entry = NE
            missing.append(f"log ferritin during days 0-{ed:g}")
        else:
            entry = MET if peak_v.value > t["entry_ferritin"] else NOT_MET
            ev.append(peak_v.evidence(f"peak ferritin days 0-{ed:g} "
                                      f"{'>' if entry is MET else '<='} {t['entry_ferritin']:g}"))
        items: dict[str, Item] = {}
        # 1. liver
        liver: list[Status] = []
        liver_ev = []
        for a, j in zip(_LIVER, (j_bili, j_ast, j_alt), strict=True):
            g = grade(a, j)
            if g is None:
                liver.append(NE)
                continue
            liver.append(MET if g >= g_min else NOT_MET)
            if g >= g_min:
                liver_ev.append(r.labs[a].at(j).evidence(f"CTCAE grade {g} (>= {g_min:g})"))
        st = MET if MET in liver else (NOT_MET if NOT_MET in liver else NE)
        items["liver"] = Item(st, liver_ev, "log bilirubin, AST and ALT")
        # 2. kidney: creatinine or oliguria
        g = grade("creatinine", j_creat)
        olig = r.observation("oliguria", j_olig)
        kid_ev = []
        if g is not None:
            kid_ev.append(r.labs["creatinine"].at(j_creat).evidence(f"creatinine CTCAE grade {g}"))
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
        pe = r.observation("pulmonary_edema", j_edema)
        items["lung"] = Item(NE, [], "record the pulmonary oedema grade (0 if none)") \
            if pe is None else Item(MET if (pe.num or 0) >= g_min else NOT_MET,
                                    [pe.evidence(f"pulmonary oedema grade {pe.num:g}")])
        o = r.observation("hemophagocytosis", j_hemo)
        if o is None:
            items["hemophagocytosis"] = Item(NE, [], "record the marrow/tissue "
                                                     "haemophagocytosis result, if a biopsy "
                                                     "was done")
        else:
            items["hemophagocytosis"] = Item(MET if o.is_yes else NOT_MET, [o.evidence(
                "haemophagocytosis reported" if o.is_yes else "no haemophagocytosis")])
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
            "entry": WORD[entry], "items": {k: WORD[i.status] for k, i in items.items()},
            "items_met": n_met, "items_not_evaluable": n_ne,
        }
        if status is NE and entry is MET:
            extra["summary"] = "possible, incomplete"
        return Finding(CARTOX.id, status, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


RULES: tuple[RuleSpec, ...] = (daily_rule(CARTOX, _cartox_findings),)

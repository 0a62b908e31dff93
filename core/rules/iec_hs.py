"""IEC-HS screen (ASTCT 2023, Hines et al.), with ferritin kinetics and timing vs CRS.

criteria.md §1.2 [DESIGN screening logic]: fire when the ferritin key feature AND the timing
feature are met AND at least one lab manifestation (transaminases, fibrinogen, new cytopenia)
is met. Haemophagocytosis and the other features are evidence only. Every threshold of §1.2 is
[UNCONFIRMED] (the consensus tables were not retrieved) and is shown as provisional. A screening
flag for clinician review, never a diagnosis; the §1.5 treatment tiers ride along as context.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any

from core.rules import crs, ctcae, ferritin
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
from core.rules.hlh.criteria import ctcae_rule
from core.rules.reading import (
    LabSeries,
    course_index,
    end_of_day,
    episodes_until,
    latest_observation,
    latest_until,
)
from core.rules.stretches import (
    DailyRule,
    configured_thresholds,
    evaluated_day,
    memo,
    settled_baseline,
    thresholds_key,
)
from core.vocabulary.course import Course
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


@dataclass
class Feature:
    status: Status
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _ferritin_feature(course: Course, end: float, t: Thresholds) -> Feature:
    f = latest_until(course, "ferritin", end)
    if f is None:
        return Feature(Status.NOT_EVALUABLE, missing=[MISSING["ferritin"]])
    ev, met, known = [], False, True
    uln = f.ref_high
    if uln is not None:
        lim = t["ferritin_x_uln"] * uln
        if f.value > lim:
            met = True
            ev.append(f.evidence(f"> {t['ferritin_x_uln']:g} x ULN ({lim:g})"))
    else:
        known = False
    b = settled_baseline(course, "ferritin")
    if b is None or b.value <= 0:
        known = known and met
    elif b is not f:
        lim = t["ferritin_x_baseline"] * b.value
        if f.value > lim:
            met = True
            ev.append(f.evidence(f"> {t['ferritin_x_baseline']:g} x baseline ({b.value:g}, "
                                 f"day {b.day:g})"))
    if met:
        return Feature(Status.MET, ev)
    if not known:
        return Feature(Status.NOT_EVALUABLE,
                       [f.evidence(f"not above {t['ferritin_x_uln']:g} x ULN")],
                       [MISSING["ferritin_baseline"]])
    return Feature(Status.NOT_MET, [f.evidence(
        f"<= {t['ferritin_x_uln']:g} x ULN and <= {t['ferritin_x_baseline']:g} x baseline")])


def _timing_feature(course: Course, day: int) -> Feature:
    tc = configured_thresholds(course, crs.RULE)
    end = min(end_of_day(day), course.as_of_day)
    documented = [e for e in episodes_until(course, "CRS", end) if e[3] == "documented"]
    if documented:
        today = crs.crs_day(course, day, tc)
        grade, onset, resolved, _ = documented[-1]
        if resolved is not None:
            return Feature(Status.MET, [EvidenceItem(
                why=f"onset after CRS resolved (documented CRS day {math.floor(onset)}-"
                    f"{math.floor(resolved)}, resolved day {math.floor(resolved)})",
                analyte="CRS", day=resolved)])
        del grade  # the documented grade is the episode's final grade, not today's worst
        worst = max((crs.crs_day(course, d, tc).grade or 0
                     for d in range(math.floor(onset), day)), default=0)
        if today.grade is not None and today.grade < worst:
            return Feature(Status.MET, [EvidenceItem(
                why=f"CRS resolving: grade {today.grade} today, worst {worst} (documented "
                    f"episode from day {math.floor(onset)})", analyte="CRS", day=day)])
        if today.grade is None:
            return Feature(Status.NOT_EVALUABLE, missing=[MISSING["crs"]])
        return Feature(Status.NOT_MET, [EvidenceItem(
            why=f"documented CRS ongoing since day {math.floor(onset)} (grade "
                f"{today.grade} today)", analyte="CRS", day=day)])
    summary = _crs_summary(course, day, tc)
    if summary is None:
        return Feature(Status.NOT_EVALUABLE, missing=[MISSING["crs"]])
    last_d, last_g, last_crs_day, start, worst = summary
    if last_crs_day is None:
        return Feature(Status.MET, [EvidenceItem(
            why="no CRS graded since infusion (IEC-HS is often not tied to CRS)",
            analyte="CRS", day=last_d)])
    if last_g == 0:
        return Feature(Status.MET, [EvidenceItem(
            why=f"onset after CRS resolved (computed CRS last graded >= 1 on day "
                f"{last_crs_day}, grade 0 on day {last_d})", analyte="CRS", day=last_d)])
    if last_g < worst:
        return Feature(Status.MET, [EvidenceItem(
            why=f"CRS resolving: computed grade {last_g} on day {last_d}, worst {worst} since "
                f"day {start}", analyte="CRS", day=last_d)])
    return Feature(Status.NOT_MET, [EvidenceItem(
        why=f"CRS ongoing (computed grade {last_g} on day {last_d}, not improving)",
        analyte="CRS", day=last_d)])


CrsSummary = tuple[int, int, int | None, int, int]


def _crs_summary(course: Course, day: int, tc: Thresholds) -> CrsSummary | None:
    """The computed CRS course up to `day`, built incrementally (cached per complete day):
    (last evaluable day, its grade, last day graded >= 1, start of the current graded
    stretch, worst grade of that stretch); None if no day was evaluable."""
    idx = course_index(course)
    first_day = memo(course, ("first_day",), idx.first_day)
    first = max(0, math.floor(first_day)) if math.isfinite(first_day) else day
    key = ("iec_hs_crs_summary", thresholds_key(tc))
    cache = idx.memo
    d, summary = day - 1, None
    while d >= first and (*key, d) not in cache:
        d -= 1
    if d >= first:
        summary = cache[(*key, d)]
    for x in range(max(d + 1, first), day + 1):
        g = crs.crs_day(course, x, tc).grade
        if g is None:
            pass
        elif g == 0:
            summary = (x, 0, None if summary is None else summary[2], x, 0)
        elif summary is not None and summary[1] >= 1:
            summary = (x, g, x, summary[3], max(summary[4], g))
        else:
            summary = (x, g, x, x, g)
        if end_of_day(x) <= course.as_of_day:
            cache[(*key, x)] = summary
    return summary


def _transaminase_feature(course: Course, end: float, t: Thresholds) -> Feature:
    statuses, ev = [], []
    for a in ("ast", "alt"):
        v = latest_until(course, a, end)
        if v is None or v.ref_high is None:
            statuses.append(Status.NOT_EVALUABLE)
            continue
        b = settled_baseline(course, a)
        abnormal = b is not None and b is not v and b.ref_high is not None and (
            b.value > b.ref_high)
        if abnormal:
            assert b is not None  # part of `abnormal`
            lim, why = t["transaminase_x_baseline"] * b.value, (
                f"{v.value / b.value:.1f} x baseline ({b.value:g}, abnormal)")
            k = t["transaminase_x_baseline"]
        else:
            lim, why = t["transaminase_x_uln"] * v.ref_high, (
                f"{v.value / v.ref_high:.1f} x ULN ({v.ref_high:g})")
            k = t["transaminase_x_uln"]
        met = v.value > lim
        statuses.append(Status.MET if met else Status.NOT_MET)
        ev.append(v.evidence(f"{why} {'>' if met else '<='} {k:g}"))
    if Status.MET in statuses:
        return Feature(Status.MET, [e for e in ev if "<=" not in e.why])
    if all(s is Status.NOT_MET for s in statuses):
        return Feature(Status.NOT_MET, ev)
    return Feature(Status.NOT_EVALUABLE, ev, [MISSING["ast_alt"]])


def _fibrinogen_feature(course: Course, end: float, t: Thresholds) -> Feature:
    v = latest_until(course, "fibrinogen", end)
    if v is None:
        return Feature(Status.NOT_EVALUABLE, missing=[MISSING["fibrinogen"]])
    lim = t["fibrinogen_low"]
    if v.value < lim:
        return Feature(Status.MET, [v.evidence(f"< {lim:g} mg/dL")])
    if v.ref_low is not None and v.value < v.ref_low:
        return Feature(Status.MET, [v.evidence(f"< LLN ({v.ref_low:g} mg/dL)")])
    return Feature(Status.NOT_MET, [v.evidence(f">= {lim:g} mg/dL and >= LLN")])


@dataclass
class _Grades:
    """One lineage's values judged against the reference window, each on first use and kept:
    a replay reads only the values near its screen window, each on the days it is the latest.
    The grades are the ctcae_<lineage> rule's own (no baseline for counts), graded once per
    course for both rules."""

    series: LabSeries
    ctcae: ctcae._Graded  # the lineage graded with the site's ctcae_<analyte> thresholds
    # (status, evidence) of the lineage when value k - 1 is the latest, per (k, iec_hs key)
    judged: dict[tuple, tuple[Status, EvidenceItem | None]] = field(default_factory=dict)
    grades: list[float] = field(default_factory=list)  # of values 0, 1, ... (NaN: none)

    def graded(self, i: int, k: int) -> list[float]:
        """The grades of values i..k-1 (NaN when not gradable), each graded once."""
        g, grade = self.grades, self.ctcae.grade
        while len(g) < k:
            x = grade(len(g))
            g.append(math.nan if x is None else float(x))
        return g[i:k]

    def judge(self, k: int, t: Thresholds) -> tuple[Status, EvidenceItem | None]:
        """New or worsening cytopenia when value k - 1 is the latest (k >= 1)."""
        key = (k, thresholds_key(t))
        found = self.judged.get(key)
        if found is None:
            found = self.judged[key] = self._judge(k, t)
        return found

    def _judge(self, k: int, t: Thresholds) -> tuple[Status, EvidenceItem | None]:
        s = self.series
        lookback = t["cytopenia_lookback_days"]
        i0 = min(k - 1, bisect.bisect_left(s.days, max(t["cytopenia_reference_day"],
                                                       s.days[k - 1] - lookback)))
        *window, g_now = self.graded(i0, k)
        if math.isnan(g_now):
            return Status.NOT_EVALUABLE, None
        earlier = [x for x in window if x == x]  # NaN: not gradable
        if not earlier:  # no reference yet: the expected nadir is not a new cytopenia
            return Status.NOT_MET, None
        best = min(earlier)
        if g_now >= t["cytopenia_min_grade"] and g_now - best >= t["cytopenia_grade_drop"]:
            return Status.MET, s.at(k - 1).evidence(
                f"new or worsening cytopenia: CTCAE grade {int(g_now)}, best grade "
                f"{int(best)} in the {lookback:g} days before")
        return Status.NOT_MET, None


def _grades(course: Course, analyte: str) -> _Grades:
    """The lineage's grades and judgements in the course index (cached per course)."""
    tc = configured_thresholds(course, ctcae_rule(analyte))

    def build() -> _Grades:
        s = course_index(course).labs[analyte]
        return _Grades(s, ctcae._graded(course, s, tc, None))

    return memo(course, ("iec_hs_ctcae", analyte, thresholds_key(tc)), build)


def _cytopenia_feature(course: Course, end: float, t: Thresholds) -> Feature:
    statuses, ev = [], []
    labs = course_index(course).labs
    for a in CYTOPENIA_LINEAGES:
        s = labs.get(a)
        k = 0 if s is None else s.count(min(end, course.as_of_day))
        if k == 0:
            statuses.append(Status.NOT_EVALUABLE)
            continue
        status, item = _grades(course, a).judge(k, t)
        statuses.append(status)
        if item is not None:
            ev.append(item)
    if Status.MET in statuses:
        return Feature(Status.MET, ev)
    if all(s is Status.NOT_MET for s in statuses):
        return Feature(Status.NOT_MET, [EvidenceItem(
            why=f"no new or worsening cytopenia (vs the best count of the "
                f"{t['cytopenia_lookback_days']:g} days before, from day "
                f"{t['cytopenia_reference_day']:g})")])
    return Feature(Status.NOT_EVALUABLE, ev, [MISSING["counts"]])


def _above_uln(course: Course, end: float, t: Thresholds) -> bool:
    f = latest_until(course, "ferritin", end)
    return f is not None and f.ref_high is not None and f.value > t["ferritin_x_uln"] * f.ref_high


def _screen(course: Course, day: int, t: Thresholds) -> Finding:
    end = min(end_of_day(day), course.as_of_day)
    outside = None
    if day < t["window_start_day"]:
        outside = f"the screen runs from day {t['window_start_day']:g}"
    elif day > t["window_end_day"] and not _above_uln(course, end, t):
        outside = (f"after day {t['window_end_day']:g} the screen runs only while ferritin is "
                   f"raised")
    if outside is not None:
        return Finding(RULE.id, Status.NOT_MET, evidence=[EvidenceItem(why=outside)],
                       extra={"outside_window": True})
    ferr = _ferritin_feature(course, end, t)
    features = {
        "ferritin": ferr,
        "timing": _timing_feature(course, day),
        "transaminase": _transaminase_feature(course, end, t),
        "fibrinogen": _fibrinogen_feature(course, end, t),
        "cytopenia": _cytopenia_feature(course, end, t),
    }
    labs = [features[k].status for k in ("transaminase", "fibrinogen", "cytopenia")]
    keys = [ferr.status, features["timing"].status]
    if Status.NOT_MET in keys or all(s is Status.NOT_MET for s in labs):
        status = Status.NOT_MET
    elif all(s is Status.MET for s in keys) and Status.MET in labs:
        status = Status.MET
    else:
        status = Status.NOT_EVALUABLE
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    for name, feat in features.items():
        ev += feat.evidence
        if status is not Status.MET or name in ("ferritin", "timing"):
            missing += [m for m in feat.missing if m not in missing]
    kin = ferritin.kinetics(course, end)
    if kin.rapid:
        r = kin.rapid_ref
        assert r is not None and kin.latest is not None
        ev.append(kin.latest.evidence(
            f"rapid rise: {kin.latest.value / r.value:.1f}-fold since day {r.day:g} "
            "(ferritin_kinetics default)"))
    hemo = latest_observation(course, "hemophagocytosis", end)
    if hemo is not None:
        ev.append(hemo.evidence("haemophagocytosis reported" if hemo.is_yes
                                else "no haemophagocytosis on marrow/tissue"))
    else:
        missing.append(MISSING["hemophagocytosis"])
    extra: dict[str, Any] = {
        "features": {k: str(f.status) for k, f in features.items()},
        "features_met": [k for k, f in features.items() if f.status is Status.MET],
        "rapid_rise": kin.rapid,
        "hemophagocytosis": "not_evaluable" if hemo is None
        else ("met" if hemo.is_yes else "not_met"),
        "iec_hs_grade": "not evaluable (needs clinical inputs, §1.4)",
    }
    if status is Status.MET:
        extra.update(TREATMENT_CONTEXT)
    return Finding(RULE.id, status, evidence=ev, missing=missing, extra=extra)


SCREEN = DailyRule(RULE, _screen)


def screen_since(course: Course, day: int | None = None,
                 t: Thresholds | None = None) -> tuple[Status, int | None]:
    """The iec_hs status as of the end of `day` (default: the evaluated day) and the first day
    of its met stretch (None unless met); `t` defaults to the thresholds in force."""
    t = t if t is not None else configured_thresholds(course, RULE)
    today, since = SCREEN.since(course, evaluated_day(course) if day is None else day, t)
    return today.status, since


evaluate = SCREEN.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (SCREEN.spec(),)

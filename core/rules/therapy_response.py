"""therapy_response: IEC-HS labs not improving after IEC-HS-directed therapy (design.md,
criteria.md §1.5 and §11): the point where published practice re-assesses and may escalate.

It reads the IEC-HS course: a documented IEC-HS episode, else the iec_hs screen's met stretch.
"""

from __future__ import annotations

import math

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
from core.rules.iec_hs import screen_since
from core.rules.reading import end_of_day, episodes_until, latest_until, treatment_days
from core.rules.stretches import DailyRule
from core.vocabulary.course import Course
from core.vocabulary.observations import DrugClass, drugs_in
from core.vocabulary.units import Evidence

D = Evidence.DESIGN

IEC_HS_DIRECTED = tuple(sorted(drugs_in(DrugClass.HLH_DIRECTED)))
OTHER_LABS = (("ast", 1), ("alt", 1), ("bilirubin", 1), ("ldh", 1), ("fibrinogen", -1))

THERAPY_RULE = Rule(
    id="therapy_response",
    title="IEC-HS labs not improving after IEC-HS-directed therapy",
    version="1.0",
    citation=Citation(
        source="Hines et al., Transplant Cell Ther 2023;29(7):438.e1 (treatment algorithm, "
               "recalled); 'falling after therapy' default of CAR-T Watch",
        section="criteria.md §1.5 (re-assessment ~48 h) and §11 ('falling after therapy', "
                "Lin et al. < 50 % decrease)",
        doi="10.1016/j.jtct.2023.03.006",
    ),
    evidence=Evidence.UNCONFIRMED,
    severity=Severity.SEVERE,
    short_name="No response to therapy", syndrome="met",
    thresholds=(
        Threshold("reassess_hours", 48, "hours", Evidence.UNCONFIRMED,
                  "re-assess this long after the first IEC-HS-directed dose", ">="),
        Threshold("falling_fraction", 0.5, "fraction", D,
                  "'falling after therapy': decrease from the pre-therapy ferritin of at "
                  "least this fraction", ">="),
        Threshold("falling_window_days", 7, "days", D,
                  "the decrease is expected within this many days of the first dose", "<="),
    ),
    inputs=("ferritin", "ast", "alt", "bilirubin", "ldh", "fibrinogen",
            "IEC-HS-directed doses (anakinra, steroids, ruxolitinib, emapalumab, etoposide)",
            "IEC-HS episode or iec_hs screen"),
    choices=(
        "Applies only during an IEC-HS episode: a documented unresolved IEC-HS episode, else "
        "the iec_hs screen met (its since_day is the onset).",
        "Therapy start = the first IEC-HS-directed dose on or after the episode's onset day; "
        "steroids given earlier (e.g. for CRS) do not start the clock.",
        "The flag is driven by ferritin against the last value on or before the first dose: "
        "from 48 h it is met while ferritin has not fallen at all; from 7 days while it has "
        "not fallen by >= 50 %. AST, ALT, bilirubin, LDH and fibrinogen are shown as evidence "
        "(change since the first dose) but do not decide.",
        "Before 48 h the rule is not met (re-assessment not yet due) and says when it is.",
        "The consensus treatment tiers are context only; this flag never orders escalation.",
    ),
    description="The point where published practice re-assesses and may escalate IEC-HS "
                "therapy: screening flag for clinician review.",
)


def active_iec_hs_onset(course: Course, day: int) -> tuple[float | None, str]:
    """Onset day of the IEC-HS episode active at the end of `day`, and where it comes from."""
    end = min(end_of_day(day), course.as_of_day)
    documented = [e for e in episodes_until(course, "IEC-HS", end) if e[3] == "documented"]
    open_eps = [e for e in documented if e[2] is None]
    if open_eps:
        return open_eps[-1][1], "documented IEC-HS episode"
    status, since = screen_since(course, day)
    if status is Status.MET:
        return since, "iec_hs screen met"
    return None, ""


def _therapy_finding(course: Course, day: int, t: Thresholds) -> Finding:
    rid = THERAPY_RULE.id
    end = min(end_of_day(day), course.as_of_day)
    onset, source = active_iec_hs_onset(course, day)
    if onset is None:
        return Finding(rid, Status.NOT_MET, evidence=[EvidenceItem(
            why="no active IEC-HS episode (documented or screened)")])
    doses = treatment_days(course, IEC_HS_DIRECTED, end, start=math.floor(onset))
    if not doses:
        return Finding(rid, Status.NOT_MET, evidence=[EvidenceItem(
            why=f"{source} since day {math.floor(onset)}; no IEC-HS-directed therapy yet")])
    t0, drug = doses[0]
    started = EvidenceItem(why=f"first IEC-HS-directed dose: {drug}", analyte=drug, day=t0)
    due = t0 + t["reassess_hours"] / 24.0
    if end < due:
        return Finding(rid, Status.NOT_MET, evidence=[started, EvidenceItem(
            why=f"re-assessment due {t['reassess_hours']:g} h after the first dose "
                f"(day {due:.1f})")])
    pre = latest_until(course, "ferritin", t0)
    now = latest_until(course, "ferritin", end)
    if pre is None:
        return Finding(rid, Status.NOT_EVALUABLE, evidence=[started],
                       missing=["a ferritin drawn before the first IEC-HS-directed dose"])
    if now is None or now.day <= t0:
        return Finding(rid, Status.NOT_EVALUABLE, evidence=[started, pre.evidence(
            "ferritin before therapy")], missing=["draw ferritin now (after therapy began)"])
    change = now.value / pre.value if pre.value > 0 else math.inf
    late = end >= t0 + t["falling_window_days"]
    need = 1.0 - t["falling_fraction"]
    not_improving = change > need if late else change >= 1.0
    if change < 1.0:
        why = f"{(1 - change) * 100:.0f} % fall since therapy began"
    else:
        why = f"{(change - 1) * 100:.0f} % higher than before therapy"
    if not_improving and late:
        why += (f"; a fall of >= {t['falling_fraction'] * 100:g} % is expected within "
                f"{t['falling_window_days']:g} days")
    elif not_improving:
        why += f"; no fall {t['reassess_hours']:g} h after the first dose"
    ev = [started, pre.evidence("ferritin before therapy"), now.evidence(why)]
    for analyte, direction in OTHER_LABS:
        a0, a1 = latest_until(course, analyte, t0), latest_until(course, analyte, end)
        if a0 is None or a1 is None or a1.day <= t0:
            continue
        worse = (a1.value - a0.value) * direction > 0
        ev.append(a1.evidence(f"{'worse' if worse else 'better or unchanged'} than before "
                              f"therapy ({a0.value:g} on day {a0.day:g})"))
    return Finding(rid, Status.MET if not_improving else Status.NOT_MET, evidence=ev,
                   extra={"therapy_start_day": t0, "ferritin_ratio": round(change, 3)})


THERAPY = DailyRule(THERAPY_RULE, _therapy_finding)
evaluate_therapy_response = THERAPY.evaluate  # the rule's evaluator by name (tests call it)

RULES: tuple[RuleSpec, ...] = (THERAPY.spec(),)

"""Prolonged grade >= 3 cytopenia past the landmark day (criteria §6.2 [DESIGN])."""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Thresholds,
)
from core.rules.ctcae import Series
from core.rules.cytopenia.counting import VERSION, C, D, censor_at, th
from core.rules.cytopenia.replay import (
    Cache,
    cached,
    cached_evidence,
    end_index,
    full_series,
    rule_spec,
)
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES

PROLONGED_THRESHOLDS = (
    th("landmark_day", 30, "day", D,
       "results after this day count (28 = tisa-cel JULIET, 30 = ICAHT split)", ">"),
    th("anc_below", 1.0, "10^9/L", C, "CTCAE grade >= 3 neutropenia", "<"),
    th("platelets_below", 50, "10^9/L", C, "CTCAE grade >= 3 thrombocytopenia", "<"),
    th("hemoglobin_below", 8.0, "g/dL", C, "CTCAE grade >= 3 anaemia", "<"),
    th("min_values", 2, "results", D, "consecutive results below needed", ">="),
)
_LINEAGES = (("anc", "anc_below"), ("platelets", "platelets_below"),
             ("hemoglobin", "hemoglobin_below"))


def _unit(analyte: str) -> str:
    unit = ANALYTES[analyte].unit
    return f"x {unit}" if unit.startswith("10^") else unit


@dataclass(frozen=True)
class _Lineage:
    """One lineage's results after the landmark day, built once per course: the results
    known at any instant are s[i0:i1] (`end_index`)."""

    analyte: str
    s: Series  # every result of the analyte in the course
    i0: int  # index of the first result after the landmark day
    below: list[bool]  # whether each result is below the lineage's cut
    why: str  # evidence text of a result below the cut


def _lineages(course: Course, t: Thresholds, cache: Cache) -> list[_Lineage]:
    landmark = int(t["landmark_day"])

    def build() -> list[_Lineage]:
        out = []
        for analyte, key in _LINEAGES:
            s = full_series(course, analyte)
            i0 = 0 if s.src is None else bisect.bisect_left(s.src.days, landmark + 1)
            out.append(_Lineage(analyte, s, i0, (s.value < t[key]).tolist(),
                                f"< {t[key]:g} {_unit(analyte)} after day {landmark}"))
        return out

    return cached(cache, "lineages", build)


def _prolonged_cytopenia(course: Course, t: Thresholds, cache: Cache, now: float,
                         as_of: float) -> Finding:
    rule_id = "prolonged_cytopenia"
    landmark = int(t["landmark_day"])
    extra: dict[str, object] = {"landmark_day": landmark}
    if not math.isfinite(now) or math.floor(now) <= landmark:
        extra["window_opens_day"] = landmark + 1
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    need = int(t["min_values"])
    last = math.floor(now)
    cens, cens_kind = censor_at(course, as_of)
    if cens_kind is not None:
        extra["censored"] = {"event": cens_kind, "day": cens}
        last = min(last, math.floor(cens))
        if last <= landmark:  # censored before any result could count
            return Finding(rule=rule_id, status=Status.NOT_MET, extra=extra, evidence=[
                EvidenceItem(why=f"censored: {cens_kind.replace('_', ' ')} on day "
                                 f"{math.floor(cens)}, before the landmark day {landmark}",
                             analyte=cens_kind, day=cens)])
    met: dict[str, float] = {}
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    lineages: dict[str, str] = {}
    for ln in _lineages(course, t, cache):
        s, i0, analyte = ln.s, ln.i0, ln.analyte
        i1 = max(i0, end_index(s, last, as_of))
        run = 0  # the window's trailing run of results below the cut
        while run < i1 - i0 and ln.below[i1 - 1 - run]:
            run += 1
        if run >= need:
            met[analyte] = float(math.floor(s.day[i1 - run]))
            lineages[analyte] = "met"
            evidence += [cached_evidence(cache, s, i, ln.why) for i in range(i1 - run, i1)]
        elif i1 > i0 and run == 0:
            lineages[analyte] = "not_met"
            evidence.append(cached_evidence(cache, s, i1 - 1,
                                            "latest result, not in the grade 3 range"))
        else:
            lineages[analyte] = "not_evaluable"
            what = "a repeat" if i1 > i0 else "a"
            missing.append(f"{what} {ANALYTES[analyte].name} result after day {landmark}")
    extra["lineages"] = lineages
    if met:
        since = min(met.values())
        return Finding(rule=rule_id, status=Status.MET, since_day=since, evidence=evidence,
                       missing=missing, extra=extra, episode_key=f"since-day-{int(since)}")
    if cens_kind is not None:  # the censored window is closed: nothing more to ask for
        missing = []
    status = Status.NOT_EVALUABLE if missing else Status.NOT_MET
    return Finding(rule=rule_id, status=status, evidence=evidence, missing=missing,
                   extra=extra)


RULES: tuple[RuleSpec, ...] = (
    rule_spec(Rule(
        id="prolonged_cytopenia", title="Prolonged grade >= 3 cytopenia past the landmark day",
        version=VERSION,
        citation=Citation("Dashboard rule after ICAHT/JULIET definitions",
                          "criteria.md §6.2 (recommended dashboard rule) and §8"),
        evidence=D, severity=Severity.WARNING, thresholds=PROLONGED_THRESHOLDS,
        inputs=("anc", "platelets", "hemoglobin"), short_name="Prolonged cytopenia",
        choices=(
            "Default landmark day 30 (ICAHT split); 28 for tisa-cel style reporting via "
            "site config.",
            "'After the landmark' = calendar day > landmark_day.",
            "Met while the latest min_values (2) consecutive results of a lineage are below "
            "its cut (ongoing); a result above clears it, so a return starts a new episode.",
            "Transfusions are not taken into account for Hb and platelets.",
            "Censoring as the ICAHT counting rules (§6.1): results after the day of the first "
            "progression, next_therapy or death event are not counted (that day included); "
            "the status is the one reached by the censoring day, with extra 'censored'.",
        ),
        description="ANC < 1.0, platelets < 50 or Hb < 8.0 on >= 2 consecutive results "
                    "after the landmark day.",
    ), _prolonged_cytopenia),
)

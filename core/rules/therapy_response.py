"""therapy_response: IEC-HS labs not improving after IEC-HS-directed therapy (design.md,
criteria.md §1.5 and §11): the point where published practice re-assesses and may escalate.

It reads the IEC-HS course: a documented IEC-HS episode, else the iec_hs screen's met stretch.
"""

from __future__ import annotations

import math
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
    status_where,
)
from core.rules.frames import Columns, Ward
from core.rules.series import take
from core.rules.tables import NONE
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


def active_iec_hs(ward: Ward, iec_hs: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per course-day: the onset day of the IEC-HS episode active at its end (NaN: none) and
    where it comes from: the last documented IEC-HS episode still open then, else the iec_hs
    screen's met stretch (its since_day; `iec_hs` is that rule's rows)."""
    onset = np.full(ward.size, np.nan)
    source = np.full(ward.size, "", dtype=object)
    ep = ward.episodes
    keys, end = ward.days["key"], ward.days["until"]
    documented = (ep["kind"] == "IEC-HS") & np.isin(
        ep.get("origin"), np.array([None, "documented"], dtype=object))
    resolved, began = ep["resolved_day"], ep["onset_day"]
    for i in np.flatnonzero(documented):  # in onset order: the last open one wins
        still_open = (keys == ep["key"][i]) & (began[i] <= end) & ~(resolved[i] <= end)
        onset[still_open] = began[i]
        source[still_open] = "documented IEC-HS episode"
    screened = np.isnan(onset) & (np.asarray(iec_hs["status"], dtype=object)
                                  == Status.MET.value)
    onset[screened] = np.asarray(iec_hs["since_day"], dtype=float)[screened]
    source[screened] = "iec_hs screen met"
    return onset, source


def judge(ward: Ward, t: Thresholds, inputs: Inputs) -> Columns:
    """Per course-day: the active IEC-HS onset, the first IEC-HS-directed dose since, and
    the ferritins before it and now (positions in ward.labs / ward.treatments)."""
    onset, source = active_iec_hs(ward, inputs.frames["iec_hs"])
    end = ward.days["until"]
    dose = ward.first_dose(IEC_HS_DIRECTED, np.floor(onset), end)
    t0 = take(ward.treatments.day, dose, np.nan)
    out: dict[str, Any] = {"onset": onset, "source": source, "dose": dose, "t0": t0}
    for analyte in ("ferritin", *(a for a, _ in OTHER_LABS)):  # read where a dose was given
        out[f"{analyte}_pre"] = ward.latest(analyte, t0)
        out[f"{analyte}_now"] = ward.latest(analyte, end)
    pre, now = out["ferritin_pre"], out["ferritin_now"]
    value = ward.labs["value"]
    before, after = take(value, pre, np.nan), take(value, now, np.nan)
    due = end >= t0 + t["reassess_hours"] / 24.0  # False without a dose (t0 NaN)
    measured = (pre >= 0) & (take(ward.labs.day, now, np.nan) > t0)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(before > 0, after / before, np.inf)
    late = end >= t0 + t["falling_window_days"]
    not_improving = np.where(late, change > 1.0 - t["falling_fraction"], change >= 1.0)
    out["change"] = change
    out["status"] = status_where(due & measured & not_improving, ~due | measured)
    return out


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The finding of one course-day: the episode, the first dose, and ferritin before and
    after it, the other IEC-HS labs as evidence."""
    rid = THERAPY_RULE.id
    onset, source, dose = row["onset"], row["source"], int(row["dose"])
    if onset != onset:
        return Finding(rid, Status.NOT_MET, evidence=[EvidenceItem(
            why="no active IEC-HS episode (documented or screened)")])
    if dose == NONE:
        return Finding(rid, Status.NOT_MET, evidence=[EvidenceItem(
            why=f"{source} since day {math.floor(onset)}; no IEC-HS-directed therapy yet")])
    t0, drug = float(row["t0"]), str(ward.treatments["drug"][dose])
    started = EvidenceItem(why=f"first IEC-HS-directed dose: {drug}", analyte=drug, day=t0)
    due = t0 + t["reassess_hours"] / 24.0
    end = row["until"]
    if end < due:
        return Finding(rid, Status.NOT_MET, evidence=[started, EvidenceItem(
            why=f"re-assessment due {t['reassess_hours']:g} h after the first dose "
                f"(day {due:.1f})")])
    pre, now = int(row["ferritin_pre"]), int(row["ferritin_now"])
    if pre == NONE:
        return Finding(rid, Status.NOT_EVALUABLE, evidence=[started],
                       missing=["a ferritin drawn before the first IEC-HS-directed dose"])
    before = ward.lab_evidence(pre, "ferritin before therapy")
    if now == NONE or ward.labs.day[now] <= t0:
        return Finding(rid, Status.NOT_EVALUABLE, evidence=[started, before],
                       missing=["draw ferritin now (after therapy began)"])
    change = float(row["change"])
    status = Status(row["status"])
    late = end >= t0 + t["falling_window_days"]
    if change < 1.0:
        why = f"{(1 - change) * 100:.0f} % fall since therapy began"
    else:
        why = f"{(change - 1) * 100:.0f} % higher than before therapy"
    if status is Status.MET and late:
        why += (f"; a fall of >= {t['falling_fraction'] * 100:g} % is expected within "
                f"{t['falling_window_days']:g} days")
    elif status is Status.MET:
        why += f"; no fall {t['reassess_hours']:g} h after the first dose"
    ev = [started, before, ward.lab_evidence(now, why)]
    for analyte, direction in OTHER_LABS:
        a0, a1 = int(row[f"{analyte}_pre"]), int(row[f"{analyte}_now"])
        if a0 == NONE or a1 == NONE or ward.labs.day[a1] <= t0:
            continue
        worse = (ward.labs["value"][a1] - ward.labs["value"][a0]) * direction > 0
        ev.append(ward.lab_evidence(a1, f"{'worse' if worse else 'better or unchanged'} than "
                                        f"before therapy ({ward.labs['value'][a0]:g} on day "
                                        f"{ward.labs.day[a0]:g})"))
    return Finding(rid, status, evidence=ev,
                   extra={"therapy_start_day": t0, "ferritin_ratio": round(change, 3)})


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(THERAPY_RULE, judge=judge, explain=explain, reads=("iec_hs",)),
)

"""Prolonged grade >= 3 cytopenia past the landmark day (criteria §6.2 [DESIGN])."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Status,
    Thresholds,
    status_where,
)
from core.rules.cytopenia.counting import VERSION, C, D, th
from core.rules.cytopenia.readers import censoring
from core.rules.frames import Columns, Ward
from core.rules.series import Series, take
from core.rules.tables import NONE
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


def _trailing_run(below: np.ndarray, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
    """The number of results below the cut at the end of each window [i0, i1)."""
    idx = np.arange(len(below))
    last_above = np.maximum.accumulate(np.where(below, -1, idx))
    run_at = np.r_[idx - last_above, 0]  # results below ending at each result; 0 past them
    return np.where(i1 > i0, np.minimum(run_at[np.maximum(i1 - 1, 0)], i1 - i0), 0)


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per grid row and lineage: the trailing run of results below the lineage's cut after
    the landmark day, known at the row's end; met when a run reaches min_values."""
    grid = ward.days
    key, as_of = grid["key"], grid["end"]
    now = ward.now()
    landmark, need = int(t["landmark_day"]), int(t["min_values"])
    opened = np.isfinite(now) & (np.floor(np.where(np.isfinite(now), now, 0)) > landmark)
    cens, cens_event = censoring(ward, key, as_of)
    censored = ~np.isnan(cens)
    last = np.fmin(np.floor(np.where(opened, now, 0)), np.floor(cens))
    out: dict[str, Any] = {"censored_day": cens, "censored_event": cens_event}
    since = np.full(len(key), np.inf)
    any_missing = np.zeros(len(key), dtype=bool)
    for analyte, cut in _LINEAGES:
        rows = Series.lab(ward, analyte).dated()
        i0, i1 = rows.window(key, float(landmark + 1), last, as_of)
        run = _trailing_run(rows.value < t[cut], i0, i1)
        met = run >= need
        state = status_where(met, (i1 > i0) & (run == 0))
        # the run's first result, or the latest (NONE: no result)
        first = np.where(i1 > i0, np.where(met, i1 - run, i1 - 1), NONE)
        out[f"{analyte}_state"] = state
        out[f"{analyte}_first"] = rows.frame_pos(first)
        out[f"{analyte}_count"] = np.where(met, run, 1)
        out[f"{analyte}_results"] = i1 - i0
        since = np.where(met, np.minimum(since, np.floor(take(rows.day, first, np.inf))), since)
        any_missing |= state == "not_evaluable"
    early_censor = censored & (last <= landmark)
    # censored: the status reached by then; else not evaluable while a lineage lacks results
    met = opened & ~early_censor & np.isfinite(since)
    status = status_where(met, opened & (censored | ~any_missing))
    return {"status": status, "since_day": np.where(met, since, np.nan),
                         "opened": opened, "early_censor": early_censor, **out}


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    rule_id = "prolonged_cytopenia"
    landmark = int(t["landmark_day"])
    extra: dict[str, object] = {"landmark_day": landmark}
    if not row["opened"]:
        extra["window_opens_day"] = landmark + 1
        return Finding(rule=rule_id, status=Status.NOT_EVALUABLE, extra=extra)
    cens_kind = str(row["censored_event"])
    if cens_kind:
        cens = float(row["censored_day"])
        extra["censored"] = {"event": cens_kind, "day": cens}
        if row["early_censor"]:  # censored before any result could count
            return Finding(rule=rule_id, status=Status.NOT_MET, extra=extra, evidence=[
                EvidenceItem(why=f"censored: {cens_kind.replace('_', ' ')} on day "
                                 f"{int(np.floor(cens))}, before the landmark day {landmark}",
                             analyte=cens_kind, day=cens)])
    evidence: list[EvidenceItem] = []
    missing: list[str] = []
    lineages: dict[str, str] = {}
    for analyte, cut in _LINEAGES:
        state, p = row[f"{analyte}_state"], int(row[f"{analyte}_first"])
        lineages[analyte] = state
        if state == "met":
            why = f"< {t[cut]:g} {_unit(analyte)} after day {landmark}"
            evidence += [ward.lab_evidence(p + i, why)
                         for i in range(int(row[f"{analyte}_count"]))]
        elif state == "not_met":
            evidence.append(ward.lab_evidence(p, "latest result, not in the grade 3 range"))
        else:
            what = "a repeat" if row[f"{analyte}_results"] else "a"
            missing.append(f"{what} {ANALYTES[analyte].name} result after day {landmark}")
    extra["lineages"] = lineages
    status = Status(row["status"])
    if cens_kind and status is not Status.MET:  # the censored window is closed: nothing to ask
        missing = []
    return Finding(rule=rule_id, status=status, evidence=evidence, missing=missing,
                   extra=extra)


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(Rule(
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
    ), judge=judge, explain=explain, by_instant=True),
)

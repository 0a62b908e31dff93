"""The finding of one judged IEC-HS course-day: each feature's status, the values that
decided it (evidence), what is missing, the rapid-rise and haemophagocytosis context, and the
treatment tiers as context when the screen is met."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter
from typing import Any

from core.rules.base import EvidenceItem, Finding, Status, Thresholds
from core.rules.frames import Ward
from core.rules.iec_hs.rule import CYTOPENIA_LINEAGES, MISSING, RULE, TREATMENT_CONTEXT
from core.rules.iec_hs.screen import BEFORE_WINDOW
from core.rules.tables import NONE

Row = Mapping[str, Any]


@dataclass
class Feature:
    status: Status
    evidence: list[EvidenceItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def ferritin_feature(ward: Ward, row: Row, t: Thresholds) -> Feature:
    f = int(row["ferritin_latest"])
    status = Status(row["ferritin"])
    if f == NONE:
        return Feature(status, missing=[MISSING["ferritin"]])
    k_uln, k_base = t["ferritin_x_uln"], t["ferritin_x_baseline"]
    if status is Status.MET:
        ev = []
        if row["ferritin_above_uln"]:
            limit = k_uln * ward.lab_limits[1][f]
            ev.append(ward.lab_evidence(f, f"> {k_uln:g} x ULN ({limit:g})"))
        if row["ferritin_above_base"]:
            b = int(row["ferritin_base"])
            ev.append(ward.lab_evidence(f, f"> {k_base:g} x baseline ({ward.labs['value'][b]:g}, "
                                           f"day {ward.labs.day[b]:g})"))
        return Feature(status, ev)
    if status is Status.NOT_EVALUABLE:
        return Feature(status, [ward.lab_evidence(f, f"not above {k_uln:g} x ULN")],
                       [MISSING["ferritin_baseline"]])
    return Feature(status, [ward.lab_evidence(
        f, f"<= {k_uln:g} x ULN and <= {k_base:g} x baseline")])


def timing_feature(row: Row) -> Feature:
    status, why = Status(row["timing"]), row["timing_why"]
    if why is None:
        return Feature(status, missing=[MISSING["crs"]])
    numbers = {name: int(row[f"timing_{name}"]) for _, name, _, _ in Formatter().parse(why)
               if name}  # the whole-number values the text names
    return Feature(status, [EvidenceItem(why=why.format(**numbers), analyte="CRS",
                                         day=row["timing_day"])])


def transaminase_feature(ward: Ward, row: Row, t: Thresholds) -> Feature:
    status = Status(row["transaminase"])
    ev = []
    for a in ("ast", "alt"):
        v = int(row[f"{a}_latest"])
        if v == NONE or (status is Status.MET and not row[f"{a}_met"]):
            continue
        value, b = ward.labs['value'][v], int(row[f"{a}_base"])
        if b != NONE:
            base = ward.labs["value"][b]
            why, k = (f"{value / base:.1f} x baseline ({base:g}, abnormal)",
                      t["transaminase_x_baseline"])
        else:
            uln = ward.lab_limits[1][v]
            why, k = f"{value / uln:.1f} x ULN ({uln:g})", t["transaminase_x_uln"]
        ev.append(ward.lab_evidence(v, f"{why} {'>' if row[f'{a}_met'] else '<='} {k:g}"))
    return Feature(status, ev, [MISSING["ast_alt"]] if status is Status.NOT_EVALUABLE else [])


def fibrinogen_feature(ward: Ward, row: Row, t: Thresholds) -> Feature:
    f, status = int(row["fibrinogen_latest"]), Status(row["fibrinogen"])
    if f == NONE:
        return Feature(status, missing=[MISSING["fibrinogen"]])
    low = t["fibrinogen_low"]
    if row["fibrinogen_below_lln"]:
        why = f"< LLN ({ward.lab_limits[0][f]:g} mg/dL)"
    else:
        why = f"< {low:g} mg/dL" if status is Status.MET else f">= {low:g} mg/dL and >= LLN"
    return Feature(status, [ward.lab_evidence(f, why)])


def cytopenia_feature(ward: Ward, row: Row, t: Thresholds) -> Feature:
    status = Status(row["cytopenia"])
    if status is Status.NOT_MET:
        return Feature(status, [EvidenceItem(
            why=f"no new or worsening cytopenia (vs the best count of the "
                f"{t['cytopenia_lookback_days']:g} days before, from day "
                f"{t['cytopenia_reference_day']:g})")])
    ev = [ward.lab_evidence(int(row[f"{a}_latest"]), (
        f"new or worsening cytopenia: CTCAE grade {int(row[f'{a}_grade'])}, best grade "
        f"{int(row[f'{a}_best'])} in the {t['cytopenia_lookback_days']:g} days before"))
        for a in CYTOPENIA_LINEAGES if row[f"{a}_cytopenia"] == Status.MET.value]
    return Feature(status, ev, [MISSING["counts"]] if status is Status.NOT_EVALUABLE else [])


def explain(ward: Ward, row: Row, t: Thresholds) -> Finding:
    """The finding of one judged course-day."""
    if row["outside"]:
        why = (f"the screen runs from day {t['window_start_day']:g}"
               if row["outside"] == BEFORE_WINDOW else
               f"after day {t['window_end_day']:g} the screen runs only while ferritin is "
               f"raised")
        return Finding(RULE.id, Status.NOT_MET, evidence=[EvidenceItem(why=why)],
                       extra={"outside_window": True})
    status = Status(row["status"])
    features = {
        "ferritin": ferritin_feature(ward, row, t),
        "timing": timing_feature(row),
        "transaminase": transaminase_feature(ward, row, t),
        "fibrinogen": fibrinogen_feature(ward, row, t),
        "cytopenia": cytopenia_feature(ward, row, t),
    }
    ev: list[EvidenceItem] = []
    missing: list[str] = []
    for name, feat in features.items():
        ev += feat.evidence
        if status is not Status.MET or name in ("ferritin", "timing"):
            missing += [m for m in feat.missing if m not in missing]
    rapid = {1: True, 0: False, -1: None}[int(row["rapid"])]
    if rapid:
        f, r = int(row["ferritin_latest"]), int(row["rapid_ref"])
        ev.append(ward.lab_evidence(
            f, f"rapid rise: {ward.labs['value'][f] / ward.labs['value'][r]:.1f}-fold since day "
               f"{ward.labs.day[r]:g} (ferritin_kinetics default)"))
    h = int(row["hemophagocytosis"])
    hemo = None
    if h != NONE:
        hemo = float(ward.observations["value_num"][h]) >= 1  # 'yes' (Obs.is_yes)
        ev.append(ward.observation_evidence(h, "haemophagocytosis reported" if hemo
                                            else "no haemophagocytosis on marrow/tissue"))
    else:
        missing.append(MISSING["hemophagocytosis"])
    extra: dict[str, Any] = {
        "features": {k: str(f.status) for k, f in features.items()},
        "features_met": [k for k, f in features.items() if f.status is Status.MET],
        "rapid_rise": rapid,
        "hemophagocytosis": "not_evaluable" if hemo is None else ("met" if hemo else "not_met"),
        "iec_hs_grade": "not evaluable (needs clinical inputs, §1.4)",
    }
    if status is Status.MET:
        extra.update(TREATMENT_CONTEXT)
    return Finding(RULE.id, status, evidence=ev, missing=missing, extra=extra)


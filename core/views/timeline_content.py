"""What the patient timeline shows, before any drawing: its panels and analytes, the rule
thresholds drawn as lines (values from the rules' own Threshold rows, marked provisional by
their evidence tag), the CRS / ICANS / IEC-HS windows and the treatments of the strip.

core.views.figures draws them; the page's text alternative (dashboard/chart_text.py) lists
them in words and tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from core.vocabulary.course import Course
from core.vocabulary.observations import DRUGS, DrugClass
from core.vocabulary.units import ANALYTES

DEFAULT_RANGE = (-7.0, 30.0)


MAX_DAY = 100.0


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    analytes: tuple[str, ...]
    log: bool = False
    secondary: str | None = None  # analyte drawn on a right-hand axis (other unit)
    optional: bool = False  # shown only when the patient has results for it


PANELS: tuple[Panel, ...] = (
    Panel("ferritin", "Ferritin (ng/mL, log scale)", ("ferritin",), log=True),
    Panel("fibrinogen", "Fibrinogen (mg/dL)", ("fibrinogen",)),
    Panel("transaminases", "AST and ALT (U/L)", ("ast", "alt")),
    Panel("liver", "Bilirubin (mg/dL, left) and LDH (U/L, right)", ("bilirubin", "ldh"),
          secondary="ldh"),
    Panel("neutrophils", "ANC, WBC, ALC (×10⁹/L)", ("anc", "wbc", "alc")),
    Panel("platelets", "Platelets (×10⁹/L)", ("platelets",)),
    Panel("hemoglobin", "Haemoglobin (g/dL)", ("hemoglobin",)),
    Panel("inflammation", "CRP (mg/L, left) and IL-6 (pg/mL, right)", ("crp", "il6"),
          secondary="il6", optional=True),
)


ON_DEMAND = frozenset({"wbc", "alc"})  # off unless asked for


TIMELINE_ANALYTES: tuple[str, ...] = tuple(a for p in PANELS for a in p.analytes)


DEFAULT_ANALYTES: frozenset[str] = frozenset(TIMELINE_ANALYTES) - ON_DEMAND


@dataclass(frozen=True)
class LineSpec:
    """A rule threshold drawn on an analyte's panel: which rule row, and how to read it."""

    analyte: str
    rule_id: str
    key: str
    label: str
    per_uln: bool = False  # the value is a multiple of the result's upper reference limit


THRESHOLD_LINES: tuple[LineSpec, ...] = (
    LineSpec("ferritin", "cartox_hlh", "entry_ferritin", "Neelapu HLH/MAS entry"),
    LineSpec("fibrinogen", "iec_hs", "fibrinogen_low", "IEC-HS low fibrinogen"),
    LineSpec("ast", "iec_hs", "transaminase_x_uln", "IEC-HS AST", per_uln=True),
    LineSpec("alt", "iec_hs", "transaminase_x_uln", "IEC-HS ALT", per_uln=True),
    LineSpec("anc", "icaht_early", "cut", "ICAHT neutropenic day"),
    LineSpec("anc", "icaht_early", "deep_cut", "ICAHT profound"),
    LineSpec("platelets", "ticaht_early", "cut", "T-ICAHT"),
    LineSpec("platelets", "ticaht_early", "deep_cut", "T-ICAHT severe"),
    LineSpec("hemoglobin", "supportive_thresholds", "hemoglobin_min", "IEC-HS supportive"),
)


# Drug classes shown in the treatment strip (antipyretics are charted daily and would hide
# the rest); order = top to bottom.
TREATMENT_CLASSES = (DrugClass.ANTI_CYTOKINE, DrugClass.STEROID, DrugClass.HLH_DIRECTED,
                     DrugClass.TRANSFUSION, DrugClass.OTHER)


_COUNT_UNIT = "10^9/L"


@dataclass(frozen=True)
class ThresholdLine:
    analyte: str
    y: float
    label: str
    rule_id: str
    key: str
    provisional: bool


def format_value(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _uln(course: Course, analyte: str) -> float | None:
    """The upper reference limit of the patient's latest result (the analyte's default)."""
    s = course.labs[course.labs["analyte"] == analyte]
    highs = pd.to_numeric(s.sort_values("day")["ref_high"], errors="coerce").dropna()
    if len(highs):
        return float(highs.iloc[-1])
    return ANALYTES[analyte].ref_high


def threshold_lines(course: Course, analytes: Iterable[str] | None = None,
                    overrides: Mapping[str, Mapping[str, float]] | None = None,
                    ) -> list[ThresholdLine]:
    """The rule thresholds to draw, with values from the catalogue's Threshold rows.

    `overrides` are the site's threshold overrides (rule id -> key -> value), so the lines
    show what actually runs.
    """
    from core.rules.catalog import spec_by_id

    wanted = set(TIMELINE_ANALYTES if analytes is None else analytes)
    out = []
    for ls in THRESHOLD_LINES:
        if ls.analyte not in wanted:
            continue
        rule = spec_by_id(ls.rule_id).rule
        t = next(t for t in rule.thresholds if t.key == ls.key)
        value = float((overrides or {}).get(ls.rule_id, {}).get(ls.key, t.value))
        unit = ANALYTES[ls.analyte].unit
        if ls.per_uln:
            uln = _uln(course, ls.analyte)
            if uln is None:
                continue
            y = value * uln
            text = f"{ls.label} {value:g} × ULN ({format_value(y)} {unit})"
        else:
            y = value
            text = f"{ls.label} {t.op} {format_value(value)}".replace("  ", " ")
            per_ul = format_value(value * 1000)
            text += f" {unit}" if unit != _COUNT_UNIT else f" ×10⁹/L ({per_ul}/µL)"
        if t.is_provisional:
            text += " · provisional"
        out.append(ThresholdLine(ls.analyte, y, text, ls.rule_id, ls.key, t.is_provisional))
    return out


def _episode_end(onset: float, resolved: float | None, last_day: float) -> tuple[float, bool]:
    if resolved is not None and not pd.isna(resolved):
        return float(resolved), False
    return max(onset + 1.0, last_day), True


def episode_rows(course: Course, suggested: Sequence[Mapping] | None = None) -> list[dict]:
    """Documented episodes, then suggested ones: kind, grade, onset, end, origin, ongoing."""
    rows = []
    labs_last = float(course.labs["day"].max()) if len(course.labs) else 0.0
    last = labs_last if math.isfinite(labs_last) else 0.0
    for ep in course.episodes.itertuples():
        end, ongoing = _episode_end(ep.onset_day, ep.resolved_day, last)
        rows.append({"kind": ep.kind, "grade": ep.grade, "onset_day": float(ep.onset_day),
                     "end_day": end, "ongoing": ongoing,
                     "origin": ep.origin or "documented"})
    for s in suggested or ():
        end, ongoing = _episode_end(s["onset_day"], s.get("resolved_day"), last)
        rows.append({"kind": s["kind"], "grade": s.get("grade"),
                     "onset_day": float(s["onset_day"]), "end_day": end, "ongoing": ongoing,
                     "origin": "suggested"})
    return rows


def grade_text(grade: float | None) -> str:
    if grade is None or (isinstance(grade, float) and math.isnan(grade)):
        return ""  # a screen without a grade (IEC-HS suggested by its rule)
    return f"grade {int(grade)}"


def treatment_rows(course: Course) -> pd.DataFrame:
    """Treatments shown in the strip, with a display name (antipyretics left out)."""
    tr = course.treatments
    if tr.empty:
        return tr.assign(name=pd.Series(dtype="object"))
    keep = [d for d, (_, classes) in DRUGS.items() if classes & set(TREATMENT_CLASSES)]
    tr = tr[tr["drug"].isin(keep)].copy()
    tr["name"] = [DRUGS[d][0] for d in tr["drug"]]
    return tr


def panels_for(course: Course, analytes: set[str]) -> list[Panel]:
    present = set(course.labs["analyte"].unique()) if len(course.labs) else set()
    out = []
    for p in PANELS:
        shown = [a for a in p.analytes if a in analytes]
        if not shown or (p.optional and not present & set(shown)):
            continue
        out.append(p)
    return out

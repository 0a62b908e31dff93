"""HScore (Fardet 2014, criteria.md §4): points, breakdown and probability."""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable

import numpy as np

from core.rules.base import (
    Citation,
    EvidenceItem,
    Finding,
    Rule,
    RuleSpec,
    Severity,
    Threshold,
    Thresholds,
)
from core.rules.hlh.criteria import (
    C2,
    MET,
    NE,
    NOT_MET,
    Builder,
    Cells,
    D,
    DayFindings,
    Input,
    Reader,
    daily_rule,
    day_findings,
)
from core.rules.reading import ObsSeries
from core.rules.stretches import thresholds_key
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES

# mg/dL per mmol/L of triglycerides (criteria §9, triolein basis: 88.57), from the catalogue.
TG_MG_DL_PER_MMOL = ANALYTES["triglycerides"].units["mmol/l"]
# Converting mg/dL back to mmol/L leaves float noise (1.49 mmol/L comes back as
# 1.4899999999999998): rounding to 6 decimals removes it and nothing a lab reports.
_TG_MMOL_DECIMALS = 6


def tg_mmol(mg_dl: float) -> float:
    """Triglycerides in mmol/L (the unit HScore bins them in) from canonical mg/dL."""
    return round(mg_dl / TG_MG_DL_PER_MMOL, _TG_MMOL_DECIMALS)

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
    version="1.1",
    citation=Citation(
        source="Fardet et al., Arthritis Rheumatol 2014;66(9):2613-2620; table reproduced in "
               "Case Rep Rheumatol 2017:5304180 Table 3",
        section="HScore variables and probability table; criteria.md §4.1-4.3",
        doi="10.1002/art.38690",
    ),
    evidence=D,  # points, bins and cut-off are [C2]; the logistic fit (probability_fit) is ours
    severity=Severity.INFO,
    scored=True,
    short_name="HScore", syndrome="listed",
    thresholds=(
        _pts("immunosuppression_points", 18, "known underlying immunosuppression"),
        Threshold("temp_mid_c", 38.4, "°C", C2, "temperature from this (inclusive): 33 points",
                  ">="),
        Threshold("temp_high_c", 39.4, "°C", C2, "temperature above this: 49 points", ">"),
        _pts("temp_mid_points", 33, "temperature 38.4-39.4 °C"),
        _pts("temp_high_points", 49, "temperature > 39.4 °C"),
        Threshold("temp_window_hours", 24, "hours", D,
                  "temperature item: the highest temperature in this many hours up to the "
                  "as-of instant (inclusive)", "<="),
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
        Threshold("tg_mid", 1.5 * TG_MG_DL_PER_MMOL, "mg/dL", C2,
                  "triglycerides from 1.5 mmol/L (x 88.57 = 132.855 mg/dL; compared in mmol/L)",
                  ">="),
        Threshold("tg_high", 4.0 * TG_MG_DL_PER_MMOL, "mg/dL", C2,
                  "triglycerides above 4.0 mmol/L (x 88.57 = 354.28 mg/dL; compared in mmol/L)",
                  ">"),
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
        "in the 24 h up to the as-of instant (criteria §4.1 [DESIGN]; a value exactly 24 h old "
        "counts, an older one does not; equal highs: the earliest), missing when none was "
        "logged in that window. A replayed day's as-of instant is its end.",
        "Score = points of the items known; missing items are listed and the score is a lower "
        "bound: met when it reaches the cut-off, not met only when even the missing items' "
        "maximum points could not reach it, else not evaluable (score_max in extra).",
        "Cut-off: a score of 169 or more counts as above the cut-off (above_169).",
        "Triglycerides are binned in mmol/L as the paper does: the stored mg/dL value is "
        "divided by 88.57 (criteria §9), rounded to 6 decimals only to drop float noise, then "
        "< 1.5 -> 0, 1.5 to 4.0 -> 44, > 4.0 -> 64 (so 4.0 mmol/L scores 44 and the rounded "
        "mg/dL edges of §4.1, 132.7 / 354, are not used: 132.7 mg/dL = 1.498 mmol/L scores 0, "
        "354.3 mg/dL = 4.0002 mmol/L scores 64). The tg_mid / tg_high thresholds are declared "
        "in canonical mg/dL (1.5 and 4.0 mmol/L x 88.57) and converted back for the comparison.",
        "Probability: linear interpolation on the published table, held at 1 % below 100 and "
        "99 % from 240 (text '< 1 %' at <= 90, '> 99 %' at >= 250); the logistic fit of §4.2 "
        "[DESIGN] is reported beside it as probability_fit.",
        "Known immunosuppression is a clinician-entered yes/no (whether lymphodepletion or "
        "steroids count is not defined by the score).",
    ),
    description="HScore 0-337 for reactive haemophagocytic syndrome; context only after CAR-T.",
)


@functools.lru_cache(maxsize=512)
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


class WindowMax(Input):
    """The temperature input: as of an instant `end`, the position of the highest value
    logged in [end - window, end] (the earliest of equal highs; a value without a number
    counts as lowest), or -1 when none was logged in the window."""

    __slots__ = ("keys", "window")

    def __init__(self, s: ObsSeries | None, window_days: float) -> None:
        super().__init__(None if s is None else s.days)
        nums = np.asarray([] if s is None else s.nums, dtype=float)
        self.keys = np.where(np.isnan(nums), -np.inf, nums)
        self.window = window_days

    def _best(self, lo: int, hi: int) -> int:
        return -1 if lo >= hi else lo + int(np.argmax(self.keys[lo:hi]))

    def at(self, end: float) -> int:
        return self._best(bisect.bisect_left(self.days, end - self.window),
                          bisect.bisect_right(self.days, end))

    def over(self, ends: np.ndarray) -> list[int]:
        days = np.asarray(self.days, dtype=float)
        ends = np.asarray(ends, dtype=float)
        los = np.searchsorted(days, ends - self.window, side="left").tolist()
        his = np.searchsorted(days, ends, side="right").tolist()
        return [self._best(lo, hi) for lo, hi in zip(los, his, strict=True)]


# Points of one HScore item: (points or None when unknown, most points if unknown, evidence).
_Points = tuple[float | None, float, EvidenceItem | None]

_HSCORE_WORDS = {
    "immunosuppression": "known immunosuppression (yes/no)", "temperature": "temperature",
    "organomegaly": "organomegaly (liver/spleen exam)",
    "blood counts": "a blood count (Hb, WBC, platelets)", "ferritin": "ferritin",
    "triglycerides": "triglycerides", "fibrinogen": "fibrinogen", "ast": "AST",
    "hemophagocytosis": "bone-marrow haemophagocytosis (if aspirate done)",
}
_HSCORE_LABS = ("ferritin", "triglycerides", "fibrinogen", "ast")


def _hscore_findings(course: Course, t: Thresholds) -> DayFindings:
    return day_findings(course, (HSCORE.id, thresholds_key(t)),
                        lambda r: _hscore_builder(course, r, t))


def _hscore_builder(course: Course, r: Reader, t: Thresholds) -> Builder:
    """HScore from the latest value of each input (temperature: the highest in the window up
    to the as-of instant). An item read from one input is built once per position of that
    input."""
    imm, hemo = r.obs_input("immunosuppression"), r.obs_input("hemophagocytosis")
    temps = WindowMax(r.obs.get("temperature"), t["temp_window_hours"] / 24.0)
    organs = r.obs_input("organomegaly")
    tg_mid, tg_high = tg_mmol(t["tg_mid"]), tg_mmol(t["tg_high"])
    labs = {a: r.lab_input(a) for a in ("hemoglobin", "wbc", "platelets", *_HSCORE_LABS)}
    inputs = [imm, temps, organs, *labs.values(), hemo]
    lab_bins: dict[str, Callable[[float], float]] = {
        "ferritin": lambda x: t["ferritin_high_points"] if x > t["ferritin_high"] else (
            t["ferritin_mid_points"] if x >= t["ferritin_mid"] else 0.0),
        "triglycerides": lambda x: t["tg_high_points"] if tg_mmol(x) > tg_high else (
            t["tg_mid_points"] if tg_mmol(x) >= tg_mid else 0.0),
        "fibrinogen": lambda x: t["fibrinogen_points"] if x <= t["fibrinogen"] else 0.0,
        "ast": lambda x: t["ast_points"] if x >= t["ast"] else 0.0,
    }
    lab_most = {"ferritin": t["ferritin_high_points"], "triglycerides": t["tg_high_points"],
                "fibrinogen": t["fibrinogen_points"], "ast": t["ast_points"]}

    @functools.cache
    def points_why(p: float) -> str:
        return f"{p:g} points"

    def immunosuppression(j: int) -> _Points:
        o = r.observation("immunosuppression", j)
        ip = t["immunosuppression_points"]
        if o is None:
            return None, ip, None
        return (ip if o.is_yes else 0.0), ip, o.evidence(
            f"{ip:g} points" if o.is_yes else "0 points")

    def temperature(j: int) -> _Points:
        temp = r.observation("temperature", j)  # j: the window's highest (WindowMax)
        if temp is None or temp.num is None:
            return None, t["temp_high_points"], None
        x = temp.num
        p = t["temp_high_points"] if x > t["temp_high_c"] else (
            t["temp_mid_points"] if x >= t["temp_mid_c"] else 0.0)
        return p, 0, temp.evidence(points_why(p))

    def organomegaly(j: int) -> _Points:
        org = r.observation("organomegaly", j)
        if org is None:
            return None, t["organomegaly_both_points"], None
        p = {"both": t["organomegaly_both_points"], "hepatomegaly":
             t["organomegaly_one_points"], "splenomegaly": t["organomegaly_one_points"]
             }.get(org.text or "", 0.0)
        return p, 0, org.evidence(points_why(p))

    def lineage(a: str, key: str) -> Cells[tuple[bool | None, EvidenceItem | None]]:
        """Whether the latest count is low (None if unknown), with its evidence."""
        s, limit = r.labs.get(a), t[key]
        why = (f"> {limit:g}: no cytopenia", f"<= {limit:g}: cytopenia")  # by whether low

        def build(j: int) -> tuple[bool | None, EvidenceItem | None]:
            if j < 0 or s is None:
                return None, None
            v = s.at(j)
            low = v.value <= limit
            return low, v.evidence(why[low])

        return Cells(labs[a], build)

    hb_low, wbc_low, plt_low = (lineage(a, key) for a, key in (
        ("hemoglobin", "cyto_hemoglobin"), ("wbc", "cyto_wbc"), ("platelets", "cyto_platelets")))

    def cytopenias(j_hb: int, j_wbc: int, j_plt: int) -> tuple[int, int, list[EvidenceItem]]:
        n_low, n_unknown, ev = 0, 0, []
        for low, e in (hb_low(j_hb), wbc_low(j_wbc), plt_low(j_plt)):
            if low is None:
                n_unknown += 1
                continue
            assert e is not None  # a known count comes with its evidence
            n_low += low
            ev.append(e)
        return n_low, n_unknown, ev

    def lab_points(a: str) -> Cells[_Points]:
        s, bins, most = r.labs.get(a), lab_bins[a], lab_most[a]

        def build(j: int) -> _Points:
            if j < 0 or s is None:
                return None, most, None
            v = s.at(j)
            p = bins(v.value)
            return p, 0, v.evidence(points_why(p))

        return Cells(labs[a], build)

    def hemophagocytosis(j: int) -> _Points:
        o = r.observation("hemophagocytosis", j)
        hp = t["hemophagocytosis_points"]
        if o is None:
            return None, hp, None
        return (hp if o.is_yes else 0.0), hp, o.evidence(f"{hp if o.is_yes else 0:g} points")

    def cyto_pts(n: int) -> float:
        return t["cyto_three_points"] if n >= 3 else (t["cyto_two_points"] if n == 2 else 0.0)

    imm_at, temp_at, org_at, hemo_at = (
        Cells(imm, immunosuppression), Cells(temps, temperature),
        Cells(organs, organomegaly), Cells(hemo, hemophagocytosis))
    lab_at = [lab_points(a) for a in _HSCORE_LABS]

    def finding(j_imm: int, j_temp: int, j_org: int, j_hb: int, j_wbc: int, j_plt: int,
                *j_labs_hemo: int) -> Finding:
        breakdown: dict[str, float | None] = {}
        maxima: dict[str, float] = {}
        ev: list[EvidenceItem] = []
        missing_items: list[str] = []

        def add(name: str, points: _Points) -> None:
            pts, most, e = points
            breakdown[name] = pts
            if pts is None:
                maxima[name] = most
                missing_items.append(name)
            if e is not None:
                ev.append(e)

        add("immunosuppression", imm_at(j_imm))
        add("temperature", temp_at(j_temp))
        add("organomegaly", org_at(j_org))
        n_low, n_unknown, cyt_ev = r.item(("cyto", j_hb, j_wbc, j_plt), cytopenias,
                                          j_hb, j_wbc, j_plt)
        ev += cyt_ev
        lo, hi = cyto_pts(n_low), cyto_pts(n_low + n_unknown)
        partial = None
        if lo == hi:
            breakdown["cytopenias"] = lo
        else:
            breakdown["cytopenias"] = None
            maxima["cytopenias"] = hi
            missing_items.append("blood counts")
            partial = lo
        *j_labs, j_hemo = j_labs_hemo
        for a, at, j in zip(_HSCORE_LABS, lab_at, j_labs, strict=True):
            add(a, at(j))
        add("hemophagocytosis", hemo_at(j_hemo))
        score = sum(v for v in breakdown.values() if v is not None) + (partial or 0.0)
        score_max = score + sum(maxima.values())
        cutoff = t["cutoff"]
        status = MET if score >= cutoff else (NOT_MET if score_max < cutoff else NE)
        prob, text = probability_from_table(score)
        fit = 1.0 / (1.0 + math.exp(-(t["fit_slope"] * score + t["fit_intercept"])))
        missing = []
        if missing_items:
            missing = [f"log {', '.join(_HSCORE_WORDS[m] for m in missing_items)} to complete "
                       "the HScore"]
        extra = {
            "probability": round(prob, 4), "probability_table": text,
            "probability_fit": round(fit, 3), "above_169": score >= cutoff,
            "breakdown": breakdown, "score_max": score_max, "missing_items": missing_items,
        }
        return Finding(HSCORE.id, status, score=score, evidence=ev, missing=missing, extra=extra)

    return inputs, finding


RULES: tuple[RuleSpec, ...] = (daily_rule(HSCORE, _hscore_findings),)

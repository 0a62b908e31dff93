"""HScore (Fardet 2014, criteria.md §4): points, breakdown and probability.

On each course-day, as of the day's end, each item of the HScore table scores the bin its
latest value falls in (temperature: the highest in the 24 h up to the as-of instant); the
score is the sum of the known items' points, met at the cut-off, not met only when even the
missing items' most points could not reach it.
"""

from __future__ import annotations

import functools
import math
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
    Threshold,
    Thresholds,
    status_where,
)
from core.rules.frames import Columns, Ward
from core.rules.hlh.criteria import C2, D, tri
from core.rules.series import Series, first_max, take
from core.rules.tables import NONE
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
    i = int(np.searchsorted(xs, score))  # xs[i - 1] < score <= xs[i]
    if score == xs[i]:
        return p, f"{ys[i] * 100:.0f} %"
    lo, hi = ys[i - 1], ys[i]
    if lo == hi:
        return p, f"{'<=' if score < 100 else '>='} {lo * 100:.0f} %"
    return p, f"{lo * 100:.0f}–{hi * 100:.0f} %"


ITEMS = ("immunosuppression", "temperature", "organomegaly", "cytopenias", "ferritin",
         "triglycerides", "fibrinogen", "ast", "hemophagocytosis")
# the most points of an item not known (cytopenias: by the counts known, see `judge`)
MOST = {"immunosuppression": "immunosuppression_points", "temperature": "temp_high_points",
        "organomegaly": "organomegaly_both_points", "ferritin": "ferritin_high_points",
        "triglycerides": "tg_high_points", "fibrinogen": "fibrinogen_points",
        "ast": "ast_points", "hemophagocytosis": "hemophagocytosis_points"}
LAB_ITEMS = ("ferritin", "triglycerides", "fibrinogen", "ast")
# the cytopenia lineages: (analyte, its threshold key)
LINEAGES = (("hemoglobin", "cyto_hemoglobin"), ("wbc", "cyto_wbc"),
            ("platelets", "cyto_platelets"))
WORDS = {
    "immunosuppression": "known immunosuppression (yes/no)", "temperature": "temperature",
    "organomegaly": "organomegaly (liver/spleen exam)",
    "blood counts": "a blood count (Hb, WBC, platelets)", "ferritin": "ferritin",
    "triglycerides": "triglycerides", "fibrinogen": "fibrinogen", "ast": "AST",
    "hemophagocytosis": "bone-marrow haemophagocytosis (if aspirate done)",
}


def judge(ward: Ward, t: Thresholds) -> Columns:
    """Per grid row: each item's bin (the key of its points threshold; "" for no points,
    None when the item is not known), the score, score_max and status, each lineage's
    cytopenia test (`low_<analyte>`), and the positions (`at_<input>`) that decide them."""
    temps = Series.observation(ward, "temperature")  # the highest in the window up to the end
    obs = {k: Series.observation(ward, k)
           for k in ("immunosuppression", "organomegaly", "hemophagocytosis")}
    labs = {a: Series.lab(ward, a) for a in ("hemoglobin", "wbc", "platelets", "ferritin",
                                             "triglycerides", "fibrinogen", "ast")}
    series = {"temperature": temps, **obs, **labs}
    at = {k: s.latest() for k, s in series.items()}
    window_start = ward.days["until"] - t["temp_window_hours"] / 24.0
    at["temperature"] = first_max(temps.value, temps.first_from(window_start), at["temperature"])
    known = {k: at[k] != NONE for k in at}
    lab = {a: labs[a].values(at[a]) for a in labs}
    temp = temps.values(at["temperature"])
    organs = obs["organomegaly"].texts(at["organomegaly"])
    mmol = np.array([tg_mmol(x) for x in labs["triglycerides"].value], dtype=float)
    tg = take(mmol, at["triglycerides"], np.nan)  # binned in mmol/L
    low = {a: tri(known[a], lab[a] <= t[key]) for a, key in LINEAGES}
    n_low, n_unknown = sum(x == 1.0 for x in low.values()), sum(np.isnan(x) for x in low.values())

    def yes(kind: str) -> np.ndarray:
        return obs[kind].values(at[kind]) >= 1

    bins = {  # the HScore table (§4.1): the first bin whose test holds
        "immunosuppression": bin_of(known["immunosuppression"],
                                    (yes("immunosuppression"), "immunosuppression_points")),
        "temperature": bin_of(~np.isnan(temp), (temp > t["temp_high_c"], "temp_high_points"),
                              (temp >= t["temp_mid_c"], "temp_mid_points")),
        "organomegaly": bin_of(known["organomegaly"],
                               (organs == "both", "organomegaly_both_points"),
                               (np.isin(organs, ("hepatomegaly", "splenomegaly")),
                                "organomegaly_one_points")),
        "cytopenias": cytopenia_bin(n_low),
        "ferritin": bin_of(known["ferritin"],
                           (lab["ferritin"] > t["ferritin_high"], "ferritin_high_points"),
                           (lab["ferritin"] >= t["ferritin_mid"], "ferritin_mid_points")),
        "triglycerides": bin_of(known["triglycerides"],
                                (tg > tg_mmol(t["tg_high"]), "tg_high_points"),
                                (tg >= tg_mmol(t["tg_mid"]), "tg_mid_points")),
        "fibrinogen": bin_of(known["fibrinogen"],
                             (lab["fibrinogen"] <= t["fibrinogen"], "fibrinogen_points")),
        "ast": bin_of(known["ast"], (lab["ast"] >= t["ast"], "ast_points")),
        "hemophagocytosis": bin_of(known["hemophagocytosis"],
                                   (yes("hemophagocytosis"), "hemophagocytosis_points")),
    }
    # cytopenias with a count missing: the points already certain count, the item stays open
    # unless the missing counts could not change them
    at_most = cytopenia_bin(n_low + n_unknown)
    most: dict[str, np.ndarray | float] = {**{i: float(t[key]) for i, key in MOST.items()},
                                           "cytopenias": points(at_most, t)}
    certain = points(bins["cytopenias"], t) == most["cytopenias"]
    partial = bins["cytopenias"].copy()
    partial[certain] = None
    bins["cytopenias"][~certain] = None

    item_points = {i: points(bins[i], t) for i in ITEMS}  # NaN: not known
    # the HScore: the sum of the known items' points, and of the cytopenias' already certain
    score = sum(np.nan_to_num(item_points[i]) for i in ITEMS) + np.nan_to_num(
        points(partial, t))
    score_max = score + sum(np.where(np.isnan(item_points[i]), most[i], 0.0) for i in ITEMS)
    cutoff = t["cutoff"]
    status = status_where(score >= cutoff, score_max < cutoff)
    return {"status": status, "score": score, "score_max": score_max, **bins,
                         "cytopenias_partial": partial, "cytopenias_most": at_most,
                         **{f"low_{a}": x for a, x in low.items()},
                         **{f"at_{k}": s.frame_pos(at[k]) for k, s in series.items()}}


def bin_of(known: np.ndarray, *bins: tuple[np.ndarray, str]) -> np.ndarray:
    """Per row: the points key of the first of `bins` (where its test holds, points key)
    the item falls in, "" (no points) in none, None where the item is not known."""
    out = np.full(len(known), None, dtype=object)
    out[known] = ""
    for holds, key in reversed(bins):
        out[known & holds] = key
    return out


def cytopenia_bin(lineages: np.ndarray) -> np.ndarray:
    """The points key of a number of low lineages: 3 or more, 2, else none."""
    return np.where(lineages >= 3, "cyto_three_points",
                    np.where(lineages == 2, "cyto_two_points", "")).astype(object)


def points(bins: np.ndarray, t: Thresholds) -> np.ndarray:
    """The points of each bin (NaN: not known)."""
    out = np.full(len(bins), np.nan)
    for key in set(bins.tolist()) - {None}:  # the few bins in use
        out[bins == key] = row_points(t, key)
    return out


def row_points(t: Thresholds, key: object) -> float | None:
    """The points of one row's bin as the threshold holds them (None: not known; the frame
    shows a None as NaN)."""
    if not isinstance(key, str):
        return None
    return t[key] if key else 0.0


def explain(ward: Ward, row: Mapping[str, Any], t: Thresholds) -> Finding:
    """The row's finding: score, breakdown, probability, and what to log to complete it."""
    breakdown = {i: row_points(t, row[i]) for i in ITEMS}
    partial = row_points(t, row["cytopenias_partial"])
    most = {**MOST, "cytopenias": row["cytopenias_most"]}
    maxima = {i: t[most[i]] if most[i] else 0.0 for i in ITEMS if breakdown[i] is None}
    # the sum as `judge` makes it, with the points as declared (ints stay ints)
    score = sum(p for p in breakdown.values() if p is not None) + (partial or 0.0)
    score_max = score + sum(maxima.values())
    missing_items = ["blood counts" if i == "cytopenias" else i for i in maxima]

    ev: list[EvidenceItem] = []
    for item, p in breakdown.items():
        if item == "cytopenias":
            for a, key in LINEAGES:
                low = row[f"low_{a}"]
                if low == low:
                    ev.append(ward.lab_evidence(int(row[f"at_{a}"]), (
                        f"<= {t[key]:g}: cytopenia" if low else f"> {t[key]:g}: no cytopenia")))
        elif p is not None:
            pos = int(row[f"at_{item}"])
            why = f"{p:g} points"
            ev.append(ward.lab_evidence(pos, why) if item in LAB_ITEMS
                      else ward.observation_evidence(pos, why))
    prob, text = probability_from_table(score)
    fit = 1.0 / (1.0 + math.exp(-(t["fit_slope"] * score + t["fit_intercept"])))
    missing = []
    if missing_items:
        missing = [f"log {', '.join(WORDS[m] for m in missing_items)} to complete "
                   "the HScore"]
    extra = {
        "probability": round(prob, 4), "probability_table": text,
        "probability_fit": round(fit, 3), "above_169": score >= t["cutoff"],
        "breakdown": breakdown, "score_max": score_max, "missing_items": missing_items,
    }
    return Finding(HSCORE.id, Status(row["status"]), score=score, evidence=ev,
                   missing=missing, extra=extra)


RULES: tuple[RuleSpec, ...] = (RuleSpec(HSCORE, judge=judge, explain=explain),)

"""What the patient screen and the handover snapshot say in words, from a course's findings.

Pure functions over `Finding`s (no database, no streamlit): the header facts (day, current
CRS / ICANS grade, CAR-HEMATOTOX risk group) and the scores panel (IEC-HS features, HScore,
HLH-2004, Neelapu 2018, ICAHT), each with what to log to complete it (`Finding.missing`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from core.rules.base import Finding, Status
from core.vocabulary.course import Course
from core.vocabulary.units import ANALYTES

IEC_HS_FEATURES = {  # feature key in iec_hs extra -> (label, evidence analytes)
    "ferritin": ("Ferritin above 2 × ULN or 2 × baseline", ("ferritin",)),
    "timing": ("Onset as CRS resolves or after it", ("CRS",)),
    "transaminase": ("AST or ALT above 5 × ULN (or 5 × baseline)", ("ast", "alt")),
    "fibrinogen": ("Fibrinogen below 150 mg/dL or below LLN", ("fibrinogen",)),
    "cytopenia": ("New or worsening cytopenia", ("anc", "platelets", "hemoglobin")),
}
# criteria §1.5 [UNCONFIRMED]: displayed as context beside an IEC-HS alert, never as an order
IEC_HS_TIERS = (
    "First line: anakinra, with or without corticosteroids; stop or avoid further "
    "tocilizumab as IEC-HS-directed therapy.",
    "Inadequate response (re-assessment around 48 h): escalate anakinra and/or "
    "corticosteroids; add ruxolitinib or emapalumab.",
    "Refractory: low-dose etoposide; other salvage.",
)
TIERS_NOTE = ("Consensus treatment tiers (ASTCT 2023, criteria §1.5, unconfirmed "
              "recollection, no doses): context for the team, not an order.")


def by_rule(findings: Iterable[Finding]) -> dict[str, Finding]:
    return {f.rule: f for f in findings}


def _status_word(status: object) -> str:
    return {"met": "met", "not_met": "not met", "not_evaluable": "not evaluable"}.get(
        str(status), str(status))


def _value_text(e: Mapping) -> str:
    if e.get("value") is None:
        return e.get("why", "")
    unit = e.get("unit") or ""
    v = e["value"]
    v = f"{v:g}" if isinstance(v, float) else str(v)
    day = e.get("day")
    when = f" (day {math.floor(day)})" if isinstance(day, int | float) else ""
    orig = ""
    if e.get("original_unit") and e.get("original_unit") != unit:
        orig = f", entered {e.get('original_value')} {e['original_unit']}"
    name = ANALYTES[e["analyte"]].name if e.get("analyte") in ANALYTES else e.get("analyte", "")
    return f"{name} {v} {unit}{orig}{when}: {e.get('why', '')}".strip()


@dataclass
class Header:
    day: int
    crs: str
    icans: str
    hematotox: str


def _grade(f: Finding | None) -> str:
    if f is None or f.status == Status.NOT_EVALUABLE:
        return "not evaluable"
    return "none" if not f.grade else f"grade {f.grade}"


def header(findings: Iterable[Finding], today_day: float) -> Header:
    """Today's day number, current CRS and ICANS grades and the CAR-HEMATOTOX risk group."""
    f = by_rule(findings)
    ht = f.get("car_hematotox")
    if ht is None or ht.status == Status.NOT_EVALUABLE:
        risk = "not evaluable"
    else:
        group = ht.extra.get("risk_group") or "?"
        score = "" if ht.score is None else f" (score {ht.score:g})"
        risk = f"{group}{score}"
    return Header(day=math.floor(today_day), crs=_grade(f.get("crs_grade")),
                  icans=_grade(f.get("icans_grade")), hematotox=risk)


@dataclass
class ScoreBlock:
    """One score in the panel: headline, rows (item, state, detail) and what to log."""

    rule: str
    title: str
    headline: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _evidence_for(f: Finding, analytes: Sequence[str]) -> str:
    parts = [_value_text(e.to_json()) for e in f.evidence if e.analyte in analytes]
    return "; ".join(parts)


def score_blocks(findings: Iterable[Finding]) -> list[ScoreBlock]:
    """The scores panel: IEC-HS feature by feature, HScore, HLH-2004, Neelapu 2018, ICAHT."""
    f = by_rule(findings)
    out: list[ScoreBlock] = []
    if (x := f.get("iec_hs")) is not None:
        feats = x.extra.get("features", {})
        block = ScoreBlock("iec_hs", "IEC-HS screen (ASTCT 2023)",
                           f"{_status_word(x.status)}"
                           + (f" since day {math.floor(x.since_day)}" if x.since_day is not None
                              and x.status == Status.MET else ""))
        for key, (label, analytes) in IEC_HS_FEATURES.items():
            block.rows.append((label, _status_word(feats.get(key, "not_evaluable")),
                               _evidence_for(x, analytes)))
        if "hemophagocytosis" in x.extra:
            block.rows.append(("Haemophagocytosis (supportive)",
                               _status_word(x.extra["hemophagocytosis"]),
                               _evidence_for(x, ("hemophagocytosis",))))
        if x.extra.get("iec_hs_grade"):
            block.rows.append(("IEC-HS grade", str(x.extra["iec_hs_grade"]), ""))
        block.missing = list(x.missing)
        out.append(block)
    if (x := f.get("hscore")) is not None:
        prob = x.extra.get("probability")
        table = x.extra.get("probability_table")
        head = "not evaluable" if x.score is None else f"{x.score:g} points"
        if prob is not None:
            head += f", probability of HLH {table or f'{prob:.0%}'}"
        if x.extra.get("score_max") is not None and x.extra.get("missing_items"):
            head += f" (up to {x.extra['score_max']:g} if the missing items were positive)"
        block = ScoreBlock("hscore", "HScore (Fardet 2014)", head)
        for item, pts in (x.extra.get("breakdown") or {}).items():
            block.rows.append((item.replace("_", " "),
                               "not evaluable" if pts is None else f"{pts:g} points",
                               _evidence_for(x, (item, *_HSCORE_ANALYTES.get(item, ())))))
        block.missing = list(x.missing) + [f"record {m}" for m in
                                           x.extra.get("missing_items", [])]
        out.append(block)
    if (x := f.get("hlh_2004")) is not None:
        n, ev = x.extra.get("met_count"), x.extra.get("evaluable")
        block = ScoreBlock("hlh_2004", "HLH-2004 (5 of 8 needed)",
                           f"{n} of 8 met, {ev} of 8 evaluable" if n is not None
                           else _status_word(x.status))
        for item, state in (x.extra.get("criteria") or {}).items():
            block.rows.append((item.replace("_", " "), _status_word(state), ""))
        block.missing = list(x.missing)
        out.append(block)
    if (x := f.get("cartox_hlh")) is not None:
        block = ScoreBlock("cartox_hlh", "CAR-T HLH/MAS (Neelapu 2018)",
                           f"{_status_word(x.status)}; entry (ferritin > 10,000 days 0-5): "
                           f"{_status_word(x.extra.get('entry', 'not_evaluable'))}; "
                           f"{x.extra.get('items_met', '?')} of 4 organ items met (2 needed)")
        for item, state in (x.extra.get("items") or {}).items():
            block.rows.append((item, _status_word(state), ""))
        block.missing = list(x.missing)
        out.append(block)
    icaht = [(r, t) for r, t in (("icaht_early", "Neutrophils, early (days 0-30)"),
                                 ("icaht_late", "Neutrophils, late (after day 30)"),
                                 ("ticaht_early", "Platelets, early (days 0-30)"),
                                 ("ticaht_late", "Platelets, late (days 31-100)"))
             if r in f]
    if icaht:
        block = ScoreBlock("icaht", "ICAHT (EHA/EBMT)", "grades so far")
        for r, label in icaht:
            x = f[r]
            state = _grade(x)
            if x.extra.get("window_opens_day") is not None and x.status == Status.NOT_EVALUABLE:
                state = f"window opens day {x.extra['window_opens_day']}"
            # the early grades say how much was measured and what the unmeasured days allow
            said = [x.extra["summary"]] if x.extra.get("summary") else []
            detail = "; ".join(said + [e.why for e in x.evidence[:2]])
            block.rows.append((label, state, detail))
            block.missing += list(x.missing)
        out.append(block)
    return out


_HSCORE_ANALYTES = {"cytopenias": ("hemoglobin", "wbc", "platelets")}


def handover_title(course: Course, findings: Iterable[Finding], alerts: Sequence,
                   today_day: float, now: datetime) -> str:
    """The snapshot's header lines (plotly HTML subset)."""
    from core.monitoring.alerts import SCREENING_NOTE

    p = course.patient
    h = header(findings, today_day)
    line1 = (f"<b>{p.patient_id}</b> · {p.product} · bed {p.bed or '–'} · infused "
             f"{p.infusion_date:%d %b %Y} · <b>day {h.day:+d}</b> · {p.status}<br>"
             f"Now: CRS {h.crs} · ICANS {h.icans} · CAR-HEMATOTOX risk {h.hematotox}")
    open_ = [f"{a.title}" + (f" gr {a.grade}" if a.grade else "") + f" ({a.state})"
             for a in alerts[:6]]
    rows = ["; ".join(open_[i:i + 3]) for i in range(0, len(open_), 3)]
    line2 = "Open alerts: " + ("<br>".join(rows) if rows else "none")
    line3 = (f"Handover snapshot {now:%Y-%m-%d %H:%M} UTC. {SCREENING_NOTE}")
    return "<br>".join([line1, line2, f"<span style='font-size:12px'>{line3}</span>"])

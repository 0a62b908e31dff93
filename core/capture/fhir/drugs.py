"""MedicationAdministration -> what it means here: a treatment we record, a vasopressor, the
CAR-T product (day 0), or a medication CAR-T Watch does not monitor (skipped).

The medication is `medicationCodeableConcept`, or the Medication a `medicationReference`
points at (in the file or contained). Its codings resolve through the site code map first
(a drug target; an observation target `vasopressors` or `vasopressin` marks a local
vasopressor code), then its text and coding displays are read word by word: a drug name or
alias of core.vocabulary.observations (resolve_drug), a brand name below, a vasopressor, the CAR-T
product (site setting `fhir.car_t_product_codes`, and the products of the synthetic sample).

Recorded as treatments: the anti-cytokine, corticosteroid and IEC-HS-directed drugs of
core.vocabulary.observations (tocilizumab, siltuximab, anakinra, emapalumab, dexamethasone,
methylprednisolone, prednisolone, hydrocortisone, ruxolitinib, etoposide), plus the drugs a
site lists in `fhir.extra_drugs` (e.g. paracetamol, which waives the CRS fever requirement
too, criteria §5.1). A treatments row: effectiveDateTime or effectivePeriod.start,
dosage.dose value/unit, dosage.route text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.capture.codemap import CodeMap
from core.capture.fhir.read import Entry, Mapped, codings, subject_or_error, texts, time_or_error
from core.capture.importing import RowError
from core.store.models import CodeTarget
from core.vocabulary.observations import DrugClass, drugs_in, resolve_drug

RECORDED = drugs_in(DrugClass.ANTI_CYTOKINE) | drugs_in(DrugClass.STEROID) | drugs_in(
    DrugClass.HLH_DIRECTED)
# brand names (for EHRs that send only a display text)
BRANDS = {"actemra": "tocilizumab", "roactemra": "tocilizumab", "kineret": "anakinra",
          "sylvant": "siltuximab", "jakafi": "ruxolitinib", "jakavi": "ruxolitinib",
          "gamifant": "emapalumab", "decadron": "dexamethasone",
          "medrol": "methylprednisolone", "solumedrol": "methylprednisolone"}
# vasopressors counted by the CRS grade (criteria §5.1 / §12.2): name -> its spellings
VASOPRESSORS = {"norepinephrine": ("norepinephrine", "noradrenaline", "levophed"),
                "epinephrine": ("epinephrine", "adrenaline"),
                "phenylephrine": ("phenylephrine",), "dopamine": ("dopamine",)}
VASOPRESSIN = ("vasopressin", "argipressin", "vasostrict")
# inotropes are not vasopressors (the ASTCT grade counts vasopressors): skipped
INOTROPES = ("dobutamine", "milrinone")
# [DESIGN] epinephrine in a local anaesthetic, or a vasopressor given other than into a vein
# (an anaphylaxis pen, a nebuliser), does not treat CRS hypotension: not counted
LOCAL_ANAESTHETICS = ("lidocaine", "lignocaine", "bupivacaine", "ropivacaine", "articaine",
                      "prilocaine", "mepivacaine")
NOT_INTO_A_VEIN = ("intramuscular", "subcutaneous", "inhal", "nebul", "topical", "infiltrat",
                   "intradermal", "epidural", "nasal", "oral", "ophthalmic", "local")
# CAR-T products (the sample's short names) -> how an EHR may name them
PRODUCTS = {"axi-cel": ("axi-cel", "axicabtagene", "yescarta"),
            "brexu-cel": ("brexu-cel", "brexucabtagene", "tecartus"),
            "cilta-cel": ("cilta-cel", "ciltacabtagene", "carvykti"),
            "ide-cel": ("ide-cel", "idecabtagene", "abecma"),
            "liso-cel": ("liso-cel", "lisocabtagene", "breyanzi"),
            "tisa-cel": ("tisa-cel", "tisagenlecleucel", "kymriah"),
            "obe-cel": ("obe-cel", "obecabtagene", "aucatzyl")}
TREATMENT_PATHS = {"patient_id": "MedicationAdministration.subject",
                   "given_at": "MedicationAdministration.effectiveDateTime",
                   "drug": "MedicationAdministration.medicationCodeableConcept",
                   "dose": "MedicationAdministration.dosage.dose.value",
                   "dose_unit": "MedicationAdministration.dosage.dose.unit",
                   "route": "MedicationAdministration.dosage.route"}


@dataclass(frozen=True)
class Medication:
    """What an administration gives: kind is drug | vasopressor | vasopressin | product |
    inotrope | unknown; name is the DRUGS key, the vasopressor or product name, or what
    the source calls it."""

    kind: str
    name: str


def concept(entry: Entry, medications: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The medication's CodeableConcept (inline, or of the referenced Medication)."""
    res = entry.res
    if isinstance(res.get("medicationCodeableConcept"), dict):
        return dict(res["medicationCodeableConcept"])
    ref = str((res.get("medicationReference") or {}).get("reference") or "")
    if ref.startswith("#"):
        for item in res.get("contained") or []:
            if isinstance(item, dict) and item.get("id") == ref[1:]:
                return dict(item.get("code") or {})
    med = medications.get(ref)
    if med is not None:
        return dict(med.get("code") or {})
    display = (res.get("medicationReference") or {}).get("display")
    return {"text": display} if display else {}


def identify(med: dict[str, Any], codes: CodeMap, product_codes: list[str]) -> Medication:
    """Resolve one medication concept (see the module docstring for the order)."""
    pairs = codings(med)
    target = codes.resolve_any(pairs)
    words_text = " ".join(texts(med)).lower()
    if target is not None and target.kind is CodeTarget.DRUG:
        return Medication("drug", target.code)
    if target is not None and target.kind is CodeTarget.OBSERVATION:
        if target.code == "vasopressin":
            return Medication("vasopressin", "vasopressin")
        if target.code == "vasopressors":
            named = _named_vasopressor(words_text)
            return Medication("vasopressor", named or f"code {pairs[0][1]}")
    product = _product(pairs, words_text, product_codes)
    if product is not None:
        return Medication("product", product)
    words = re.findall(r"[a-z]+(?:-[a-z]+)?", words_text)
    for word in [w for part in words for w in (part, *part.split("-"))]:
        drug = resolve_drug(word) or BRANDS.get(word.replace("-", ""))
        if drug is not None:
            return Medication("drug", drug)
    if any(w in words_text for w in VASOPRESSIN):
        return Medication("vasopressin", "vasopressin")
    named = _named_vasopressor(words_text)
    if named is not None:
        return Medication("vasopressor", named)
    inotrope = next((w for w in INOTROPES if w in words_text), None)
    if inotrope is not None:
        return Medication("inotrope", inotrope)
    shown = (texts(med) or [f"code {pairs[0][1]}" if pairs else "no code or name"])[0]
    return Medication("unknown", shown[:60])


def not_counted(entry: Entry, med: dict[str, Any]) -> str | None:
    """Why a vasopressor administration does not count for the CRS grade, or None."""
    text = " ".join(texts(med)).lower()
    if any(w in text for w in LOCAL_ANAESTHETICS):
        return "in a local anaesthetic"
    route = " ".join(texts(_part(_part(entry.res, "dosage"), "route"))).lower()
    if any(w in route for w in NOT_INTO_A_VEIN):
        return "not given into a vein"
    return None


def _part(res: dict[str, Any], key: str) -> dict[str, Any]:
    value = res.get(key)
    return value if isinstance(value, dict) else {}


def _named_vasopressor(text: str) -> str | None:
    return next((name for name, spellings in VASOPRESSORS.items()
                 if any(s in text for s in spellings)), None)


def _product(pairs: list[tuple[str | None, str | None]], text: str,
             product_codes: list[str]) -> str | None:
    for code in product_codes:
        wanted = str(code).strip().lower()
        if not wanted:
            continue
        by_name = len(wanted) >= 4 and re.search(r"[a-z]", wanted) and wanted in text
        if any(str(c).lower() == wanted for _s, c in pairs) or by_name:
            builtin = next((name for name, spellings in PRODUCTS.items()
                            if any(s in text for s in spellings)), None)
            return builtin or str(code)[:80]
    return next((name for name, spellings in PRODUCTS.items()
                 if any(s in text for s in spellings)), None)


def treatment_row(entry: Entry, drug: str, refs: dict[str, str],
                  errors: list[RowError]) -> Mapped | None:
    """The treatments row of one administration of a recorded drug, or None with errors."""
    before = len(errors)
    pid = subject_or_error(entry, refs, errors)
    when, when_path = time_or_error(entry, errors, "when it was given")
    if len(errors) > before:
        return None
    dosage = _part(entry.res, "dosage")
    dose, route = _part(dosage, "dose"), _part(dosage, "route")
    route_text = (texts(route) or [str(c) for _s, c in codings(route)] or [""])[0]
    values = {"patient_id": str(pid), "given_at": str(when), "drug": drug,
              "dose": "" if dose.get("value") is None else str(dose["value"]),
              "dose_unit": str(dose.get("unit") or dose.get("code") or "")[:20],
              "route": str(route_text)[:20]}
    return Mapped("treatments", entry, values, {**TREATMENT_PATHS, "given_at": when_path},
                  entry.rid or None)

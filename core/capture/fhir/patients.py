"""Patient resources -> patients rows (the CSV kind), with day 0.

Patient.identifier[0].value -> patient_id; day 0 from an extension whose url ends in
`infusion-date` (valueDate); the product from one ending in `car-t-product` or `product`;
birthDate -> birth_year; gender -> sex. Without the extension, a registered patient needs
nothing; a new one takes day 0 from the CAR-T product's MedicationAdministration in the same
file when the site setting `fhir.day0_from_administration` is true (the ward-time date of its
start), and is refused otherwise, with a message naming the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.capture.fhir.options import DAY0, Options
from core.capture.fhir.read import Entry, ext, identifier
from core.capture.importing import RowError

PATIENT_PATHS = {"patient_id": "Patient.identifier", "infusion_date":
                 "Patient.extension(infusion-date)", "product": "Patient.extension(product)",
                 "birth_year": "Patient.birthDate", "sex": "Patient.gender"}
COLUMNS = ["patient_id", "infusion_date", "product", "sex", "birth_year"]


@dataclass(frozen=True)
class ProductGiven:
    """A MedicationAdministration of the CAR-T product."""

    entry: Entry
    product: str
    start: datetime | None


def patient_rows(patients: list[Entry], known: dict[str, Any],
                 products: dict[str, list[ProductGiven]], options: Options, tz: str,
                 errors: list[RowError]) -> tuple[list[dict[str, str]], list[Entry], int]:
    """(rows for new or re-sent patients, their entries, registered patients with nothing
    to add)."""
    rows, where, registered = [], [], 0
    for entry in patients:
        res = entry.res
        pid = identifier(res)
        if not pid:
            errors.append(RowError(entry.row, "Patient.identifier", "", "The Patient has no "
                                   "identifier value (the study ID or MRN)."))
            continue
        infusion = _ext_date(res)
        product = ext(res, "car-t-product", "product")
        if not infusion:
            if pid in known:
                registered += 1
                continue
            given = sorted((g for g in products.get(pid, []) if g.start is not None),
                           key=_start)
            if not given or not options.day0_from_administration:
                errors.append(_no_day0(entry, pid, given, tz))
                continue
            first = given[0]
            infusion = _start(first).astimezone(ZoneInfo(tz)).date().isoformat()
            product = product or first.product
        rows.append({"patient_id": pid, "infusion_date": str(infusion)[:10],
                     "product": str(product or "not stated"),
                     "sex": str(res.get("gender") or ""),
                     "birth_year": str(res.get("birthDate") or "")[:4]})
        where.append(entry)
    return rows, where, registered


def _start(given: ProductGiven) -> datetime:
    """The start of an administration known to have one (`given` lists only those)."""
    assert given.start is not None
    return given.start


def _ext_date(res: dict[str, Any]) -> Any:
    return ext(res, "infusion-date", "infusionDate")


def _no_day0(entry: Entry, pid: str, given: list[ProductGiven], tz: str) -> RowError:
    if given:
        first = given[0]
        day = _start(first).astimezone(ZoneInfo(tz)).date()
        why = (f"The file has an administration of {first.product} ({first.entry.label}, "
               f"{day}), "
               f"but taking day 0 from it is off: an admin can turn on the site setting "
               f"{DAY0}, or add the infusion-date extension, or register the patient first "
               "with a patients CSV.")
    else:
        why = ("Add the infusion-date extension, or register the patient first with a "
               "patients CSV (or, with the site setting "
               f"{DAY0} on, include the CAR-T product's MedicationAdministration).")
    return RowError(entry.row, PATIENT_PATHS["infusion_date"], pid,
                    f"Patient {pid} has no infusion date (day 0). {why}")

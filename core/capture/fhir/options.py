"""Site settings of the FHIR import (SiteSetting rows, set on Users & settings by an admin).

- `fhir.day0_from_administration` (default false): a Patient without the infusion-date
  extension takes day 0 from the CAR-T product's MedicationAdministration in the same file.
- `fhir.car_t_product_codes` (default []): medication codes, or words of their display
  texts, that name the site's CAR-T products (beside the built-in names of
  core.capture.fhir.drugs.PRODUCTS).
- `fhir.extra_drugs` (default []): core.vocabulary.observations drug codes recorded from
  MedicationAdministration beside the anti-cytokine, corticosteroid and IEC-HS-directed
  drugs (e.g. "paracetamol").
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from core.capture.fhir.drugs import RECORDED
from core.store.models import SiteSetting
from core.vocabulary.observations import resolve_drug

log = logging.getLogger(__name__)

DAY0 = "fhir.day0_from_administration"
PRODUCT_CODES = "fhir.car_t_product_codes"
EXTRA_DRUGS = "fhir.extra_drugs"


def as_strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        return ()
    return tuple(str(v).strip() for v in value if str(v).strip())


@dataclass(frozen=True)
class Options:
    day0_from_administration: bool = False
    product_codes: tuple[str, ...] = ()
    recorded: frozenset[str] = field(default_factory=lambda: RECORDED)

    @classmethod
    def load(cls, session: Session) -> Options:
        def get(key: str, default: Any) -> Any:
            row = session.get(SiteSetting, key)
            return default if row is None else row.value.get("value", default)

        extra = set()
        for name in as_strings(get(EXTRA_DRUGS, [])):
            drug = resolve_drug(name)
            if drug is None:
                log.warning("site setting %s: %r is not a drug CAR-T Watch records; ignored",
                            EXTRA_DRUGS, name)
            else:
                extra.add(drug)
        return cls(day0_from_administration=bool(get(DAY0, False)),
                   product_codes=as_strings(get(PRODUCT_CODES, [])),
                   recorded=RECORDED | frozenset(extra))

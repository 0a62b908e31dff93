"""FHIR R4 import: a Bundle (JSON), one resource, or ndjson.

Resources are mapped onto the CSV kinds (patients, labs, observations, treatments) and
pass through the CSV import's own validation and write path (`core.capture.importing.validate_rows`
/ `write_rows`), so units, plausibility, data-entry limits and idempotency are identical.
Errors name the position (the Bundle entry number, the ndjson line) and the FHIR path.
Everything is one transaction (`write_session`): all or nothing, alerts follow.

Mapping (each module says more):
- Patient -> patients (core.capture.fhir.patients): identifier, infusion-date extension (day 0),
  product; day 0 from the CAR-T product's administration where a site allows it.
- Observation -> by its code, through the site code map then LOINC (core.capture.codemap): an
  analyte -> labs (core.capture.fhir.labs); a vital sign or other bedside kind -> observations
  (core.capture.fhir.vitals: temperature Cel/[degF] -> °C, SpO2 %, oxygen L/min, pressures mmHg,
  rates /min; blood-pressure panel components).
- MedicationAdministration (completed or in-progress) -> treatments for tocilizumab,
  corticosteroids, anakinra, siltuximab, ruxolitinib, emapalumab, etoposide
  (core.capture.fhir.drugs); vasopressors -> the `vasopressors` count and `vasopressin` observations
  the CRS grade reads (core.capture.fhir.vasopressors).
- Status (core.capture.fhir.status): entered-in-error retracts what we stored; amended / corrected
  (or a changed final) supersede it; preliminary labs are stored marked preliminary;
  cancelled, not-done and the like are skipped.
- Everything else (other resource types, codes neither the map nor LOINC knows, medicines
  we do not record) is skipped and counted in the report (`FhirReport.skipped`), not an
  error; a malformed resource that we do monitor rejects the file.
- Idempotent: source_record_id is the resource id; a re-import adds nothing.

Site settings: core.capture.fhir.options (fhir.day0_from_administration, fhir.car_t_product_codes,
fhir.extra_drugs).
"""

from core.capture.fhir.importer import import_fhir
from core.capture.fhir.options import DAY0, EXTRA_DRUGS, PRODUCT_CODES
from core.capture.fhir.read import LOINC_SYSTEM
from core.capture.fhir.report import FhirReport

__all__ = ["import_fhir", "FhirReport", "LOINC_SYSTEM", "DAY0", "PRODUCT_CODES",
           "EXTRA_DRUGS"]

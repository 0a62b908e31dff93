"""ADT^A01/A02/A03 applied to the patient's row: admitted (active, bed), transferred (bed),
discharged; a deceased patient's status is left as it is. Audited with the message's control ID.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import Session, col

from core.capture.hl7.parse import AdtEvent, Parsed
from core.store import audit
from core.store.models import Patient, PatientStatus

if TYPE_CHECKING:
    from core.capture.hl7.check import Applied

log = logging.getLogger(__name__)


def apply_adt(session: Session, parsed: Parsed, adt: AdtEvent, patient_id: str, actor: str,
         out: Applied) -> None:
    patient = session.execute(select(Patient).where(
        col(Patient.patient_id) == patient_id)).scalars().one()
    before = audit.snapshot(patient)
    if adt.event in ("A01", "A02") and adt.bed:
        patient.bed = adt.bed
    if adt.event == "A01":
        if patient.status == PatientStatus.DECEASED.value:
            out.notes.append(f"{patient_id} is recorded as deceased; status not changed")
        else:
            patient.status = PatientStatus.ACTIVE
    elif adt.event == "A03":
        if patient.status == PatientStatus.DECEASED.value:
            out.notes.append(f"{patient_id} is recorded as deceased; status not changed")
        else:
            patient.status = PatientStatus.DISCHARGED
    after = audit.snapshot(patient)
    if after == before:
        out.notes.append(f"ADT^{adt.event}: {patient_id} already so; nothing changed")
        return
    session.add(patient)
    session.flush()
    what = {"A01": "admitted", "A02": "transferred", "A03": "discharged"}[adt.event]
    audit.record(session, actor=actor, action="adt", table_name="patient", record_id=patient.id,
                 patient_id=patient_id, before=before, after=after,
                 reason=f"{what} (HL7 ADT^{adt.event}, message {parsed.header.control_id})")
    out.rows_written += 1
    log.info("HL7 ADT^%s: %s %s (bed %s, status %s)", adt.event, patient_id, what,
             patient.bed, patient.status)

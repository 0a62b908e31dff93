"""The clinical tables: patients, labs, observations, episodes, treatments, vasopressor
administrations, course events, explained missing labs, import batches, and their enums.

Every clinical row carries `_Provenance` (source, import batch, row_key/content_hash, who
entered it, its `status` and what it supersedes); CLINICAL_TABLES names them by import kind.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.store.models.times import utcnow


class RecordStatus(StrEnum):
    """Lifecycle of a clinical row. Only `final` rows feed rules and plots."""

    FINAL = "final"
    SUPERSEDED = "superseded"  # replaced by a correction (see supersedes_id on the new row)
    ENTERED_IN_ERROR = "entered_in_error"  # hidden from rules and plots, kept for audit


class PatientStatus(StrEnum):
    ACTIVE = "active"
    DISCHARGED = "discharged"
    DECEASED = "deceased"
    ARCHIVED = "archived"


class EpisodeKind(StrEnum):
    CRS = "CRS"
    ICANS = "ICANS"
    IEC_HS = "IEC-HS"


class EpisodeOrigin(StrEnum):
    DOCUMENTED = "documented"  # by a clinician; always wins over a suggestion
    SUGGESTED = "suggested"  # computed by the rules


class EventKind(StrEnum):
    PROGRESSION = "progression"
    NEXT_THERAPY = "next_therapy"
    DEATH = "death"
    LAST_FOLLOWUP = "last_followup"


class _Provenance(SQLModel):
    """Who wrote a clinical row, from where, and its correction state."""

    source: str = Field(default="manual", max_length=20)  # manual | csv | fhir | sample
    source_record_id: str | None = Field(default=None, max_length=200)
    import_batch_id: int | None = Field(default=None, foreign_key="importbatch.id", index=True)
    row_key: str | None = Field(default=None, max_length=64)  # hash of the natural key
    content_hash: str | None = Field(default=None, max_length=64)  # hash of the values
    entered_by: str = Field(default="system", max_length=100)
    entered_at: datetime = Field(default_factory=utcnow)
    status: RecordStatus = Field(default=RecordStatus.FINAL, sa_type=String(20), index=True)
    supersedes_id: int | None = Field(default=None)
    correction_reason: str | None = Field(default=None, max_length=500)


class Patient(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    patient_id: str = Field(max_length=64, unique=True, index=True)  # study ID or MRN
    initials: str | None = Field(default=None, max_length=8)
    bed: str | None = Field(default=None, max_length=20)
    ward: str = Field(default="main", max_length=40, index=True)
    product: str = Field(max_length=80)
    infusion_date: date  # day 0
    lymphodepletion_start: date | None = None
    sex: str | None = Field(default=None, max_length=10)
    birth_year: int | None = None
    weight_kg: float | None = None
    disease: str | None = Field(default=None, max_length=120)
    status: PatientStatus = Field(default=PatientStatus.ACTIVE, sa_type=String(20), index=True)
    is_synthetic: bool = False
    source: str = Field(default="manual", max_length=20)
    import_batch_id: int | None = Field(default=None, foreign_key="importbatch.id")
    entered_by: str = Field(default="system", max_length=100)
    entered_at: datetime = Field(default_factory=utcnow)


class LabResult(_Provenance, table=True):
    __table_args__ = (
        UniqueConstraint("row_key", name="uq_labresult_row_key"),
        Index("ix_labresult_patient_time", "patient_pk", "collected_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id")
    analyte: str = Field(max_length=20, index=True)  # core.vocabulary.units.ANALYTES key
    loinc: str | None = Field(default=None, max_length=20)
    collected_at: datetime
    value: float  # canonical unit
    unit: str = Field(max_length=20)  # canonical unit
    qualifier: str | None = Field(default=None, max_length=1)  # "<" or ">" (censored)
    original_value: str = Field(max_length=40)
    original_unit: str = Field(max_length=30)
    ref_low: float | None = None  # reporting lab's range, canonical unit
    ref_high: float | None = None
    confirmed_unusual: bool = False  # past a soft limit, confirmed at entry
    verified_by: str | None = Field(default=None, max_length=100)
    verified_at: datetime | None = None
    # a preliminary result (HL7 OBX-11 P, FHIR status preliminary): stored and shown, fed to
    # the rules only where the site setting `inbound.rules_use_preliminary` says so
    preliminary: bool = False


class Observation(_Provenance, table=True):
    __table_args__ = (
        UniqueConstraint("row_key", name="uq_observation_row_key"),
        Index("ix_observation_patient_time", "patient_pk", "observed_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id")
    # core.vocabulary.observations.OBSERVATION_KINDS key
    kind: str = Field(max_length=40, index=True)
    observed_at: datetime
    value_num: float | None = None
    value_text: str | None = Field(default=None, max_length=200)
    unit: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, max_length=1000)


class Episode(_Provenance, table=True):
    __table_args__ = (UniqueConstraint("row_key", name="uq_episode_row_key"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    kind: EpisodeKind = Field(sa_type=String(10))
    grade: int | None = None
    onset: datetime
    resolved: datetime | None = None
    origin: EpisodeOrigin = Field(default=EpisodeOrigin.DOCUMENTED, sa_type=String(12))
    note: str | None = Field(default=None, max_length=1000)


class Treatment(_Provenance, table=True):
    __table_args__ = (UniqueConstraint("row_key", name="uq_treatment_row_key"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    drug: str = Field(max_length=40)  # core.vocabulary.observations.DRUGS key
    given_at: datetime
    dose: float | None = None
    dose_unit: str | None = Field(default=None, max_length=20)
    route: str | None = Field(default=None, max_length=20)


class VasopressorAdministration(_Provenance, table=True):
    """A vasopressor (or vasopressin) administration from the EHR's record (FHIR
    MedicationAdministration; source_record_id = its resource id): what the `vasopressors`
    and `vasopressin` observations are derived from (core.capture.fhir.vasopressors), kept so that a
    later file or sync page counts the drugs already running. Not read by the rules."""

    __table_args__ = (Index("ix_vasopressoradministration_patient_time", "patient_pk",
                            "started_at"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id")
    drug: str = Field(max_length=40)  # norepinephrine, ..., "vasopressin", or "code X"
    started_at: datetime
    ended_at: datetime | None = None
    admin_status: str = Field(max_length=20)  # FHIR status: completed | in-progress


class CourseEvent(_Provenance, table=True):
    __table_args__ = (UniqueConstraint("row_key", name="uq_courseevent_row_key"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    kind: EventKind = Field(sa_type=String(20))
    at: datetime
    note: str | None = Field(default=None, max_length=1000)


class MissingLab(_Provenance, table=True):
    """An explained gap: the expected lab of that day was not drawn, haemolysed, ..."""

    __table_args__ = (UniqueConstraint("row_key", name="uq_missinglab_row_key"),)
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    analyte: str = Field(max_length=20)
    day: int  # day after infusion
    reason: str = Field(max_length=40)  # not_drawn | haemolysed | pending | refused | other


class ImportBatch(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    file_name: str = Field(max_length=255)
    file_sha256: str = Field(max_length=64, index=True)
    rows_in_file: int = 0
    rows_written: int = 0
    rows_already_present: int = 0
    imported_by: str = Field(max_length=100)
    imported_at: datetime = Field(default_factory=utcnow)


CLINICAL_TABLES: dict[str, type[SQLModel]] = {
    "labs": LabResult,
    "observations": Observation,
    "episodes": Episode,
    "treatments": Treatment,
    "events": CourseEvent,
}

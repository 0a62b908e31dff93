"""SQLModel tables for the whole mission.

Conventions:
- every time is stored as UTC (timezone-aware); "day N" is derived with the ward's zone;
- lab values are stored in the canonical unit (core/vocabulary/units.py) with the original beside
them;
- nothing is hard-deleted: clinical rows carry a `status` and a correction inserts a new row
  that `supersedes_id` the old one, with a reason; every write is also in `auditlog`;
- `row_key` hashes a row's natural key (patient, item, time) and `content_hash` its values:
  a re-import of the same row adds nothing, a different value for the same key is refused
  (it needs a correction with a reason). A correction's new row has no row_key.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import overload

from sqlalchemy import JSON, Column, Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def as_utc(when: datetime) -> datetime: ...
@overload
def as_utc(when: None) -> None: ...
def as_utc(when: datetime | None) -> datetime | None:
    """`when` as an aware UTC instant (SQLite hands back naive UTC), None as None."""
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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


class AlertState(StrEnum):
    FIRING = "firing"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"
    ESCALATED = "escalated"


class Role(StrEnum):
    DISPLAY = "display"
    VIEWER = "viewer"
    NURSE = "nurse"
    CLINICIAN = "clinician"
    ADMIN = "admin"


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


class Alert(SQLModel, table=True):
    """One alert per patient, rule and episode; `evaluate` moves it through its states."""

    __table_args__ = (
        UniqueConstraint("patient_pk", "rule_id", "episode_key", name="uq_alert_episode"),
    )
    id: int | None = Field(default=None, primary_key=True)
    patient_pk: int = Field(foreign_key="patient.id", index=True)
    rule_id: str = Field(max_length=40, index=True)
    episode_key: str = Field(max_length=40)  # e.g. "since-day-8"
    severity: str = Field(max_length=10)  # info | warning | severe
    state: AlertState = Field(default=AlertState.FIRING, sa_type=String(14), index=True)
    title: str = Field(max_length=200)
    message: str = Field(max_length=2000)
    since_day: float | None = None
    grade: int | None = None
    score: float | None = None
    evidence: list = Field(default_factory=list, sa_column=Column(JSON))
    missing: list = Field(default_factory=list, sa_column=Column(JSON))
    first_fired_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    fire_count: int = 1
    acknowledged_by: str | None = Field(default=None, max_length=100)
    acknowledged_at: datetime | None = None
    ack_note: str | None = Field(default=None, max_length=1000)
    snoozed_until: datetime | None = None
    snooze_reason: str | None = Field(default=None, max_length=500)
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None


class AlertEvent(SQLModel, table=True):
    """The history of one alert: fired, acknowledged, snoozed, resolved, re-fired, escalated."""

    id: int | None = Field(default=None, primary_key=True)
    alert_id: int = Field(foreign_key="alert.id", index=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=100)
    action: str = Field(max_length=20)
    note: str | None = Field(default=None, max_length=1000)


class EvaluationRun(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    as_of: datetime
    patients: int = 0
    findings: int = 0
    actor: str = Field(default="system", max_length=100)


class EvaluationFailure(SQLModel, table=True):
    """A write committed but bringing its patients' alerts up to date failed (or a monitor
    cycle's evaluation did): kept until a later evaluation of those patients succeeds."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    source: str = Field(max_length=20)  # write | monitor
    patient_pks: list = Field(default_factory=list, sa_column=Column(JSON))
    error: str = Field(max_length=2000)
    retried_at: datetime | None = Field(default=None, index=True)  # None = still failing


class MonitorCycle(SQLModel, table=True):
    """One cycle of `python -m core monitor`: the heartbeat the huddle and health check read."""

    id: int | None = Field(default=None, primary_key=True)
    worker: str = Field(max_length=120)  # host:pid
    started_at: datetime = Field(default_factory=utcnow, index=True)
    finished_at: datetime | None = Field(default=None, index=True)
    patients: int = 0
    delivered: int = 0
    failed_deliveries: int = 0
    error: str | None = Field(default=None, max_length=2000)


class NotificationStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (or the end of quiet hours)
    SENDING = "sending"  # an attempt has begun; a crash leaves it here, retried after a lease
    DELIVERED = "delivered"
    FAILED = "failed"  # retries used up: shown on the huddle, overview and admin page
    CANCELLED = "cancelled"  # the alert was acknowledged or resolved first


class Notification(SQLModel, table=True):
    """The outbox: one notification of one alert event to one contact point, written in the
    transaction of the alert change. `dedupe_key` (event, contact) makes it at most one."""

    __table_args__ = (UniqueConstraint("dedupe_key", name="uq_notification_dedupe"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=200)
    alert_id: int | None = Field(default=None, foreign_key="alert.id", index=True)
    alert_event_id: int | None = Field(default=None, foreign_key="alertevent.id")
    event: str = Field(max_length=20)  # fired | escalated | resolved | test
    contact: str = Field(max_length=100)
    tier: int = 1
    severity: str = Field(max_length=10)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON))
    status: NotificationStatus = Field(default=NotificationStatus.PENDING, sa_type=String(12),
                                       index=True)
    attempts: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=1000)
    created_by: str = Field(default="system", max_length=100)


class DeliveryAttempt(SQLModel, table=True):
    """Every attempt to deliver a notification, kept."""

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", index=True)
    worker: str = Field(max_length=120)
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    ok: bool | None = None  # None = the worker died during the attempt
    error: str | None = Field(default=None, max_length=1000)


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=120)
    role: Role = Field(sa_type=String(12))
    password_hash: str = Field(max_length=200)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class SiteSetting(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=100)
    value: dict = Field(default_factory=dict, sa_column=Column(JSON))
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Append-only: who, when, what changed (before/after) and why."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=100, index=True)
    action: str = Field(max_length=30)  # insert | correct | entered_in_error | import | login ...
    table_name: str = Field(max_length=40)
    record_id: str | None = Field(default=None, max_length=64)
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    before: dict | None = Field(default=None, sa_column=Column(JSON))
    after: dict | None = Field(default=None, sa_column=Column(JSON))
    reason: str | None = Field(default=None, max_length=1000)


CLINICAL_TABLES: dict[str, type[SQLModel]] = {
    "labs": LabResult,
    "observations": Observation,
    "episodes": Episode,
    "treatments": Treatment,
    "events": CourseEvent,
}


class MessageStatus(StrEnum):
    """What became of a message from another system: never dropped."""

    STORED = "stored"  # its values are in the clinical tables (or it had nothing new)
    REFUSED = "refused"  # malformed: the sender was told why (HL7 AE), nothing written
    HELD = "held"  # unknown patient or unmapped code: waits for a person on the held page
    RELEASED = "released"  # a held message, processed after a person mapped or matched it
    DISMISSED = "dismissed"  # a held message a person decided not to import, with a reason


class InboundMessage(SQLModel, table=True):
    """Every message another system sent us (HL7 v2, FHIR sync page), raw, with its fate.
    `control_id` (HL7 MSH-10) makes a resend a no-op that is acknowledged again."""

    __table_args__ = (UniqueConstraint("channel", "control_id", name="uq_inbound_control"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=20)  # hl7 | fhir
    control_id: str = Field(max_length=200)
    message_type: str = Field(default="", max_length=20)  # ORU^R01, ADT^A02, Bundle ...
    sender: str = Field(default="", max_length=200)  # MSH-3/4, or the FHIR server
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    raw: str = Field(sa_type=Text)
    status: MessageStatus = Field(sa_type=String(12), index=True)
    reason: str | None = Field(default=None, max_length=2000)
    rows_written: int = 0
    received_at: datetime = Field(default_factory=utcnow, index=True)
    processed_at: datetime | None = None
    handled_by: str | None = Field(default=None, max_length=100)  # who released / dismissed


class CodeTarget(StrEnum):
    ANALYTE = "analyte"  # a lab: core.vocabulary.units.ANALYTES key
    OBSERVATION = "observation"  # a bedside observation: core.vocabulary.observations kind
    DRUG = "drug"  # a treatment: core.vocabulary.observations.DRUGS key


class CodeMapEntry(SQLModel, table=True):
    """A site's local code (lab system, EHR) mapped to what CAR-T Watch monitors. One map
    serves CSV, HL7 v2 and FHIR. Never deleted: a change deactivates the old entry (audited)."""

    __table_args__ = (Index("ix_codemapentry_lookup", "system", "code", "active"),)
    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(default="*", max_length=200)  # coding system / sending app; * = any
    code: str = Field(max_length=100)
    display: str | None = Field(default=None, max_length=200)
    target_kind: CodeTarget = Field(sa_type=String(12))
    target: str = Field(max_length=40)
    unit: str | None = Field(default=None, max_length=30)  # the unit the source sends, if
    # its own spelling is not UCUM or a spelling core.vocabulary.units accepts (e.g. "G/L" for
    # ng/mL)
    active: bool = Field(default=True, index=True)
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow)


class SyncWatermark(SQLModel, table=True):
    """fhir-sync: the newest `meta.lastUpdated` seen per server and resource type."""

    key: str = Field(primary_key=True, max_length=300)  # "<base url>|<resource type>"
    last_updated: datetime
    resources: int = 0  # resources taken in by the last page run
    updated_at: datetime = Field(default_factory=utcnow)

"""The tables of the interfaces with other systems: every inbound message (HL7 v2, FHIR)
with its fate, the site's code map, and the fhir-sync watermarks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.store.models.times import utcnow


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

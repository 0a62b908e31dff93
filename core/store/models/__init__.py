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

Modules (import the names from here, `core.store.models`; importing it registers every table
in `SQLModel.metadata`, which `init` and the migrations read):
- clinical: patients, labs, observations, episodes, treatments, vasopressor administrations,
  course events, missing labs, import batches (CLINICAL_TABLES) and their enums;
- monitoring: alerts and their events, evaluation runs and failures, monitor cycles,
  notifications and delivery attempts;
- site: users (Role), site settings, the audit log;
- systems: inbound messages, the code map, fhir-sync watermarks;
- times: `utcnow`, `as_utc`.
"""

from __future__ import annotations

from sqlmodel import SQLModel  # re-exported: its metadata holds every table below

from core.store.models.clinical import (
    CLINICAL_TABLES,
    CourseEvent,
    Episode,
    EpisodeKind,
    EpisodeOrigin,
    EventKind,
    ImportBatch,
    LabResult,
    MissingLab,
    Observation,
    Patient,
    PatientStatus,
    RecordStatus,
    Treatment,
    VasopressorAdministration,
)
from core.store.models.monitoring import (
    Alert,
    AlertEvent,
    AlertState,
    DeliveryAttempt,
    EvaluationFailure,
    EvaluationRun,
    MonitorCycle,
    Notification,
    NotificationStatus,
)
from core.store.models.site import (
    AuditLog,
    Role,
    SiteSetting,
    User,
)
from core.store.models.systems import (
    CodeMapEntry,
    CodeTarget,
    InboundMessage,
    MessageStatus,
    SyncWatermark,
)
from core.store.models.times import (
    as_utc,
    utcnow,
)

__all__ = [
    "Alert", "AlertEvent", "AlertState", "AuditLog", "CLINICAL_TABLES", "CodeMapEntry",
    "CodeTarget", "CourseEvent", "DeliveryAttempt", "Episode", "EpisodeKind", "EpisodeOrigin",
    "EvaluationFailure", "EvaluationRun", "EventKind", "ImportBatch", "InboundMessage", "LabResult",
    "MessageStatus", "MissingLab", "MonitorCycle", "Notification", "NotificationStatus",
    "Observation", "Patient", "PatientStatus", "RecordStatus", "Role", "SQLModel", "SiteSetting",
    "SyncWatermark", "Treatment", "User", "VasopressorAdministration", "as_utc", "utcnow",
]

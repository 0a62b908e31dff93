"""The held queue: HL7 messages for an unknown patient or an unmapped code, waiting for a
person. Nothing here drops a message: a nurse matches the patient (or an admin maps the code,
core.capture.codemap.map_code) and releases it through the same processing path as a live message,
or dismisses it with a reason. Every action is audited with who and why.

A match is kept on the message itself (`InboundMessage.patient_id` becomes the registered
patient's study ID; the reason records the PID-3 value it stands for), so it does not depend
on the site's identifier settings: release maps the PID-3 values no registered patient has
onto the matched patient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from core.access.permissions import require
from core.capture.codemap import ANY_SYSTEM, CodeMap, Target
from core.capture.hl7.check import target_of
from core.capture.hl7.parse import Problem, parse
from core.capture.hl7.receive import CHANNEL, ID_TYPE_SETTING, process, setting
from core.config import Settings
from core.store import audit
from core.store.faults import storage_guard
from core.store.models import CodeTarget, InboundMessage, MessageStatus, Patient
from core.store.unit_of_work import write_session

log = logging.getLogger(__name__)

HELD = MessageStatus.HELD.value
COLUMNS = ["id", "received_at", "message_type", "sender", "control_id", "patient_id",
           "reason", "raw"]


class HeldRefused(ValueError):
    """An action on a held message that cannot be done; the sentence says why."""


def held_messages(engine: Engine, *, include_handled: bool = False) -> pd.DataFrame:
    """Held messages, oldest first (with include_handled: also released and dismissed)."""
    wanted = [HELD] + ([MessageStatus.RELEASED.value, MessageStatus.DISMISSED.value]
                       if include_handled else [])
    M = InboundMessage
    with Session(engine) as s:
        rows = s.execute(select(col(M.id), col(M.received_at), col(M.message_type),
                                col(M.sender), col(M.control_id), col(M.patient_id),
                                col(M.reason), col(M.raw), col(M.status), col(M.handled_by))
                         .where(col(M.channel) == CHANNEL, col(M.status).in_(wanted))
                         .order_by(col(M.received_at), col(M.id))).all()
    return pd.DataFrame(rows, columns=[*COLUMNS, "status", "handled_by"])


def _held(session: Session, message_id: int) -> InboundMessage:
    row = session.get(InboundMessage, message_id)
    if row is None or row.channel != CHANNEL:
        raise HeldRefused(f"No HL7 message {message_id}.")
    if row.status != HELD:
        raise HeldRefused(f"Message {row.control_id} is {row.status}, not held.")
    return row


def _unknown_ids(session: Session, row: InboundMessage, settings: Settings) -> list[str]:
    parsed = parse(row.raw, tz=settings.ward_tz,
                   id_type=setting(session, ID_TYPE_SETTING) or None)
    known = set(session.execute(select(col(Patient.patient_id)).where(
        col(Patient.patient_id).in_(parsed.patient_ids))).scalars())
    return [pid for pid in parsed.patient_ids if pid not in known]


@storage_guard()
def match_patient(engine: Engine, message_id: int, patient_id: str, *, user: str,
                  reason: str = "", role: str | None = None,
                  settings: Settings | None = None) -> None:
    """Say which registered patient a held message's unknown PID-3 stands for (audited)."""
    require(role, "correct_data")
    settings = settings or Settings.from_env()
    with write_session(engine, settings=settings, actor=user) as session:
        row = _held(session, message_id)
        if session.execute(select(col(Patient.id)).where(
                col(Patient.patient_id) == patient_id)).first() is None:
            raise HeldRefused(f"No registered patient {patient_id!r}; register the patient "
                              "first.")
        try:
            unknown = _unknown_ids(session, row, settings)
        except Problem as exc:
            raise HeldRefused(f"The message cannot be read: {exc}") from exc
        before = audit.snapshot(row)
        sent = ", ".join(repr(u) for u in unknown) or "(none: the patient is known)"
        row.patient_id = patient_id
        row.reason = (f"{row.reason or ''} Matched: PID-3 {sent} is {patient_id} "
                      f"({user}{': ' + reason.strip() if reason.strip() else ''}).")[-2000:]
        session.add(row)
        session.flush()
        audit.record(session, actor=user, action="hl7_match_patient",
                     table_name="inboundmessage", record_id=row.id, patient_id=patient_id,
                     before=before, after=audit.snapshot(row),
                     reason=reason.strip() or f"PID-3 {sent} matched to {patient_id}")
    log.info("HL7 held message %s matched to %s by %s", message_id, patient_id, user)


@storage_guard()
def release(engine: Engine, message_id: int, *, user: str, role: str | None = None,
            settings: Settings | None = None) -> str:
    """Process a held message again (same path as a live one) in one transaction; returns
    the outcome sentence. Raises HeldRefused, with nothing changed, when it would still be
    held or when its content is refused (then dismiss it with a reason)."""
    require(role, "correct_data")
    settings = settings or Settings.from_env()
    with write_session(engine, settings=settings, actor=user) as session:
        row = _held(session, message_id)
        matched: dict[str, str] = {}
        try:
            if row.patient_id and session.execute(select(col(Patient.id)).where(
                    col(Patient.patient_id) == row.patient_id)).first() is not None:
                matched = {pid: row.patient_id for pid in _unknown_ids(session, row, settings)}
            status, reason, rows, patient_id = process(session, row.raw, settings,
                                                       actor=user, matched=matched)
        except Problem as exc:
            raise HeldRefused(f"The message is refused as it stands ({exc}); nothing was "
                              "written. Dismiss it with a reason, and ask the sender to "
                              "correct it.") from exc
        if status is MessageStatus.HELD:
            raise HeldRefused(f"Still held: {reason}")
        before = audit.snapshot(row)
        row.status = MessageStatus.RELEASED
        row.rows_written = rows
        row.patient_id = patient_id or row.patient_id
        row.handled_by = user
        row.processed_at = datetime.now(UTC)
        row.reason = f"Released by {user}: {reason}"[:2000]
        session.add(row)
        session.flush()
        audit.record(session, actor=user, action="hl7_release", table_name="inboundmessage",
                     record_id=row.id, patient_id=row.patient_id, before=before,
                     after=audit.snapshot(row), reason=f"held message released: {reason}")
    log.info("HL7 held message %s released by %s: %s", message_id, user, reason)
    return reason


@storage_guard()
def dismiss(engine: Engine, message_id: int, *, user: str, reason: str,
            role: str | None = None) -> None:
    """Decide not to import a held message (kept, with who and why)."""
    require(role, "correct_data")
    if not reason.strip():
        raise HeldRefused("Give a reason for dismissing the message (it goes to the audit "
                          "trail).")
    with write_session(engine, actor=user) as session:
        row = _held(session, message_id)
        before = audit.snapshot(row)
        row.status = MessageStatus.DISMISSED
        row.handled_by = user
        row.processed_at = datetime.now(UTC)
        row.reason = f"{row.reason or ''} Dismissed by {user}: {reason.strip()}"[-2000:]
        session.add(row)
        session.flush()
        audit.record(session, actor=user, action="hl7_dismiss", table_name="inboundmessage",
                     record_id=row.id, patient_id=row.patient_id, before=before,
                     after=audit.snapshot(row), reason=reason.strip())
    log.info("HL7 held message %s dismissed by %s: %s", message_id, user, reason.strip())


@dataclass(frozen=True)
class HeldCode:
    """One OBX-3 of a held message: what to map (system, code, text) and what it maps to
    now (None: nothing yet; a drug target keeps an ORU held, core.capture.hl7.results)."""

    system: str
    code: str
    text: str
    target: Target | None

    @property
    def placeable(self) -> bool:
        return self.target is not None and self.target.kind is not CodeTarget.DRUG


def held_code_targets(engine: Engine, message_id: int,
                      settings: Settings | None = None) -> list[HeldCode]:
    """Each distinct OBX code of a held message with its current target (the same lookup
    release uses: core.capture.hl7.check.target_of), for the mapping form on the page."""
    settings = settings or Settings.from_env()
    with Session(engine) as session:
        row = session.get(InboundMessage, message_id)
        if row is None:
            return []
        try:
            parsed = parse(row.raw, tz=settings.ward_tz)
        except Problem as exc:
            log.warning("held message %s cannot be read: %s", message_id, exc)
            return []
        codes = CodeMap.load(session)
    out: dict[tuple[str, str, str], HeldCode] = {}
    for r in parsed.results:
        system, code = r.codings[0]
        text = r.code_text.split("^")[1] if r.code_text.count("^") >= 1 else ""
        key = (system or ANY_SYSTEM, code, text)
        out.setdefault(key, HeldCode(*key, target=target_of(codes, parsed, r)))
    return list(out.values())


def held_codes(engine: Engine, message_id: int,
               settings: Settings | None = None) -> list[tuple[str, str, str]]:
    """(system, code, text) of each OBX of a held message, for mapping on the page."""
    return [(c.system, c.code, c.text) for c in held_code_targets(engine, message_id, settings)]

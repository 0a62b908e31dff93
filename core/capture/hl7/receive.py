"""HL7 messages -> their transaction -> one acknowledgement each (original mode).

- AA: committed. The values are in the clinical tables (their patients' alerts brought up to
  date in the same transaction, core.store.unit_of_work), or the message is held for a person
  (unknown patient or code): we have taken responsibility for it either way.
- AE: the message is wrong (the ERR segment names segment, field and reason); nothing
  clinical is written and the raw text is kept as a `refused` InboundMessage in its own
  small transaction.
- AR: the store cannot take it now (read-only, full, unreachable: core.store.faults); nothing is
  stored and the sender retries.

Each message is all or nothing on its own. Messages that arrived together (from several
senders while the database was busy) share one commit, a group commit (`receive_all`): each is
applied in a SAVEPOINT, so a bad one is refused alone; then every touched patient is evaluated
once and the transaction commits, and only then does any of them get its AA. An ACK still
means committed, and a message without one may be sent again.

MSH-10 makes a resend of a stored or held message a no-op acknowledged with the same code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import hl7
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from core.capture.hl7.check import Hold, Outcome, check_all
from core.capture.hl7.parse import (
    ERROR_TEXT,
    INTERNAL_ERROR,
    Header,
    Parsed,
    Problem,
    fallback_control_id,
    header,
    parse,
    parse_message,
)
from core.capture.hl7.results import write
from core.config import Settings
from core.store import audit
from core.store.faults import FAULT_TYPES, StorageFault, write_failure
from core.store.models import InboundMessage, MessageStatus, SiteSetting
from core.store.unit_of_work import write_session

log = logging.getLogger(__name__)

CHANNEL = "hl7"
ACTOR = "hl7-listener"
ID_TYPE_SETTING = "hl7.patient_identifier_type"  # PID-3 CX-5 type; default: first repetition
_FALLBACK_MSH = "MSH|^~\\&|||||||ACK^ACK^ACK||P|2.5"


@dataclass(frozen=True)
class Reply:
    """What the listener sends back, and what became of the message."""

    code: str  # AA | AE | AR
    ack: str  # the ACK message (segments separated by CR)
    control_id: str
    status: MessageStatus | None  # None when nothing was stored (AR)
    reason: str | None = None


def setting(session: Session, key: str, default: Any = None) -> Any:
    """A site setting (SiteSetting.value["value"]) read in the caller's transaction."""
    row = session.get(SiteSetting, key)
    return default if row is None else row.value.get("value", default)


def build_ack(message: hl7.Message | None, code: str, problems: list[Problem] | None = None,
              text: str = "") -> str:
    """The ACK for `message` (python-hl7's create_ack), with MSA-3 and one ERR per problem
    (ERR-2 segment^sequence^field, ERR-3 code^text^HL70357, ERR-4 severity, ERR-8 text)."""
    base = message
    try:
        if base is None:
            raise KeyError("MSH")
        base.segment("MSH")
    except KeyError:
        base = hl7.parse(_FALLBACK_MSH)
    ack = base.create_ack(code, application="CARTWATCH")
    msa = ack.segment("MSA")
    if text:
        msa.assign_field(ack.escape(text[:80]), 3)
    for p in problems or []:
        err = ack.create_segment([ack.create_field(["ERR"])])
        err.assign_field("", 1)
        err.assign_field(p.segment, 2, 1, 1)
        err.assign_field(str(p.seq), 2, 1, 2)
        err.assign_field(str(p.field_no) if p.field_no else "", 2, 1, 3)
        err.assign_field(p.code, 3, 1, 1)
        err.assign_field(ERROR_TEXT.get(p.code, ""), 3, 1, 2)
        err.assign_field("HL70357", 3, 1, 3)
        err.assign_field("E", 4)
        for n in (5, 6, 7):
            err.assign_field("", n)
        err.assign_field(ack.escape(str(p)[:500]), 8)
        ack.append(err)
    return str(ack)


def receive(engine: Engine, raw: str, settings: Settings | None = None) -> Reply:
    """Process one message (its text without MLLP framing) and return the ACK to send."""
    return receive_all(engine, [raw], settings)[0]


def receive_all(engine: Engine, raws: list[str], settings: Settings | None = None
                ) -> list[Reply]:
    """Process messages that arrived together, in order, in one transaction with a SAVEPOINT
    each (see the module's doc); their ACKs, in the same order."""
    settings = settings or Settings.from_env()
    started = time.perf_counter()
    replies: dict[int, Reply] = {}
    refused: dict[int, tuple[hl7.Message | None, Header | None, Problem]] = {}
    readable: list[tuple[int, hl7.Message, Header]] = []
    for i, raw in enumerate(raws):
        message: hl7.Message | None = None
        try:
            message = parse_message(raw)
            readable.append((i, message, header(message)))
        except Problem as p:
            refused[i] = (message, None, p)
    if readable:
        try:
            with write_session(engine, settings=settings, actor=ACTOR) as session:
                group = _Group.read(session, raws, readable, settings)
                for i, message, head in readable:
                    outcome = _alone(session, group, i, message, head, settings)
                    if isinstance(outcome, Problem):
                        refused[i] = (message, head, outcome)
                    else:
                        replies[i] = outcome
        except Exception as exc:  # nothing of the group committed: every message gets AR
            if isinstance(exc, StorageFault):
                log.warning("HL7 %d message(s) not stored, AR sent (the senders retry): %s",
                            len(readable), exc)
            else:  # a bug outside any one message (the commit, the evaluation's record)
                log.exception("HL7 %d message(s) not stored, AR sent", len(readable))
            problem = Problem("MSH", 1, 0, INTERNAL_ERROR, str(exc))
            for i, message, head in readable:
                replies[i] = Reply("AR", build_ack(message, "AR", [problem],
                                                   "store unavailable; retry"),
                                   head.control_id, None, str(exc))
                refused.pop(i, None)
    for i, refusal in refused.items():
        replies[i] = _refuse(engine, raws[i], *refusal)
    seconds = time.perf_counter() - started
    for i, _message, head in readable:
        reply = replies[i]
        log.info("HL7 %s %s from %s: %s %s in %.3f s (%d message(s) together)",
                 head.control_id, head.message_type, head.sender or "?", reply.code,
                 reply.status, seconds, len(raws))
    return [replies[i] for i in range(len(raws))]


def process(session: Session, raw: str, settings: Settings, *, actor: str,
            matched: dict[str, str] | None = None) -> tuple[MessageStatus, str, int, str | None]:
    """Parse and apply one message in the caller's transaction: (status, reason, rows,
    patient_id). Raises Problem for a bad message (the caller rolls back)."""
    parsed = parse(raw, tz=settings.ward_tz, id_type=setting(session, ID_TYPE_SETTING) or None)
    return _applied(session, parsed.header.control_id,
                    check_all(session, [parsed], tz=settings.ward_tz, matched=matched)[0], actor)


def _applied(session: Session, control_id: str, checked: Outcome, actor: str
             ) -> tuple[MessageStatus, str, int, str | None]:
    if isinstance(checked, Hold):
        log.warning("HL7 %s held: %s", control_id, checked.reason)
        return MessageStatus.HELD, checked.reason, 0, checked.patient_id
    if isinstance(checked, Exception):
        raise checked
    applied = write(session, checked, actor)
    return MessageStatus.STORED, applied.summary(), applied.rows_written, applied.patient_id


@dataclass
class _Group:
    """The messages of a group, parsed and checked together before any is written: each
    one's text and what its check found (core.capture.hl7.check.check_all: the patients,
    codes and stored values they name read once for all), and the records of their control
    IDs received before (None: new)."""

    raws: list[str]
    parsed: dict[int, Parsed]  # the messages readable as an ORU or ADT
    outcomes: dict[int, Outcome]  # what each message's check found (check_all)
    inbound: dict[str, InboundMessage | None]

    @classmethod
    def read(cls, session: Session, raws: list[str],
             readable: list[tuple[int, hl7.Message, Header]], settings: Settings) -> _Group:
        id_type = setting(session, ID_TYPE_SETTING) or None
        outcomes: dict[int, Outcome] = {}
        parsed: dict[int, Parsed] = {}
        for i, message, _head in readable:
            try:
                parsed[i] = parse(raws[i], tz=settings.ward_tz, id_type=id_type,
                                  message=message)
            except Problem as p:
                outcomes[i] = p
        outcomes.update(zip(parsed, check_all(session, list(parsed.values()),
                                              tz=settings.ward_tz), strict=True))
        controls = list(dict.fromkeys(head.control_id for _i, _m, head in readable))
        inbound: dict[str, InboundMessage | None] = dict.fromkeys(controls)
        for row in session.execute(select(InboundMessage).where(
                col(InboundMessage.channel) == CHANNEL,
                col(InboundMessage.control_id).in_(controls))).scalars():
            inbound[row.control_id] = row
        return cls(raws, parsed, outcomes, inbound)

    def read_again(self, session: Session, i: int, head: Header, settings: Settings) -> None:
        """Message `i` read and checked again, alone: another connection committed what it
        names since the group was read."""
        self.inbound[head.control_id] = _inbound(session, head.control_id)
        if i in self.parsed:
            self.outcomes[i] = check_all(session, [self.parsed[i]], tz=settings.ward_tz)[0]


def _alone(session: Session, group: _Group, i: int, message: hl7.Message, head: Header,
           settings: Settings, *, again: bool = True) -> Reply | Problem:
    """Message `i` of the group in its own SAVEPOINT of the caller's transaction: its AA, or
    the Problem that refuses it with nothing of it written. A storage fault is raised (the
    whole transaction fails: AR)."""
    try:
        with session.begin_nested():
            return _store(session, group, i, message, head, settings)
    except Problem as p:
        return p
    except IntegrityError as exc:
        if again:  # the same MSH-10 committed by another connection a moment ago: a resend
            log.info("HL7 %s arrived twice at once; answering as a resend", head.control_id)
            group.read_again(session, i, head, settings)
            return _alone(session, group, i, message, head, settings, again=False)
        failed: Exception = exc
    except Exception as exc:
        if isinstance(exc, FAULT_TYPES) and write_failure(exc) is not None:
            raise
        failed = exc
    # a bug: keep the message (refused, raw kept) and say so
    log.error("HL7 %s could not be processed", head.control_id, exc_info=failed)
    return Problem("MSH", 1, 0, INTERNAL_ERROR,
                   f"internal error ({type(failed).__name__}: {failed}); the message is kept "
                   "for the administrator")


def _store(session: Session, group: _Group, i: int, message: hl7.Message, head: Header,
           settings: Settings) -> Reply:
    raw, checked = group.raws[i], group.outcomes[i]
    known = group.inbound[head.control_id]
    if known is not None and known.status != MessageStatus.REFUSED.value:
        if known.raw != raw:
            log.warning("HL7 %s: a different message reuses a control ID already "
                        "received; nothing added", head.control_id)
        log.info("HL7 %s is a resend (%s): nothing added", head.control_id, known.status)
        return Reply("AA", build_ack(message, "AA"), head.control_id,
                     MessageStatus(known.status), known.reason)
    status, reason, rows, patient_id = _applied(session, head.control_id, checked, ACTOR)
    row = known or InboundMessage(channel=CHANNEL, control_id=head.control_id, raw=raw,
                                  status=status)
    row.message_type, row.sender = head.message_type[:20], head.sender
    row.raw, row.status, row.reason, row.rows_written = raw, status, reason[:2000], rows
    row.patient_id = (patient_id or None) and patient_id[:64]
    row.processed_at = datetime.now(UTC)
    session.add(row)
    session.flush()
    audit.record(session, actor=ACTOR, action=f"hl7_{status.value}",
                 table_name="inboundmessage", record_id=row.id, patient_id=row.patient_id,
                 after={"control_id": head.control_id, "type": head.message_type,
                        "sender": head.sender, "rows_written": rows},
                 reason=reason)
    group.inbound[head.control_id] = row  # a later message of the group resending it
    return Reply("AA", build_ack(message, "AA"), head.control_id, status, reason)


def _inbound(session: Session, control_id: str) -> InboundMessage | None:
    return session.execute(select(InboundMessage).where(
        col(InboundMessage.channel) == CHANNEL,
        col(InboundMessage.control_id) == control_id)).scalars().first()


def _refuse(engine: Engine, raw: str, message: hl7.Message | None, head: Header | None,
            problem: Problem) -> Reply:
    """AE: keep the raw message as refused (its own transaction) and say what is wrong."""
    control = head.control_id if head is not None else fallback_control_id(raw)
    problems = [problem, *problem.extra]
    reason = "Refused: " + " ".join(str(p) for p in problems)
    log.warning("HL7 %s refused (AE): %s", control, reason)
    try:
        with write_session(engine, actor=ACTOR) as session:
            row = _inbound(session, control) or InboundMessage(
                channel=CHANNEL, control_id=control, raw=raw, status=MessageStatus.REFUSED)
            if row.status not in (MessageStatus.REFUSED.value, MessageStatus.REFUSED):
                # stored meanwhile by another connection: that one stands
                return Reply("AA", build_ack(message, "AA"), control,
                             MessageStatus(row.status), row.reason)
            row.raw, row.reason, row.processed_at = raw, reason[:2000], datetime.now(UTC)
            row.status = MessageStatus.REFUSED
            if head is not None:
                row.message_type, row.sender = head.message_type[:20], head.sender
            session.add(row)
            session.flush()
            audit.record(session, actor=ACTOR, action="hl7_refused",
                         table_name="inboundmessage", record_id=row.id, reason=reason[:1000])
    except StorageFault as exc:
        log.warning("HL7 %s: the refusal could not be kept either; AR sent: %s", control, exc)
        return Reply("AR", build_ack(message, "AR", problems, "store unavailable; retry"),
                     control, None, str(exc))
    except IntegrityError:
        log.info("HL7 %s: refused twice at once; the first record stands", control)
    return Reply("AE", build_ack(message, "AE", problems, str(problem)), control,
                 MessageStatus.REFUSED, reason)

"""HL7 v2 text -> plain records (python-hl7 does the parsing); no database here.

An ORU^R01 becomes one `Result` per OBX, each carrying its patient (PID-3), its codes
(OBX-3), value and unit (OBX-5/6), reference range (OBX-7), flags (OBX-8), result status
(OBX-11) and collection time (OBX-14, else the OBR-7 above it). An ADT^A01/A02/A03 becomes
one `AdtEvent`. A problem with the message itself raises `Problem`, which names the segment,
its sequence, the field and an HL7 error code (table 0357); the receiver turns it into an
AE acknowledgement with an ERR segment.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

import hl7

# HL7 table 0357 (message error condition codes) used here
REQUIRED_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT = "201"
INTERNAL_ERROR = "207"
ERROR_TEXT = {REQUIRED_MISSING: "Required field missing", DATA_TYPE_ERROR: "Data type error",
              TABLE_VALUE_NOT_FOUND: "Table value not found",
              UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
              UNSUPPORTED_EVENT: "Unsupported event code",
              INTERNAL_ERROR: "Application internal error"}

# OBX-11 (HL7 table 0085) -> what CAR-T Watch does with the result
FINAL, PRELIMINARY, CORRECTION, DELETE, SKIP = "final", "preliminary", "correction", "delete", \
    "skip"
RESULT_STATUS = {
    "F": FINAL, "U": FINAL,  # U: final, status changed without retransmission
    "P": PRELIMINARY, "R": PRELIMINARY, "S": PRELIMINARY,  # entered/partial: not verified
    "C": CORRECTION, "A": CORRECTION,  # A: amended
    "D": DELETE, "W": DELETE,  # D: delete the OBX record; W: posted as wrong
    "I": SKIP, "X": SKIP, "N": SKIP, "O": SKIP,  # pending, cannot be obtained, not asked
}
ADT_EVENTS = ("A01", "A02", "A03")
_RANGE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)?\s*-\s*([-+]?\d+(?:\.\d+)?)?\s*$")
_ONE_SIDED = re.compile(r"^\s*([<>]=?)\s*([-+]?\d+(?:\.\d+)?)\s*$")
_DTM = re.compile(r"^\d{4,14}(\.\d{1,4})?([+-]\d{4})?$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*$")


class Problem(ValueError):
    """The message cannot be used as sent: where (segment, its sequence, field) and why."""

    def __init__(self, segment: str, seq: int, field_no: int, code: str, text: str) -> None:
        self.segment, self.seq, self.field_no, self.code, self.text = (segment, seq, field_no,
                                                                       code, text)
        self.extra: list[Problem] = []  # further problems of the same message (more ERRs)
        where = f"{segment}-{field_no}" if field_no else segment
        if seq > 1:
            where += f" (segment {segment} #{seq})"
        super().__init__(f"{where}: {text}")


@dataclass(frozen=True)
class Header:
    control_id: str  # MSH-10
    message_type: str  # MSH-9.1^MSH-9.2, e.g. ORU^R01
    sender: str  # MSH-3 application / MSH-4 facility
    sending_app: str
    version: str


@dataclass(frozen=True)
class PatientRef:
    """PID-3: the identifier picked for the site, and every repetition (for the reason)."""

    patient_id: str
    seq: int  # which PID segment (1-based) of the message
    all_ids: tuple[str, ...]


@dataclass
class Result:
    """One OBX, as sent."""

    seq: int  # 1-based among the message's OBX segments
    set_id: str  # OBX-1
    patient: PatientRef
    codings: list[tuple[str, str]]  # (system, code): CWE-3/1, then CWE-6/4
    code_text: str  # "code^text^system" as shown in a reason
    value_type: str  # OBX-2
    value: str  # OBX-5 (number as text; SN comparator moved to qualifier)
    qualifier: str  # "<" or ">" (SN comparator) or ""
    unit: str  # OBX-6.1
    ref_low: str
    ref_high: str
    flags: str  # OBX-8 repetitions joined by ","
    status: str  # FINAL | PRELIMINARY | CORRECTION | DELETE | SKIP
    status_code: str  # OBX-11 as sent
    observed_at: datetime  # aware


@dataclass
class AdtEvent:
    event: str  # A01 | A02 | A03
    patient: PatientRef
    bed: str | None  # PV1-3 as "point of care-room-bed"


@dataclass
class Parsed:
    header: Header
    message: hl7.Message
    results: list[Result] = field(default_factory=list)
    adt: AdtEvent | None = None
    notes: list[str] = field(default_factory=list)  # things worth saying in the reason

    @property
    def patient_ids(self) -> list[str]:
        ids = [r.patient.patient_id for r in self.results]
        if self.adt is not None:
            ids.append(self.adt.patient.patient_id)
        return list(dict.fromkeys(ids))


def fallback_control_id(raw: str) -> str:
    """A stable id for a message without MSH-10 (so its resend is recognised too)."""
    return "sha256:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()[:40]


def _text(segment: hl7.Segment, field_no: int, rep: int = 1, comp: int = 1) -> str:
    try:
        return str(segment.extract_field(1, field_no, rep, comp, 1) or "").strip()
    except (IndexError, KeyError):
        return ""


def _repetitions(segment: hl7.Segment, field_no: int) -> int:
    if field_no >= len(segment):
        return 0
    value = segment(field_no)
    return len(value) if isinstance(value, hl7.Field) else (1 if str(value) else 0)


def parse_message(raw: str) -> hl7.Message:
    """python-hl7's parse of the text; anything unreadable is a Problem at MSH."""
    text = raw.replace("\r\n", "\r").replace("\n", "\r").strip("\r\x00 \t")
    if not text.startswith("MSH"):
        raise Problem("MSH", 1, 0, REQUIRED_MISSING,
                      "the message does not begin with an MSH segment")
    try:
        return hl7.parse(text)
    except Exception as exc:  # python-hl7 raises plain exceptions on broken encoding chars
        raise Problem("MSH", 1, 2, DATA_TYPE_ERROR,
                      f"the message cannot be parsed ({type(exc).__name__}: {exc})") from exc


def header(message: hl7.Message) -> Header:
    msh = message.segment("MSH")
    control = _text(msh, 10)
    if not control:
        raise Problem("MSH", 1, 10, REQUIRED_MISSING,
                      "MSH-10 (message control ID) is empty; it is needed to recognise a "
                      "resend")
    mtype = _text(msh, 9, 1, 1).upper()
    event = _text(msh, 9, 1, 2).upper()
    app, facility = _text(msh, 3), _text(msh, 4)
    return Header(control_id=control[:200], message_type=f"{mtype}^{event}" if event else mtype,
                  sender="/".join(p for p in (app, facility) if p)[:200], sending_app=app,
                  version=_text(msh, 12))


def parse_dtm(value: str, tz: str, where: tuple[str, int, int]) -> datetime:
    """An HL7 DTM (YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]) as an aware datetime; without
    an offset the ward's zone applies."""
    bad = f"{value!r} is not an HL7 date-time (YYYYMMDDHHMM[SS][+ZZZZ])"
    if not _DTM.match(value):
        raise Problem(*where, DATA_TYPE_ERROR, bad)
    try:
        when = hl7.parse_datetime(value)
    except ValueError as exc:
        raise Problem(*where, DATA_TYPE_ERROR, bad) from exc
    if when is None or len(value.split("+")[0].split("-")[0]) < 8:
        raise Problem(*where, DATA_TYPE_ERROR,
                      f"{value!r} is not precise enough: give at least the date (YYYYMMDD)")
    return when if when.tzinfo is not None else when.replace(tzinfo=ZoneInfo(tz))


def _patient(pid: hl7.Segment, seq: int, id_type: str | None) -> PatientRef:
    n = _repetitions(pid, 3)
    reps = [(_text(pid, 3, r, 1), _text(pid, 3, r, 5).upper()) for r in range(1, n + 1)]
    reps = [(v, t) for v, t in reps if v]
    if not reps:
        raise Problem("PID", seq, 3, REQUIRED_MISSING,
                      "PID-3 (patient identifier list) is empty; the patient cannot be found")
    shown = tuple(f"{v} ({t})" if t else v for v, t in reps)
    if id_type:
        chosen = next((v for v, t in reps if t == id_type.upper()), None)
        # no repetition of the site's type: the patient stays unknown (held for a person)
        return PatientRef(chosen or "", seq, shown)
    return PatientRef(reps[0][0], seq, shown)


def _value(obx: hl7.Segment, seq: int, value_type: str, status: str) -> tuple[str, str]:
    """(value, qualifier) of OBX-5 for NM, SN and text types."""
    if value_type == "SN":
        comparator = _text(obx, 5, 1, 1)
        number = _text(obx, 5, 1, 2)
        if comparator in ("<=", ">="):
            raise Problem("OBX", seq, 5, DATA_TYPE_ERROR,
                          f"the comparator {comparator!r} is not accepted; only < and >")
        if comparator not in ("", "<", ">", "="):
            raise Problem("OBX", seq, 5, DATA_TYPE_ERROR,
                          f"the SN comparator {comparator!r} is not one of <, > or =")
        if _text(obx, 5, 1, 3) or _text(obx, 5, 1, 4):
            raise Problem("OBX", seq, 5, DATA_TYPE_ERROR,
                          "a ratio or range (SN separator) cannot be stored as one value")
        value, qualifier = number, ("" if comparator == "=" else comparator)
    else:
        value, qualifier = _text(obx, 5), ""
    if status in (DELETE, SKIP):
        return value, qualifier
    if not value:
        raise Problem("OBX", seq, 5, REQUIRED_MISSING,
                      "OBX-5 (observation value) is empty")
    if value_type in ("NM", "SN") and not _NUMBER.match(value):
        raise Problem("OBX", seq, 5, DATA_TYPE_ERROR,
                      f"{value!r} is not a number (OBX-2 says {value_type})")
    return value, qualifier


def _range(text: str) -> tuple[str, str]:
    m = _RANGE.match(text)
    if m and (m.group(1) or m.group(2)):
        return m.group(1) or "", m.group(2) or ""
    m = _ONE_SIDED.match(text)
    if m:
        return ("", m.group(2)) if m.group(1).startswith("<") else (m.group(2), "")
    return "", ""


def _result(obx: hl7.Segment, seq: int, patient: PatientRef, obr_time: datetime | None,
            tz: str, notes: list[str]) -> Result:
    code, system = _text(obx, 3, 1, 1), _text(obx, 3, 1, 3)
    alt_code, alt_system = _text(obx, 3, 1, 4), _text(obx, 3, 1, 6)
    if not code and not alt_code:
        raise Problem("OBX", seq, 3, REQUIRED_MISSING,
                      "OBX-3 (observation identifier) has no code")
    status_code = _text(obx, 11).upper()
    if not status_code:
        raise Problem("OBX", seq, 11, REQUIRED_MISSING,
                      "OBX-11 (result status) is empty; expected F, P, C, D or W")
    if status_code not in RESULT_STATUS:
        raise Problem("OBX", seq, 11, TABLE_VALUE_NOT_FOUND,
                      f"result status {status_code!r} is not in HL7 table 0085 (F, P, C, D, "
                      "W, ...)")
    status = RESULT_STATUS[status_code]
    value_type = _text(obx, 2).upper()
    value, qualifier = _value(obx, seq, value_type, status)
    stamp = _text(obx, 14)
    if stamp:
        observed = parse_dtm(stamp, tz, ("OBX", seq, 14))
    elif obr_time is not None:
        observed = obr_time
    else:
        raise Problem("OBX", seq, 14, REQUIRED_MISSING,
                      "no collection time: OBX-14 is empty and so is OBR-7")
    ref_text = _text(obx, 7)
    low, high = _range(ref_text)
    if ref_text and not (low or high):
        notes.append(f"OBX #{seq}: reference range {ref_text!r} not read")
    flags = ",".join(filter(None, (_text(obx, 8, r) for r in range(1, _repetitions(obx, 8)
                                                                  + 1))))
    codings = [(system, code)] + ([(alt_system, alt_code)] if alt_code else [])
    shown = "^".join(filter(None, (code, _text(obx, 3, 1, 2), system)))
    return Result(seq=seq, set_id=_text(obx, 1), patient=patient, codings=codings,
                  code_text=shown, value_type=value_type, value=value, qualifier=qualifier,
                  unit=_text(obx, 6, 1, 1), ref_low=low, ref_high=high, flags=flags,
                  status=status, status_code=status_code, observed_at=observed)


def parse(raw: str, *, tz: str, id_type: str | None = None,
          message: hl7.Message | None = None) -> Parsed:
    """Parse an ORU^R01 or ADT^A01/A02/A03; anything else, or a broken one, is a Problem.

    tz: the ward's zone, for date-times sent without an offset. id_type: the PID-3
    identifier type code (CX-5) that names our patients; None takes the first repetition.
    message: `parse_message(raw)` when the caller has it already.
    """
    if message is None:
        message = parse_message(raw)
    head = header(message)
    kind, _, event = head.message_type.partition("^")
    parsed = Parsed(header=head, message=message)
    if kind == "ORU":
        if event not in ("R01", ""):
            raise Problem("MSH", 1, 9, UNSUPPORTED_EVENT,
                          f"ORU^{event} is not taken; send results as ORU^R01")
        _oru(parsed, tz, id_type)
    elif kind == "ADT":
        _adt(parsed, event, id_type)
    else:
        raise Problem("MSH", 1, 9, UNSUPPORTED_MESSAGE_TYPE,
                      f"message type {head.message_type or '(empty)'} is not taken; this "
                      "listener takes ORU^R01 and ADT^A01/A02/A03")
    return parsed


def _oru(parsed: Parsed, tz: str, id_type: str | None) -> None:
    counts = {"PID": 0, "OBR": 0, "OBX": 0}
    patient: PatientRef | None = None
    obr_time: datetime | None = None
    for segment in parsed.message:
        name = str(segment[0]).strip()
        if name not in counts:
            continue
        counts[name] += 1
        seq = counts[name]
        if name == "PID":
            patient, obr_time = _patient(segment, seq, id_type), None
        elif name == "OBR":
            stamp = _text(segment, 7)
            obr_time = parse_dtm(stamp, tz, ("OBR", seq, 7)) if stamp else None
        else:
            if patient is None:
                raise Problem("OBX", seq, 0, REQUIRED_MISSING,
                              "an OBX comes before any PID segment: whose result is it?")
            parsed.results.append(_result(segment, seq, patient, obr_time, tz, parsed.notes))
    if counts["PID"] == 0:
        raise Problem("PID", 1, 3, REQUIRED_MISSING, "the ORU^R01 has no PID segment")
    if not parsed.results:
        raise Problem("OBX", 1, 0, REQUIRED_MISSING, "the ORU^R01 has no OBX segment")


def _adt(parsed: Parsed, event: str, id_type: str | None) -> None:
    if event not in ADT_EVENTS:
        parsed.notes.append(f"ADT^{event} is not used by CAR-T Watch (only A01, A02, A03); "
                            "nothing changed")
        return
    try:
        pid = parsed.message.segment("PID")
    except KeyError:
        raise Problem("PID", 1, 3, REQUIRED_MISSING,
                      f"the ADT^{event} has no PID segment") from None
    patient = _patient(pid, 1, id_type)
    bed = None
    try:
        pv1 = parsed.message.segment("PV1")
    except KeyError:
        pv1 = None
    if pv1 is not None:
        parts = [_text(pv1, 3, 1, c) for c in (1, 2, 3)]
        bed = "-".join(p for p in parts if p)[:20] or None
    if event in ("A01", "A02") and not bed:
        raise Problem("PV1", 1, 3, REQUIRED_MISSING,
                      f"ADT^{event} needs the bed in PV1-3 (point of care^room^bed)")
    parsed.adt = AdtEvent(event=event, patient=patient, bed=bed)

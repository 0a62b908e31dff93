"""HL7 v2 receiving (core.capture.hl7.receive): each message all or nothing, one ACK each,
on SQLite and PostgreSQL (`store`); messages received together share one commit. Messages
are built here with realistic segments for synthetic patients only; the listener over a real
socket is tested in test_hl7_listener.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import hl7
import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

import core.capture.hl7.receive as receiving
from core.capture.hl7.receive import receive, receive_all
from core.capture.importing import import_file
from core.config import Settings
from core.store.db import is_sqlite, make_engine
from core.store.models import (
    Alert,
    AuditLog,
    InboundMessage,
    LabResult,
    Observation,
    Patient,
)

INFUSED = date.today() - timedelta(days=5)
PATIENTS = ("patient_id,infusion_date,product,bed\n"
            f"SYN-001,{INFUSED},axi-cel,4A-01\nSYN-002,{INFUSED},liso-cel,4A-02\n").encode()


def stamp(hours_ago: float = 2.0) -> str:
    """An HL7 DTM with an offset, `hours_ago` before now."""
    return (datetime.now(UTC) - timedelta(hours=hours_ago)).strftime("%Y%m%d%H%M%S+0000")


PLT = ("777-3", "Platelets", "LN", "NM", "8", "10*9/L", "150-400", "LL")
FER = ("2276-4", "Ferritin", "LN", "NM", "900", "ug/L", "30-400", "H")
TEMP = ("8310-5", "Body temperature", "LN", "NM", "38.4", "Cel", "", "H")


def oru(control: str, obx: list[tuple] | None = None, *, patient: str = "SYN-001",
        status: str = "F", when: str | None = None, pid3: str | None = None,
        obr_time: str | None = None, obx_time: bool = True) -> str:
    """An ORU^R01 for a synthetic patient; obx rows are (code, text, system, type, value,
    unit, range, flags[, status])."""
    when = when or stamp()
    rows = obx if obx is not None else [PLT, FER]
    segments = [
        f"MSH|^~\\&|LABSYS|SYNHOSP|CARTWATCH|WARD4A|{stamp(0)}||ORU^R01^ORU_R01|{control}|P|2.5.1",
        f"PID|1||{pid3 if pid3 is not None else patient + '^^^SYNHOSP^MR'}||SYNTHETIC^TEST||"
        "19610101|F",
        "PV1|1|I|4A^01^1",
        f"OBR|1|PLC{control}|FIL{control}|CBC^Blood count^L|||{obr_time or when}",
    ]
    for i, row in enumerate(rows, start=1):
        code, name, system, vtype, value, unit, ref, flags = row[:8]
        st = row[8] if len(row) > 8 else status
        segments.append(f"OBX|{i}|{vtype}|{code}^{name}^{system}||{value}|{unit}|{ref}|"
                        f"{flags}|||{st}|||{when if obx_time else ''}")
    return "\r".join(segments) + "\r"


def adt(control: str, event_code: str, patient: str = "SYN-001", bed: str = "4B^07") -> str:
    return "\r".join([
        f"MSH|^~\\&|ADTSYS|SYNHOSP|CARTWATCH|WARD4A|{stamp(0)}||ADT^{event_code}^ADT_A01|"
        f"{control}|P|2.5.1",
        f"EVN|{event_code}|{stamp(0)}",
        f"PID|1||{patient}^^^SYNHOSP^MR||SYNTHETIC^TEST||19610101|F",
        f"PV1|1|I|{bed}",
    ]) + "\r"


def ack_fields(ack: str) -> dict[str, str]:
    msg = hl7.parse(ack)
    out = {"code": str(msg.segment("MSA")(1)), "control": str(msg.segment("MSA")(2))}
    try:
        err = msg.segment("ERR")
        out["location"] = str(err(2))
        out["error"] = str(err(3))
        out["text"] = msg.unescape(str(err(8)))
    except KeyError:
        pass
    return out


@pytest.fixture
def ward(store: Engine) -> Engine:
    assert import_file(store, PATIENTS, "patients.csv").ok
    return store


def settings_of(engine: Engine) -> Settings:
    return Settings(database_url=engine.url.render_as_string(hide_password=False))


def send(engine: Engine, message: str) -> dict[str, str]:
    reply = receive(engine, message, settings_of(engine))
    fields = ack_fields(reply.ack)
    assert fields["code"] == reply.code
    return fields


def count(engine: Engine, model: type, **where: object) -> int:
    with Session(engine) as s:
        stmt = select(func.count()).select_from(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return int(s.execute(stmt).scalar_one())


def labs(engine: Engine, analyte: str) -> list[LabResult]:
    with Session(engine) as s:
        return list(s.execute(select(LabResult).where(LabResult.analyte == analyte)
                              .order_by(LabResult.id)).scalars())


def inbound(engine: Engine, control: str) -> InboundMessage:
    with Session(engine) as s:
        return s.execute(select(InboundMessage).where(
            InboundMessage.control_id == control)).scalars().one()


def test_an_oru_is_stored_acknowledged_and_its_alert_follows(ward: Engine) -> None:
    fields = send(ward, oru("M1", [PLT, FER, TEMP]))
    assert fields == {"code": "AA", "control": "M1"}
    assert [r.value for r in labs(ward, "platelets")] == [8.0]
    ferritin = labs(ward, "ferritin")[0]
    assert (ferritin.value, ferritin.ref_low, ferritin.ref_high, ferritin.source) == (
        900.0, 30.0, 400.0, "hl7")
    assert not ferritin.preliminary
    assert count(ward, Observation, kind="temperature") == 1
    msg = inbound(ward, "M1")
    assert (msg.status, msg.rows_written, msg.patient_id, msg.message_type) == (
        "stored", 3, "SYN-001", "ORU^R01")
    with Session(ward) as s:  # the evaluation followed the write: a grade 4 platelet alert
        alert = s.execute(select(Alert).where(Alert.rule_id == "ctcae_platelets")).scalars()
        assert [a.grade for a in alert] == [4]


def test_messages_received_together_are_each_all_or_nothing_and_commit_together(
        ward: Engine) -> None:
    bad = oru("G2", [("2276-4", "Ferritin", "LN", "NM", "abc", "ug/L", "", "")],
              patient="SYN-002")
    group = [oru("G1", [PLT]), bad, oru("G3", [FER], patient="SYN-002"), oru("G1", [PLT]),
             "not HL7 at all"]
    replies = receive_all(ward, group, settings_of(ward))
    assert [r.code for r in replies] == ["AA", "AE", "AA", "AA", "AE"]
    assert [ack_fields(r.ack)["control"] for r in replies[:4]] == ["G1", "G2", "G3", "G1"]
    # G1's platelets and G3's ferritin; nothing of G2; the resend of G1 adds nothing
    assert [(r.analyte, r.value) for r in labs(ward, "platelets") + labs(ward, "ferritin")] == [
        ("platelets", 8.0), ("ferritin", 900.0)]
    assert [inbound(ward, c).status for c in ("G1", "G2", "G3")] == [
        "stored", "refused", "stored"]
    with Session(ward) as s:  # G1's patient was evaluated though G2 was rolled back after it
        alert = s.execute(select(Alert).where(Alert.rule_id == "ctcae_platelets")).scalars()
        assert [a.grade for a in alert] == [4]


def test_a_group_reads_its_lookups_once_and_each_message_sees_those_before_it(
        ward: Engine) -> None:
    """One group: a value, its correction and its resend, a message for an unknown patient,
    and a second patient's value. The correction finds the value stored earlier in the same
    transaction; the unknown patient is held, the others are not."""
    when = stamp(3)
    corrected = ("2276-4", "Ferritin", "LN", "NM", "1900", "ug/L", "30-400", "H", "C")
    group = [oru("T1", [FER], when=when), oru("T2", [corrected], when=when),
             oru("T3", [PLT], patient="SYN-999"), oru("T1", [FER], when=when),
             oru("T4", [PLT], patient="SYN-002")]
    replies = receive_all(ward, group, settings_of(ward))
    assert [r.code for r in replies] == ["AA"] * 5
    assert [r.status.value for r in replies if r.status] == [
        "stored", "stored", "held", "stored", "stored"]
    old, new = labs(ward, "ferritin")
    assert (old.status, old.value, new.status, new.value) == (
        "superseded", 900.0, "final", 1900.0)
    with Session(ward) as s:
        second = s.execute(select(Patient.id).where(Patient.patient_id == "SYN-002")).scalar()
    assert [(r.patient_pk, r.value) for r in labs(ward, "platelets")] == [(second, 8.0)]
    assert [inbound(ward, c).status for c in ("T1", "T2", "T3", "T4")] == [
        "stored", "stored", "held", "stored"]


def test_a_group_validated_together_refuses_each_bad_message_at_its_own_obx(
        ward: Engine) -> None:
    """The values of a group's messages are validated as one import: an error is reported
    at the OBX of its own message, a row repeated within a message is a duplicate, and the
    same patient, item and time in two messages is not."""
    when = stamp(4)
    twice = oru("V2", [PLT, FER, ("2276-4", "Ferritin", "LN", "NM", "950", "ug/L", "", "")],
                when=when)
    impossible = oru("V3", [PLT, ("2276-4", "Ferritin", "LN", "NM", "9000000", "ug/L", "",
                                  "")], patient="SYN-002")
    replies = receive_all(ward, [oru("V1", [FER], when=when), twice, impossible,
                                 oru("V4", [PLT], patient="SYN-002")], settings_of(ward))
    assert [r.code for r in replies] == ["AA", "AE", "AE", "AA"]
    dup, bad = ack_fields(replies[1].ack), ack_fields(replies[2].ack)
    assert dup["location"] == "OBX^3^3" and "Duplicate of OBX #2" in dup["text"]
    assert bad["location"] == "OBX^2^5" and "Ferritin" in bad["text"]
    assert [r.value for r in labs(ward, "ferritin")] == [900.0]
    assert [r.value for r in labs(ward, "platelets")] == [8.0]  # V4's; V2's and V3's not


def test_a_defect_met_validating_a_group_refuses_only_its_message(
        ward: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import core.capture.hl7.check as check

    real = check.PREPARE["labs"]

    def prepare(frame: Any, ctx: Any) -> Any:
        if "SYN-002" in set(frame["patient_id"]):  # a defect met by this patient's rows
            raise RuntimeError("a defect")
        return real(frame, ctx)

    monkeypatch.setitem(check.PREPARE, "labs", prepare)
    replies = receive_all(ward, [oru("D1", [PLT]), oru("D2", [FER], patient="SYN-002"),
                                 oru("D3", [FER])], settings_of(ward))
    assert [r.code for r in replies] == ["AA", "AE", "AA"]
    assert "internal error (RuntimeError: a defect)" in ack_fields(replies[1].ack)["text"]
    assert [inbound(ward, c).status for c in ("D1", "D2", "D3")] == [
        "stored", "refused", "stored"]


def test_a_defect_met_reading_a_groups_stored_values_leaves_each_to_read_its_own(
        ward: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import core.capture.hl7.check as check

    real = check.stored_rows

    def stored_rows(session: Session, model: Any, labs: bool, rows: list) -> list:
        if len({r["patient_pk"] for r in rows}) > 1:  # a defect met reading several at once
            raise RuntimeError("a defect")
        return real(session, model, labs, rows)

    monkeypatch.setattr(check, "stored_rows", stored_rows)
    when = stamp(3)
    send(ward, oru("S0", [FER], when=when))
    corrected = ("2276-4", "Ferritin", "LN", "NM", "1900", "ug/L", "30-400", "H", "C")
    replies = receive_all(ward, [oru("S1", [corrected], when=when),
                                 oru("S2", [PLT], patient="SYN-002")], settings_of(ward))
    assert [r.code for r in replies] == ["AA", "AA"]
    assert "could not be read together" in caplog.text
    old, new = labs(ward, "ferritin")  # S1 found S0's value when written and superseded it
    assert (old.status, new.status, new.value) == ("superseded", "final", 1900.0)
    assert len(labs(ward, "platelets")) == 1


@pytest.mark.parametrize("bug", [
    RuntimeError("a defect"),
    IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed: labresult.row_key")),
], ids=["error", "constraint-twice"])
def test_a_message_that_meets_a_bug_is_refused_and_kept_without_its_group(
        ward: Engine, monkeypatch: pytest.MonkeyPatch, bug: Exception) -> None:
    real = receiving.write

    def write(session: Session, checked: Any, actor: str) -> Any:
        if checked.parsed.header.control_id == "BUG":  # a defect met by this message only
            raise bug
        return real(session, checked, actor)

    monkeypatch.setattr(receiving, "write", write)
    replies = receive_all(ward, [oru("OK1", [PLT]), oru("BUG", [FER], patient="SYN-002"),
                                 oru("OK2", [FER], patient="SYN-002")], settings_of(ward))
    assert [r.code for r in replies] == ["AA", "AE", "AA"]
    assert f"internal error ({type(bug).__name__}" in ack_fields(replies[1].ack)["text"]
    assert [inbound(ward, c).status for c in ("OK1", "BUG", "OK2")] == [
        "stored", "refused", "stored"]
    assert len(labs(ward, "platelets")) == len(labs(ward, "ferritin")) == 1


def test_a_message_that_meets_a_constraint_once_is_checked_again_and_lands_once(
        ward: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another connection committed what the message names after its group was read (a
    unique key meets it): the message is read and checked again, alone, then lands once."""
    real, met = receiving.write, []

    def write(session: Session, checked: Any, actor: str) -> Any:
        applied = real(session, checked, actor)
        if not met:  # the rows went in, then the constraint: the SAVEPOINT rolls them back
            met.append(checked.parsed.header.control_id)
            raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))
        return applied

    monkeypatch.setattr(receiving, "write", write)
    replies = receive_all(ward, [oru("K1", [PLT, FER])], settings_of(ward))
    assert [r.code for r in replies] == ["AA"] and met == ["K1"]
    assert (inbound(ward, "K1").status, inbound(ward, "K1").rows_written) == ("stored", 2)
    assert len(labs(ward, "platelets")) == len(labs(ward, "ferritin")) == 1


def test_a_resend_adds_nothing_and_is_acknowledged_again(ward: Engine) -> None:
    message = oru("M2")
    assert send(ward, message)["code"] == "AA"
    before = (count(ward, LabResult), count(ward, InboundMessage), count(ward, AuditLog))
    assert send(ward, message) == {"code": "AA", "control": "M2"}
    assert (count(ward, LabResult), count(ward, InboundMessage), count(ward, AuditLog)) == before


def test_a_correction_supersedes_the_earlier_value_with_a_reason(ward: Engine) -> None:
    when = stamp(3)
    assert send(ward, oru("M3", [FER], when=when))["code"] == "AA"
    corrected = ("2276-4", "Ferritin", "LN", "NM", "1900", "ug/L", "30-400", "H", "C")
    assert send(ward, oru("M4", [corrected], when=when))["code"] == "AA"
    old, new = labs(ward, "ferritin")
    assert (old.status, new.status, new.value, new.supersedes_id) == (
        "superseded", "final", 1900.0, old.id)
    assert new.correction_reason == "corrected by the laboratory (HL7 OBX-11 C, message M4)"
    with Session(ward) as s:
        actions = list(s.execute(select(AuditLog.action).where(
            AuditLog.table_name == "labs")).scalars())
    assert actions == ["correct"]


def test_a_correction_for_a_value_never_received_is_stored_new_and_says_so(ward: Engine) -> None:
    corrected = ("2276-4", "Ferritin", "LN", "NM", "1900", "ug/L", "30-400", "H", "C")
    assert send(ward, oru("M5", [corrected]))["code"] == "AA"
    assert [r.status for r in labs(ward, "ferritin")] == ["final"]
    assert "correction for a value never received" in inbound(ward, "M5").reason


@pytest.mark.parametrize("code", ["D", "W"])
def test_a_deletion_marks_the_earlier_value_entered_in_error(ward: Engine, code: str) -> None:
    when = stamp(4)
    assert send(ward, oru("M6", [PLT], when=when))["code"] == "AA"
    gone = ("777-3", "Platelets", "LN", "NM", "", "", "", "", code)
    assert send(ward, oru("M7", [gone], when=when))["code"] == "AA"
    (row,) = labs(ward, "platelets")
    assert row.status == "entered_in_error"
    assert row.correction_reason == f"retracted by the laboratory (HL7 OBX-11 {code}, message M7)"


BAD = [
    pytest.param(lambda: oru("B1", [("2276-4", "Ferritin", "LN", "NM", "abc", "ug/L", "", "")]),
                 "OBX^1^5", "102", "'abc' is not a number", id="ferritin-not-a-number"),
    pytest.param(lambda: oru("B1", pid3=""), "PID^1^3", "101", "PID-3", id="no-pid-3"),
    pytest.param(lambda: oru("B1", [FER], when="2026-11-20", obr_time=stamp()),
                 "OBX^1^14", "102", "not an HL7 date-time", id="bad-time"),
    pytest.param(lambda: oru("B1", [("2276-4", "Ferritin", "LN", "NM", "900", "mmol/L", "", "")]),
                 "OBX^1^6", "102", "not a unit accepted for Ferritin", id="wrong-unit"),
    pytest.param(lambda: oru("B1", [PLT, FER], obx_time=False, obr_time=" "),
                 "OBX^1^14", "101", "no collection time", id="no-time"),
    pytest.param(lambda: oru("B1", [("2276-4", "Ferritin", "LN", "NM", "900", "ug/L", "", "",
                                     "Q")]), "OBX^1^11", "103", "table 0085", id="bad-status"),
    pytest.param(lambda: oru("B1").replace("ORU^R01^ORU_R01", "ORM^O01"), "MSH^1^9", "200",
                 "ORM^O01", id="unsupported-type"),
    pytest.param(lambda: oru("B1", [("2276-4", "Ferritin", "LN", "NM", "9000000", "ug/L", "",
                                     "")]), "OBX^1^5", "102", "Ferritin", id="impossible"),
]


@pytest.mark.parametrize(("build", "location", "code", "says"), BAD)
def test_a_bad_message_gets_ae_naming_segment_and_field_and_writes_nothing(
        ward: Engine, build, location: str, code: str, says: str) -> None:  # noqa: ANN001
    fields = send(ward, build())
    assert fields["code"] == "AE"
    assert fields["location"] == location
    assert fields["error"].startswith(code + "^")
    assert says in fields["text"]
    assert count(ward, LabResult) == count(ward, Observation) == count(ward, Alert) == 0
    msg = inbound(ward, "B1")
    assert msg.status == "refused" and says in msg.reason and msg.raw.startswith("MSH|")


def test_a_message_without_msh_10_is_refused_and_kept(ward: Engine) -> None:
    message = oru("").replace("|ORU^R01^ORU_R01||", "|ORU^R01^ORU_R01||")
    fields = send(ward, message)
    assert (fields["code"], fields["location"]) == ("AE", "MSH^1^10")
    assert count(ward, InboundMessage, status="refused") == 1


def test_a_refused_message_sent_again_correctly_is_stored(ward: Engine) -> None:
    bad = oru("R1", [("2276-4", "Ferritin", "LN", "NM", "abc", "ug/L", "", "")])
    assert send(ward, bad)["code"] == "AE"
    assert send(ward, oru("R1", [FER]))["code"] == "AA"
    assert inbound(ward, "R1").status == "stored"
    assert count(ward, InboundMessage) == 1 and len(labs(ward, "ferritin")) == 1


def test_a_different_final_value_for_a_stored_one_needs_a_correction(ward: Engine) -> None:
    when = stamp(5)
    assert send(ward, oru("D1", [FER], when=when))["code"] == "AA"
    other = ("2276-4", "Ferritin", "LN", "NM", "1200", "ug/L", "", "")
    fields = send(ward, oru("D2", [other], when=when))
    assert (fields["code"], fields["location"]) == ("AE", "OBX^1^11")
    assert "send the change as a correction" in fields["text"]
    assert [r.value for r in labs(ward, "ferritin")] == [900.0]


def test_sn_comparators_become_the_qualifier(ward: Engine) -> None:
    censored = ("2276-4", "Ferritin", "LN", "SN", ">^2000", "ug/L", "", "")
    assert send(ward, oru("S1", [censored]))["code"] == "AA"
    (row,) = labs(ward, "ferritin")
    assert (row.value, row.qualifier) == (2000.0, ">")


def test_a_time_without_an_offset_is_ward_time(ward: Engine, monkeypatch) -> None:  # noqa: ANN001
    local = (datetime.now(UTC) - timedelta(hours=6)).astimezone()
    naive = local.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin"))
    settings = Settings(database_url=settings_of(ward).database_url, ward_tz="Europe/Berlin")
    reply = receive(ward, oru("T1", [FER], when=naive.strftime("%Y%m%d%H%M%S")), settings)
    assert reply.code == "AA", reply.ack
    (row,) = labs(ward, "ferritin")
    stored = row.collected_at if row.collected_at.tzinfo else row.collected_at.replace(tzinfo=UTC)
    assert abs(stored - naive.replace(microsecond=0)) < timedelta(seconds=1)


def test_the_site_identifier_type_picks_the_pid_3_repetition(ward: Engine) -> None:
    from core.capture.entry import save_site_setting

    save_site_setting(ward, "hl7.patient_identifier_type", "PI", "admin.amy")
    pid3 = "900123^^^SYNHOSP^MR~SYN-002^^^CART^PI"
    assert send(ward, oru("I1", [FER], pid3=pid3))["code"] == "AA"
    assert inbound(ward, "I1").patient_id == "SYN-002"


def test_preliminary_results_are_stored_marked_and_kept_from_the_rules(ward: Engine) -> None:
    from core.capture.entry import save_site_setting
    from core.store.loading import load_courses

    when = stamp(6)
    assert send(ward, oru("P1", [PLT], status="P", when=when))["code"] == "AA"
    (row,) = labs(ward, "platelets")
    assert row.preliminary and row.status == "final"

    def platelets_the_rules_read() -> list[float]:
        with Session(ward) as s:
            course = load_courses(s, "UTC", ["SYN-001"])[0]
        return list(course.labs.loc[course.labs["analyte"] == "platelets", "value"])

    def platelet_alerts() -> int:
        return count(ward, Alert, rule_id="ctcae_platelets")

    assert platelets_the_rules_read() == [] and platelet_alerts() == 0
    save_site_setting(ward, "inbound.rules_use_preliminary", True, "admin.amy")
    assert platelets_the_rules_read() == [8.0]
    from core.monitoring.evaluation import run_evaluate

    run_evaluate(ward, settings_of(ward))
    assert platelet_alerts() == 1
    # the final of the same value makes it final; a final of another value supersedes it
    assert send(ward, oru("P2", [PLT], status="F", when=when))["code"] == "AA"
    (row,) = labs(ward, "platelets")
    assert not row.preliminary
    when2 = stamp(7)
    assert send(ward, oru("P3", [FER], status="P", when=when2))["code"] == "AA"
    final = ("2276-4", "Ferritin", "LN", "NM", "950", "ug/L", "", "")
    assert send(ward, oru("P4", [final], status="F", when=when2))["code"] == "AA"
    old, new = labs(ward, "ferritin")
    assert (old.status, new.value, new.preliminary) == ("superseded", 950.0, False)
    assert "final result replaces the preliminary" in new.correction_reason


@pytest.mark.parametrize(("event_code", "bed", "status"), [
    ("A01", "4B-07", "active"), ("A02", "4B-07", "active"), ("A03", "4A-01", "discharged")])
def test_adt_messages_change_bed_and_status(ward: Engine, event_code: str, bed: str,
                                            status: str) -> None:
    assert send(ward, adt("A" + event_code, event_code))["code"] == "AA"
    with Session(ward) as s:
        p = s.execute(select(Patient).where(Patient.patient_id == "SYN-001")).scalars().one()
        assert (p.bed, p.status) == (bed, status)
        audited = s.execute(select(AuditLog).where(AuditLog.action == "adt")).scalars().one()
    assert f"ADT^{event_code}" in audited.reason


def test_an_admission_reopens_a_discharged_patient(ward: Engine) -> None:
    assert send(ward, adt("X1", "A03"))["code"] == "AA"
    assert send(ward, adt("X2", "A01", bed="4C^02"))["code"] == "AA"
    with Session(ward) as s:
        p = s.execute(select(Patient).where(Patient.patient_id == "SYN-001")).scalars().one()
    assert (p.status, p.bed) == ("active", "4C-02")


def test_an_unknown_patient_or_code_is_held_and_acknowledged(ward: Engine) -> None:
    assert send(ward, oru("H1", [FER], patient="SYN-999"))["code"] == "AA"
    held = inbound(ward, "H1")
    assert held.status == "held" and "SYN-999" in held.reason and held.patient_id == "SYN-999"
    local = ("FERR", "Ferritin serum", "L", "NM", "900", "ug/L", "", "")
    assert send(ward, oru("H2", [local]))["code"] == "AA"
    held = inbound(ward, "H2")
    assert held.status == "held" and "OBX #1" in held.reason and "FERR" in held.reason
    assert send(ward, adt("H3", "A02", patient="SYN-998"))["code"] == "AA"
    assert inbound(ward, "H3").status == "held"
    assert count(ward, LabResult) == 0
    assert send(ward, oru("H1", [FER], patient="SYN-999"))["code"] == "AA"  # resend: same ACK
    assert count(ward, InboundMessage) == 3


def test_a_store_that_cannot_write_gets_ar_and_nothing_is_stored(ward: Engine) -> None:
    url = ward.url.render_as_string(hide_password=False)
    broken = make_engine(url)
    if is_sqlite(broken):
        @event.listens_for(broken, "connect")
        def _read_only(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA query_only=ON")
    else:
        @event.listens_for(broken, "connect")
        def _read_only(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            with dbapi_conn.cursor() as cur:
                cur.execute("SET default_transaction_read_only = on")
            dbapi_conn.commit()
    try:
        reply = receive(broken, oru("AR1"), settings_of(ward))
        group = receive_all(broken, [oru("AR2"), oru("AR3", [FER], patient="SYN-002")],
                            settings_of(ward))
    finally:
        broken.dispose()
    assert reply.code == "AR" and reply.status is None
    assert [(r.code, r.status) for r in group] == [("AR", None), ("AR", None)]
    assert count(ward, InboundMessage) == count(ward, LabResult) == 0
    assert send(ward, oru("AR1"))["code"] == "AA"  # the sender's retry lands
    assert count(ward, LabResult) == 2


def test_hl7_rows_and_csv_rows_share_idempotency(ward: Engine) -> None:
    when = datetime.now(UTC) - timedelta(hours=8)
    assert send(ward, oru("C1", [FER], when=when.strftime("%Y%m%d%H%M%S+0000")))["code"] == "AA"
    csv = (f"patient_id,collected_at,analyte,value,unit\nSYN-001,"
           f"{when.replace(microsecond=0).isoformat()},ferritin,900,ug/L\n").encode()
    report = import_file(ward, csv, "labs.csv")
    assert report.ok and report.rows_new == 0 and report.rows_already_present == 1
    with ward.connect() as c:
        assert c.execute(text("select count(*) from labresult")).scalar_one() == 1

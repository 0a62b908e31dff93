"""The held queue (core.capture.hl7.held): an unknown code or patient waits, a person maps or
matches, then releases it through the same path; dismissals keep the message with a reason.
Runs on SQLite and PostgreSQL (`store`)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core import cli
from core.access.permissions import NotAllowed
from core.capture.codemap import map_code
from core.capture.hl7.held import (
    HeldRefused,
    dismiss,
    held_code_targets,
    held_codes,
    held_messages,
    match_patient,
    release,
)
from core.store.models import Alert, AuditLog, InboundMessage, LabResult, Observation, Treatment
from tests.core.test_hl7_receive import FER, PLT, count, inbound, labs, send, settings_of
from tests.core.test_hl7_receive import oru as build_oru
from tests.core.test_hl7_receive import ward as ward  # noqa: F401 - the fixture

LOCAL_FER = ("FERR", "Ferritin serum", "L", "NM", "900", "ug/L", "30-400", "H")
LOCAL_TEMP = ("TEMPX", "Temp local", "L", "NM", "39.2", "Cel", "", "H")


def held_id(engine: Engine, control: str) -> int:
    return int(inbound(engine, control).id)  # type: ignore[arg-type]


def audit_actions(engine: Engine) -> list[tuple[str, str, str | None]]:
    with Session(engine) as s:
        return [(a.action, a.actor, a.reason) for a in s.execute(select(AuditLog).where(
            AuditLog.table_name == "inboundmessage", AuditLog.actor != "hl7-listener")
            .order_by(AuditLog.id)).scalars()]


def test_an_unknown_code_is_released_after_an_admin_maps_it(ward: Engine) -> None:  # noqa: F811
    assert send(ward, build_oru("U1", [LOCAL_FER, PLT]))["code"] == "AA"
    mid = held_id(ward, "U1")
    queue = held_messages(ward)
    assert list(queue["control_id"]) == ["U1"] and "FERR" in queue.at[0, "reason"]
    assert queue.at[0, "raw"].startswith("MSH|")
    assert ("L", "FERR", "Ferritin serum") in held_codes(ward, mid, settings_of(ward))
    with pytest.raises(HeldRefused, match="Still held"):  # not mapped yet: nothing changes
        release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert count(ward, LabResult) == 0
    with pytest.raises(NotAllowed):
        map_code(ward, system="L", code="FERR", target_kind="analyte", target="ferritin",
                 user="nurse.kim", reason="lab's local code", role="nurse")
    map_code(ward, system="L", code="FERR", target_kind="analyte", target="ferritin",
             user="admin.amy", reason="the lab's local ferritin code", role="admin")
    said = release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert "2 change(s) written" in said
    assert [r.value for r in labs(ward, "ferritin")] == [900.0]
    assert [r.value for r in labs(ward, "platelets")] == [8.0]
    msg = inbound(ward, "U1")
    assert (msg.status, msg.handled_by, msg.rows_written) == ("released", "nurse.kim", 2)
    with Session(ward) as s:  # the release's evaluation followed it
        assert s.execute(select(Alert).where(Alert.rule_id == "ctcae_platelets")).first()
    assert [a[:2] for a in audit_actions(ward)] == [("hl7_release", "nurse.kim")]
    assert send(ward, build_oru("U1", [LOCAL_FER, PLT]))["code"] == "AA"  # resend: no-op
    assert count(ward, LabResult) == 2
    assert held_messages(ward).empty
    assert list(held_messages(ward, include_handled=True)["status"]) == ["released"]


def test_an_unknown_patient_is_released_after_a_nurse_matches_it(ward: Engine) -> None:  # noqa: F811
    assert send(ward, build_oru("U2", [FER], patient="MRN-55501"))["code"] == "AA"
    mid = held_id(ward, "U2")
    with pytest.raises(HeldRefused, match="No registered patient"):
        match_patient(ward, mid, "SYN-404", user="nurse.kim", role="nurse")
    with pytest.raises(NotAllowed):
        match_patient(ward, mid, "SYN-002", user="viewer.vic", role="viewer")
    match_patient(ward, mid, "SYN-002", user="nurse.kim", role="nurse",
                  reason="same name and birth date on the lab request",
                  settings=settings_of(ward))
    assert "MRN-55501" in inbound(ward, "U2").reason
    release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    (row,) = labs(ward, "ferritin")
    with Session(ward) as s:
        from core.store.models import Patient

        assert s.get(Patient, row.patient_pk).patient_id == "SYN-002"  # type: ignore[union-attr]
    assert inbound(ward, "U2").status == "released"
    actions = audit_actions(ward)
    assert [a[0] for a in actions] == ["hl7_match_patient", "hl7_release"]
    assert actions[0][2] == "same name and birth date on the lab request"


def test_a_dismissed_message_is_kept_with_who_and_why(ward: Engine) -> None:  # noqa: F811
    assert send(ward, build_oru("U3", [FER], patient="MRN-55502"))["code"] == "AA"
    mid = held_id(ward, "U3")
    with pytest.raises(HeldRefused, match="reason"):
        dismiss(ward, mid, user="nurse.kim", reason=" ", role="nurse")
    dismiss(ward, mid, user="nurse.kim", reason="not a CAR-T patient", role="nurse")
    msg = inbound(ward, "U3")
    assert (msg.status, msg.handled_by) == ("dismissed", "nurse.kim")
    assert "not a CAR-T patient" in msg.reason and msg.raw.startswith("MSH|")
    with pytest.raises(HeldRefused, match="not held"):
        release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert count(ward, LabResult) == 0 and count(ward, InboundMessage) == 1
    assert audit_actions(ward)[-1] == ("hl7_dismiss", "nurse.kim", "not a CAR-T patient")
    assert send(ward, build_oru("U3", [FER], patient="MRN-55502"))["code"] == "AA"
    assert inbound(ward, "U3").status == "dismissed"


def crs(engine: Engine, capsys: pytest.CaptureFixture[str]) -> dict:
    """SYN-001's crs_grade finding from `python -m core evaluate --json` (in process)."""
    capsys.readouterr()
    url = engine.url.render_as_string(hide_password=False)
    assert cli.main(["--db", url, "evaluate", "--json", "--patient", "SYN-001"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (finding,) = [f for f in doc["patients"][0]["findings"] if f["rule"] == "crs_grade"]
    return finding


def map_audits(engine: Engine) -> list[tuple[str, str | None, dict | None]]:
    with Session(engine) as s:
        return [(a.actor, a.reason, a.after) for a in s.execute(select(AuditLog).where(
            AuditLog.action == "map_code").order_by(AuditLog.id)).scalars()]


def test_a_local_vital_sign_code_mapped_to_an_observation_becomes_one_and_grades_crs(
        ward: Engine, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert send(ward, build_oru("U4", [LOCAL_TEMP, PLT]))["code"] == "AA"
    mid = held_id(ward, "U4")
    assert "TEMPX" in inbound(ward, "U4").reason
    before = {(c.code, c.target.code if c.target else None, c.placeable)
              for c in held_code_targets(ward, mid, settings_of(ward))}
    assert before == {("TEMPX", None, False), ("777-3", "platelets", True)}
    assert crs(ward, capsys)["status"] != "met"  # no temperature stored yet

    map_code(ward, system="L", code="TEMPX", target_kind="observation", target="temperature",
             user="admin.amy", reason="ward monitor's local temperature code",
             display="Temp local", role="admin")
    (temp,) = [c for c in held_code_targets(ward, mid, settings_of(ward))
               if c.code == "TEMPX"]
    assert temp.target is not None and (temp.target.kind.value, temp.target.code,
                                        temp.placeable) == ("observation", "temperature", True)
    said = release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert "2 change(s) written" in said
    with Session(ward) as s:
        rows = list(s.execute(select(Observation).where(Observation.kind == "temperature"))
                    .scalars())
    assert [(r.value_num, r.unit, r.source, r.source_record_id, r.entered_by) for r in rows] == [
        (39.2, "°C", "hl7", "U4/OBX1", "nurse.kim")]
    assert count(ward, LabResult) == 1  # the platelets of the same message, nothing dropped
    msg = inbound(ward, "U4")
    assert (msg.status, msg.rows_written) == ("released", 2)

    finding = crs(ward, capsys)
    assert (finding["status"], finding["grade"]) == ("met", 1), finding
    assert any("39.2" in e["why"] for e in finding["evidence"]), finding["evidence"]
    assert [(actor, why) for actor, why, _after in map_audits(ward)] == [
        ("admin.amy", "ward monitor's local temperature code")]
    assert [a[:2] for a in audit_actions(ward)] == [("hl7_release", "nurse.kim")]


def test_a_code_mapped_to_a_drug_stays_held_until_mapped_to_a_result(ward: Engine) -> None:  # noqa: F811
    """A result message records no drug given: an OBX mapped to a drug keeps the message
    held with a sentence saying what to do; nothing is written; a remap then releases it."""
    assert send(ward, build_oru("U5", [LOCAL_TEMP]))["code"] == "AA"
    mid = held_id(ward, "U5")
    map_code(ward, system="L", code="TEMPX", target_kind="drug", target="tocilizumab",
             user="admin.amy", reason="mistaken mapping", role="admin")
    (code,) = held_code_targets(ward, mid, settings_of(ward))
    assert code.target is not None and code.target.kind.value == "drug"
    assert not code.placeable
    with pytest.raises(HeldRefused, match="maps to a drug .* lab analyte or a bedside "
                                          "observation"):
        release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert (count(ward, Observation), count(ward, Treatment), count(ward, LabResult)) == (0, 0, 0)
    assert inbound(ward, "U5").status == "held"

    map_code(ward, system="L", code="TEMPX", target_kind="observation", target="temperature",
             user="admin.amy", reason="it is the ward monitor's temperature", role="admin")
    release(ward, mid, user="nurse.kim", role="nurse", settings=settings_of(ward))
    assert count(ward, Observation, kind="temperature") == 1 and count(ward, Treatment) == 0
    audits = map_audits(ward)  # the replaced entry is kept: its replacement's audit says so
    assert [why for _actor, why, _after in audits] == [
        "mistaken mapping", "it is the ward monitor's temperature"]
    assert audits[1][2]["target"] == "temperature"

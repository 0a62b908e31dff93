"""AppTest: the Held messages page. Messages arrive through core.capture.hl7.receive (the listener's
own path) on a copy of the sample database; a nurse matches and releases, an admin maps a
code, a message is dismissed with a reason."""

from __future__ import annotations

from sqlalchemy import create_engine, select

from core.capture.hl7.receive import receive
from core.config import Settings
from core.store.models import (
    AuditLog,
    CodeMapEntry,
    InboundMessage,
    LabResult,
    Observation,
    Patient,
)
from dashboard.codemap_admin import TARGETS
from tests.core.test_hl7_receive import FER, oru
from tests.dashboard.conftest import sign_in

LOCAL_FER = ("FERR", "Ferritin serum", "L", "NM", "900", "ug/L", "30-400", "H")
LOCAL_TEMP = ("TEMPX", "Temp local", "L", "NM", "39.2", "Cel", "", "H")


def arrive(url: str, message: str) -> None:
    engine = create_engine(url)
    try:
        assert receive(engine, message, Settings(database_url=url)).code == "AA"
    finally:
        engine.dispose()


def open_held(app, user: str):  # noqa: ANN001, ANN201
    sign_in(app, user)
    app.switch_page("pages/held.py").run()
    assert not app.exception, app.exception
    return app


def state(url: str, control: str) -> tuple[str, str | None]:
    engine = create_engine(url)
    with engine.connect() as c:
        row = c.execute(select(InboundMessage.status, InboundMessage.handled_by).where(
            InboundMessage.control_id == control)).one()
    engine.dispose()
    return row[0], row[1]


def hl7_ferritin(url: str, patient_id: str) -> list[float]:
    engine = create_engine(url)
    with engine.connect() as c:
        rows = c.execute(select(LabResult.value).join(Patient, Patient.id == LabResult.patient_pk)
                         .where(Patient.patient_id == patient_id, LabResult.source == "hl7",
                                LabResult.analyte == "ferritin")).scalars().all()
    engine.dispose()
    return list(rows)


def test_the_page_says_so_when_nothing_is_held(app, sample_url) -> None:  # noqa: ANN001
    open_held(app, "nurse.kim")
    assert any("No held messages" in s.value for s in app.success)


def test_a_nurse_sees_the_reason_and_raw_text_matches_and_releases(app, sample_url) -> None:  # noqa: ANN001
    arrive(sample_url, oru("HP1", [FER], patient="MRN-77001"))
    open_held(app, "nurse.kim")
    assert any("MRN-77001" in w.value for w in app.warning)
    assert any(c.value.startswith("MSH|") for c in app.code)
    assert "held_map_kind" not in [s.key for s in app.selectbox]  # mapping: admin only
    app.selectbox(key="held_match_patient").set_value("SYN-004")
    app.text_input(key="held_match_reason").input("same birth date on the request")
    next(b for b in app.button if b.label == "Match").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    next(b for b in app.button if b.label == "Release").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert state(sample_url, "HP1") == ("released", "nurse.kim")
    assert hl7_ferritin(sample_url, "SYN-004") == [900.0]


def test_an_admin_maps_an_unknown_code_then_releases(app, sample_url) -> None:  # noqa: ANN001
    arrive(sample_url, oru("HP2", [LOCAL_FER], patient="SYN-004"))
    open_held(app, "admin.amy")
    assert any("FERR" in w.value for w in app.warning)
    assert "held_map_kind" in [s.key for s in app.selectbox]
    next(b for b in app.button if b.label == "Release").click().run()
    assert any("Still held" in e.value for e in app.error)  # not mapped yet
    assert app.selectbox(key="held_map_kind").value == "analyte"
    app.selectbox(key="held_map_target_analyte").set_value("ferritin")
    app.text_input(key="held_map_reason").input("the lab's local ferritin code")
    next(b for b in app.button if b.label == "Map code").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("L FERR now maps to Lab analyte: Ferritin" in s.value for s in app.success)
    next(b for b in app.button if b.label == "Release").click().run()
    assert not app.error, [e.value for e in app.error]
    assert state(sample_url, "HP2") == ("released", "admin.amy")
    assert hl7_ferritin(sample_url, "SYN-004") == [900.0]


def test_a_message_is_dismissed_with_a_reason(app, sample_url) -> None:  # noqa: ANN001
    arrive(sample_url, oru("HP3", [FER], patient="MRN-77003"))
    open_held(app, "nurse.kim")
    next(b for b in app.button if b.label == "Dismiss").click().run()
    assert any("reason" in e.value for e in app.error)
    assert state(sample_url, "HP3") == ("held", None)
    app.text_input(key="held_dismiss_reason").input("not a CAR-T patient")
    next(b for b in app.button if b.label == "Dismiss").click().run()
    assert state(sample_url, "HP3") == ("dismissed", "nurse.kim")
    assert any("No held messages" in s.value for s in app.success)


def test_a_viewer_cannot_open_the_page(app, sample_url) -> None:  # noqa: ANN001
    arrive(sample_url, oru("HP4", [FER], patient="MRN-77004"))
    open_held(app, "viewer.vic")
    assert any("not open to a viewer" in e.value for e in app.error)
    assert not app.code  # the raw message is not shown
    assert state(sample_url, "HP4") == ("held", None)


def test_an_admin_maps_a_local_code_to_a_bedside_observation_then_releases(
        app, sample_url) -> None:  # noqa: ANN001
    """The same three target kinds and choices as the Code map section; a drug target says
    that a result message with this code stays held; temperature is stored as one."""
    arrive(sample_url, oru("HP5", [FER, LOCAL_TEMP], patient="SYN-004"))
    open_held(app, "admin.amy")
    code = app.selectbox(key="held_map_code")
    assert code.value.code == "TEMPX" and "not mapped" in code.format_func(code.value)
    kind = app.selectbox(key="held_map_kind")
    assert kind.options == [kind.format_func(k) for k in TARGETS]
    for k in TARGETS:  # each kind offers exactly the Code map section's choices
        app.selectbox(key="held_map_kind").set_value(k).run()
        which = app.selectbox(key=f"held_map_target_{k}")
        assert which.options == list(TARGETS[k].values()), k
        assert any("stays held" in i.value for i in app.info) == (k == "drug"), k
    app.selectbox(key="held_map_kind").set_value("observation").run()
    app.selectbox(key="held_map_target_observation").set_value("temperature")
    app.text_input(key="held_map_reason").input("ward monitor's local temperature code")
    next(b for b in app.button if b.label == "Map code").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("L TEMPX now maps to Bedside observation: Temperature" in s.value
               for s in app.success), [s.value for s in app.success]
    next(b for b in app.button if b.label == "Release").click().run()
    assert not app.error, [e.value for e in app.error]
    assert state(sample_url, "HP5") == ("released", "admin.amy")
    engine = create_engine(sample_url)
    with engine.connect() as c:
        temps = c.execute(select(Observation.value_num, Observation.unit)
                          .join(Patient, Patient.id == Observation.patient_pk)
                          .where(Patient.patient_id == "SYN-004", Observation.source == "hl7",
                                 Observation.kind == "temperature")).all()
        entry = c.execute(select(CodeMapEntry.system, CodeMapEntry.target_kind,
                                 CodeMapEntry.target, CodeMapEntry.display)
                          .where(CodeMapEntry.code == "TEMPX")).one()
        audit = c.execute(select(AuditLog.actor, AuditLog.reason)
                          .where(AuditLog.action == "map_code")).one()
    engine.dispose()
    assert [(v, u) for v, u in temps] == [(39.2, "°C")]
    assert tuple(entry) == ("L", "observation", "temperature", "Temp local")
    assert tuple(audit) == ("admin.amy", "ward monitor's local temperature code")
    assert hl7_ferritin(sample_url, "SYN-004") == [900.0]  # the rest of the message too

"""Roles are checked in core for every write: the role x action table, and every write
function refuses a role that may not (nothing written) and accepts one that may."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core.access.admin import change_own_password, reset_password, set_active, set_role
from core.access.permissions import PERMISSIONS, NotAllowed, allowed, require
from core.access.users import create_user
from core.capture.corrections import correct, mark_entered_in_error, verify
from core.capture.entry import enter_day, enter_grid, save_site_setting
from core.capture.fhir import import_fhir
from core.capture.importing import import_file
from core.monitoring.alert_actions import acknowledge, snooze
from core.store.db import session_scope
from core.store.models import Alert, AuditLog, LabResult, Patient

ROLES = ["display", "viewer", "nurse", "clinician", "admin"]
# the design's table, written out again here so a change to PERMISSIONS must be deliberate
TABLE = {
    "enter_data": {"nurse", "clinician", "admin"},
    "correct_data": {"nurse", "clinician", "admin"},
    "acknowledge_alert": {"clinician", "admin"},
    "snooze_alert": {"clinician", "admin"},
    "document_episode": {"clinician", "admin"},
    "manage_users": {"admin"},
    "site_settings": {"admin"},
    "rule_thresholds": {"admin"},
    "view": {"viewer", "nurse", "clinician", "admin"},
    "view_huddle": {"display", "viewer", "nurse", "clinician", "admin"},
    "own_account": {"display", "viewer", "nurse", "clinician", "admin"},
}
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_the_table_covers_every_action() -> None:
    assert set(PERMISSIONS) == set(TABLE)


@pytest.mark.parametrize(("role", "action"), list(itertools.product(ROLES, TABLE)))
def test_role_x_action(role: str, action: str) -> None:
    assert allowed(role, action) is (role in TABLE[action])
    if role in TABLE[action]:
        require(role, action)
    else:
        with pytest.raises(NotAllowed) as info:
            require(role, action)
        assert isinstance(info.value, PermissionError)
        text = str(info.value)
        assert f"A {role} may not" in text and "Nothing was saved" in text
        assert all(r in text for r in TABLE[action])


def test_a_trusted_caller_unknown_roles_and_actions() -> None:
    assert all(allowed(None, a) for a in TABLE)
    with pytest.raises(NotAllowed, match="Unknown role 'root'"):
        require("root", "view")
    with pytest.raises(ValueError, match="unknown action"):
        require("admin", "delete_everything")


# ---------------------------------------------------------------------------- wiring

PATIENTS = b"patient_id,infusion_date,product\nP1,2026-11-01,axi-cel\n"


@pytest.fixture
def ward(engine: Engine) -> Engine:
    assert import_file(engine, PATIENTS, "p.csv", now=NOW).ok
    return engine


def _lab(engine: Engine, n: int, user: str = "someone") -> int:
    res = enter_day(engine, "P1", datetime(2026, 11, 2, 6, 0) + timedelta(hours=n),
                    labs=[("crp", str(10 + n), "mg/L")], user=user, now=NOW)
    assert res.ok, res.errors
    return res.ids["labs"][0]


def _alert(engine: Engine, n: int) -> int:
    with session_scope(engine) as s:
        pk = s.execute(select(Patient.id)).scalar_one()
        a = Alert(patient_pk=pk, rule_id="crs_grade", episode_key=f"k{n}", severity="warning",
                  title="t", message="m")
        s.add(a)
        s.flush()
        return int(a.id)  # type: ignore[arg-type]


def _labs_csv(n: int) -> bytes:
    return f"patient_id,day,analyte,value,unit\nP1,{n}.5,ferritin,800,ng/mL\n".encode()


# (action, name, call(engine, role, n)); n makes each allowed call's data distinct, or is
# the id of the lab value / alert made for the call beforehand (SETUP)
WRITES: list[tuple[str, str, Callable[[Engine, str, int], object]]] = [
    ("enter_data", "import_file", lambda e, r, n: import_file(
        e, _labs_csv(n), "l.csv", now=NOW, role=r)),
    ("enter_data", "import_fhir", lambda e, r, n: import_fhir(e, b"{}", "f.json", role=r)),
    ("enter_data", "enter_day", lambda e, r, n: enter_day(
        e, "P1", datetime(2026, 11, 3) + timedelta(hours=n), labs=[("crp", "5", "mg/L")],
        user="u", now=NOW, role=r)),
    ("enter_data", "enter_grid", lambda e, r, n: enter_grid(
        e, "P1", __import__("pandas").DataFrame({"date": [f"2026-11-{4 + n:02d}"],
                                                 "crp": ["7"]}),
        {"crp": "mg/L"}, user="u", now=NOW, role=r)),
    ("document_episode", "enter_day episodes", lambda e, r, n: enter_day(
        e, "P1", datetime(2026, 11, 3), episodes=[{
            "kind": "CRS", "grade": "1", "onset": datetime(2026, 11, 2 + n, 8)}],
        user="u", now=NOW, role=r)),
    ("document_episode", "import_file episodes", lambda e, r, n: import_file(
        e, f"patient_id,kind,grade,onset_day\nP1,ICANS,1,{n + 1}\n".encode(), "e.csv",
        now=NOW, role=r)),
    ("correct_data", "correct", lambda e, r, n: correct(
        e, "labs", n, {"value": "99"}, "typo", "u", role=r)),
    ("correct_data", "mark_entered_in_error", lambda e, r, n: mark_entered_in_error(
        e, "labs", n, "wrong_patient", "u", role=r)),
    ("correct_data", "verify", lambda e, r, n: verify(e, [n], "checker", role=r)),
    ("acknowledge_alert", "acknowledge", lambda e, r, n: _in_session(
        e, acknowledge, n, "doc", role=r)),
    ("snooze_alert", "snooze", lambda e, r, n: _in_session(
        e, snooze, n, "doc", "reviewed", datetime.now(UTC) + timedelta(hours=2), role=r)),
    ("manage_users", "create_user", lambda e, r, n: create_user(
        e, f"user{n}", "nurse", "a long password", actor_role=r)),
    ("manage_users", "set_active", lambda e, r, n: set_active(
        e, f"leaver{n}", False, "boss", actor_role=r)),
    ("manage_users", "set_role", lambda e, r, n: set_role(
        e, f"leaver{n}", "viewer", "boss", actor_role=r)),
    ("manage_users", "reset_password", lambda e, r, n: reset_password(
        e, f"leaver{n}", "a new long password", "boss", actor_role=r)),
    ("own_account", "change_own_password", lambda e, r, n: change_own_password(
        e, f"leaver{n}", "a long password", "a new long password", actor_role=r)),
    ("site_settings", "save_site_setting", lambda e, r, n: save_site_setting(
        e, "require_verification", True, "u", role=r)),
    ("rule_thresholds", "save_site_setting thresholds", lambda e, r, n: save_site_setting(
        e, "thresholds.crs_grade", {"fever_c": 38.0 + n / 10}, "u", role=r)),
]


def _leaver(engine: Engine, n: int) -> int:
    create_user(engine, f"leaver{n}", "nurse", "a long password")
    return n


SETUP: dict[str, Callable[[Engine, int], int]] = {
    "correct": _lab, "mark_entered_in_error": _lab, "verify": _lab,
    "acknowledge": _alert, "snooze": _alert, "set_active": _leaver, "set_role": _leaver,
    "reset_password": _leaver, "change_own_password": _leaver}


def _in_session(engine: Engine, fn: Callable, *args: object, **kw: object) -> object:
    with session_scope(engine) as s:
        return fn(s, *args, **kw)


def _audit_count(engine: Engine) -> tuple[int, int]:
    with engine.connect() as c:
        return (c.execute(select(func.count()).select_from(AuditLog)).scalar_one(),
                c.execute(select(func.count()).select_from(LabResult)).scalar_one())


@pytest.mark.parametrize(("action", "name", "call"), [pytest.param(a, name, c, id=name)
                                                      for a, name, c in WRITES])
def test_every_write_checks_the_role(ward: Engine, action: str, name: str,
                                     call: Callable) -> None:
    setup = SETUP.get(name, lambda _e, n: n)
    for n, role in enumerate(ROLES):
        n = setup(ward, n)
        if role in TABLE[action]:
            call(ward, role, n)  # no NotAllowed (the data itself may be judged separately)
            continue
        before = _audit_count(ward)
        with pytest.raises(NotAllowed, match=f"A {role} may not"):
            call(ward, role, n)
        assert _audit_count(ward) == before, f"{role} wrote something before the refusal"
    call(ward, None, setup(ward, len(ROLES)))  # a trusted caller (the CLI) is never refused


def test_a_nurse_may_enter_labs_but_not_an_episode_in_the_same_save(ward: Engine) -> None:
    with pytest.raises(NotAllowed, match="document CRS, ICANS or IEC-HS episodes"):
        enter_day(ward, "P1", datetime(2026, 11, 3), labs=[("crp", "5", "mg/L")],
                  episodes=[{"kind": "CRS", "grade": "1", "onset": datetime(2026, 11, 2)}],
                  user="n", now=NOW, role="nurse")
    assert _audit_count(ward)[1] == 0

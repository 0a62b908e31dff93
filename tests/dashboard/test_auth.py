"""Sign-in, roles and the display token, through the real app script (AppTest).

Some tests sign in through the form itself; the others start from the state a good sign-in
leaves (conftest.sign_in), which lives on the server and cannot be set by a browser. Single
sign-on through the app: test_auth_oidc.py.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
import streamlit as st
from sqlalchemy import create_engine, select, text
from streamlit.testing.v1 import AppTest

from core.access.permissions import NotAllowed
from core.store.db import make_engine, session_scope
from core.store.models import Alert, AlertState, AuditLog, User
from dashboard import resources
from tests.dashboard.conftest import APP, PASSWORD, sign_in
from tests.dashboard.test_ward_pages import all_output

ENTRY_TITLES = {"Enter data", "Bulk import", "Verification queue", "Users & settings"}


def audit_rows(url: str, action: str) -> list[dict]:
    eng = create_engine(url)
    with eng.connect() as c:
        rows = [dict(r._mapping) for r in c.execute(
            select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id))]
    eng.dispose()
    return rows


def submit_sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert not at.exception, at.exception
    return at


def is_sign_in_form(at: AppTest) -> bool:
    return [t.label for t in at.text_input] == ["User name", "Password"]


@pytest.fixture
def nav_pages(monkeypatch: pytest.MonkeyPatch) -> list[list[tuple[str, str]]]:
    """Every st.navigation call's pages as (title, visibility), one list per run."""
    calls: list[list[tuple[str, str]]] = []
    real = st.navigation

    def spy(pages, **kw):  # noqa: ANN001, ANN003, ANN202
        flat = [p for group in (pages.values() if isinstance(pages, dict) else [pages])
                for p in group]
        calls.append([(p.title, p._visibility) for p in flat])
        return real(pages, **kw)

    monkeypatch.setattr(st, "navigation", spy)
    return calls


def test_signed_out_shows_only_the_sign_in_form(signed_out, nav_pages):
    at = signed_out
    assert is_sign_in_form(at)
    assert not at.dataframe and "Ward overview" not in [t.value for t in at.title]
    at.switch_page("pages/entry.py").run()  # a bookmark to any page: still the form
    assert is_sign_in_form(at) and "Enter data" not in [t.value for t in at.title]
    assert all(vis == "hidden" for _t, vis in nav_pages[-1])


def test_good_sign_in_through_the_form_starts_a_session_and_is_audited(signed_out, sample_url):
    (form,) = signed_out.get("form")
    assert form.proto.form.enter_to_submit  # a form: Enter in the password field submits
    assert {t.proto.form_id for t in signed_out.text_input} == {form.proto.form.form_id}
    at = submit_sign_in(signed_out, "Nurse.Kim", PASSWORD)  # names are not case-sensitive
    assert not is_sign_in_form(at)
    assert (at.session_state["auth_username"], at.session_state["auth_role"]) == (
        "nurse.kim", "nurse")
    assert "Ward overview" in [t.value for t in at.title]
    side = " ".join(m.value for m in at.sidebar.markdown)
    assert "Signed in as" in side and "nurse.kim" in side and "nurse" in side
    (row,) = audit_rows(sample_url, "login")
    assert row["actor"] == "nurse.kim" and row["after"]["method"] == "password"


def test_wrong_password_is_refused_audited_and_never_stored(signed_out, sample_url):
    at = submit_sign_in(signed_out, "nurse.kim", "not the password")
    assert is_sign_in_form(at)
    assert any("Wrong user name or password" in e.value for e in at.error)
    assert "auth_username" not in at.session_state
    at = submit_sign_in(at, "nobody", "whatever it is")
    failed = audit_rows(sample_url, "login_failed")
    assert [(r["actor"], r["after"]["known_user"]) for r in failed] == [
        ("nurse.kim", True), ("nobody", False)]
    assert not audit_rows(sample_url, "login")
    eng = create_engine(sample_url)
    with eng.connect() as c:  # no password, typed or stored, anywhere in the audit log
        dump = json.dumps([list(r) for r in c.execute(text("SELECT * FROM auditlog"))],
                          default=str)
    assert "not the password" not in dump and PASSWORD not in dump and "$2b$" not in dump


def test_sign_out_button_ends_the_session(app, sample_url):
    next(b for b in app.sidebar.button if b.label == "Sign out").click().run()
    assert is_sign_in_form(app) and "auth_username" not in app.session_state
    assert any("You are signed out" in i.value for i in app.info)
    assert [r["actor"] for r in audit_rows(sample_url, "logout")] == ["dr.lee"]


def test_an_idle_session_is_signed_out_with_a_message(app, sample_url):
    app.session_state["auth_seen"] = time.time() - 31 * 60
    app.run()
    assert is_sign_in_form(app)
    assert any("after 30 minutes without activity" in i.value for i in app.info)
    assert [r["actor"] for r in audit_rows(sample_url, "session_expired")] == ["dr.lee"]


def test_idle_time_comes_from_the_environment(sample_url, monkeypatch):
    monkeypatch.setenv("CARTWATCH_IDLE_MINUTES", "5")
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "dr.lee", sample_url)
    at.session_state["auth_seen"] = time.time() - 4 * 60  # active 4 minutes ago: still in
    at.run()
    assert not is_sign_in_form(at) and "Ward overview" in [t.value for t in at.title]
    at.session_state["auth_seen"] = time.time() - 6 * 60
    at.run()
    assert is_sign_in_form(at)
    assert any("after 5 minutes" in i.value for i in at.info)


@pytest.mark.parametrize("username,listed,refused", [
    ("viewer.vic", {"Ward overview", "Alert inbox", "Audit trail", "Huddle screen"},
     ["entry.py", "import_data.py", "verify.py", "admin.py"]),
    ("nurse.kim", {"Enter data", "Bulk import", "Verification queue"}, ["admin.py"]),
    ("tv.wall", {"Huddle screen"}, ["overview.py", "entry.py", "admin.py", "audit.py"]),
])
def test_a_role_sees_only_its_pages_and_others_refuse_by_url(
        sample_url, nav_pages, username, listed, refused):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), username, sample_url)
    at.run()
    assert not at.exception, at.exception
    visible = {t for t, vis in nav_pages[-1] if vis == "visible"}
    assert listed <= visible
    role = at.session_state["auth_role"]
    for title in ENTRY_TITLES - visible:
        assert ("hidden" in {vis for t, vis in nav_pages[-1] if t == title})
    if role != "admin":
        assert "Users & settings" not in visible
    for page in refused:
        at.switch_page(f"pages/{page}").run()
        assert not at.exception, at.exception
        assert any(f"not open to a {role}" in e.value for e in at.error), page
        assert not at.text_input and not at.get("file_uploader") and not at.dataframe


def test_a_role_changed_in_the_session_is_reset_from_the_database(sample_url):
    """Escalation: the session's role is re-read from the User table on every run."""
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "nurse.kim", sample_url)
    at.session_state["auth_role"] = "admin"
    at.switch_page("pages/admin.py").run()
    assert at.session_state["auth_role"] == "nurse"
    assert any("not open to a nurse" in e.value for e in at.error)


def _open_alert(url: str) -> int:
    with session_scope(make_engine(url)) as s:
        return s.scalars(select(Alert.id).where(Alert.state == AlertState.FIRING)).first()


def test_a_nurse_has_no_acknowledge_button_and_core_refuses_if_forced(sample_url):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "nurse.kim", sample_url)
    at.switch_page("pages/alerts.py").run()
    assert not at.exception, at.exception
    labels = {b.label for b in at.button}
    assert not labels & {"Acknowledge", "Snooze"}
    assert any("Only a clinician or an admin" in c.value for c in at.caption)
    at.session_state["patient_id"] = "SYN-004"
    at.switch_page("pages/patient.py").run()
    assert not [b for b in at.button if b.label in ("Acknowledge", "Snooze")]
    alert_id = _open_alert(sample_url)
    with pytest.raises(NotAllowed, match="A nurse may not acknowledge alerts"):
        resources.act_on_alert(make_engine(sample_url), "acknowledge", alert_id, "nurse.kim",
                               "nurse")
    with session_scope(make_engine(sample_url)) as s:
        assert s.get(Alert, alert_id).state == AlertState.FIRING


def test_a_nurse_enters_labs_but_cannot_document_an_episode(sample_url):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "nurse.kim", sample_url)
    at.session_state["patient_id"] = "SYN-004"
    at.switch_page("pages/entry.py").run()
    assert not at.exception, at.exception
    keys = {w.key for w in at.selectbox}
    assert "entry_ep_kind" not in keys and "entry_tr_drug" in keys
    assert any("documented by a clinician" in c.value for c in at.caption)


@pytest.fixture
def display_token(monkeypatch: pytest.MonkeyPatch) -> str:
    token = secrets.token_urlsafe(24)
    monkeypatch.setenv("CARTWATCH_DISPLAY_TOKEN", token)
    return token


def test_the_display_token_opens_the_huddle_only(sample_url, display_token):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "huddle"
    at.query_params["display"] = display_token
    at.run()
    assert not at.exception, at.exception
    shown = all_output(at)
    assert 'class=\\"tile\\"' in shown and "SYN-" not in shown
    assert not at.text_input and not at.sidebar.selectbox and not at.sidebar.button
    # the wall, and at "/" a page that only switches to it
    assert {i["page_name"] for i in at._registered_pages.values()} == {"Huddle screen"}
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/overview.py")


@pytest.mark.parametrize("given", ["wrong-token-of-some-length", "", None])
def test_a_wrong_or_missing_display_token_shows_the_sign_in_form(sample_url, display_token,
                                                                 given):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "huddle"
    if given is not None:
        at.query_params["display"] = given
    at.run()
    assert is_sign_in_form(at)
    assert 'class=\\"tile\\"' not in all_output(at)


def test_admin_adds_and_deactivates_a_user_audited_and_they_cannot_sign_in(sample_url):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    assert not at.exception, at.exception
    at.text_input(key="admin_new_username").input("nurse.new")
    at.text_input(key="admin_new_name").input("New Nurse")
    at.selectbox(key="admin_new_role").set_value("nurse")
    at.text_input(key="admin_new_password").input("a fresh password")
    at.text_input(key="admin_new_again").input("a fresh password")
    next(b for b in at.button if b.label == "Add user").click().run()
    assert not at.exception, at.exception
    assert any("nurse.new (nurse) added" in s.value for s in at.success)
    (created,) = [r for r in audit_rows(sample_url, "create_user")
                  if r["after"]["username"] == "nurse.new"]
    assert created["actor"] == "admin.amy"

    at.selectbox(key="admin_pick").set_value("nurse.new").run()
    at.button(key="admin_deactivate").click().run()
    assert any("nurse.new deactivated" in s.value for s in at.success)
    (gone,) = audit_rows(sample_url, "deactivate_user")
    assert gone["actor"] == "admin.amy" and gone["after"]["username"] == "nurse.new"
    eng = create_engine(sample_url)
    with eng.connect() as c:  # kept, not deleted
        assert c.execute(select(User.is_active).where(User.username == "nurse.new")
                         ).scalar_one() is False

    st.cache_resource.clear()
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.run()
    submit_sign_in(fresh, "nurse.new", "a fresh password")
    assert is_sign_in_form(fresh) and "auth_username" not in fresh.session_state
    assert [r["actor"] for r in audit_rows(sample_url, "login_failed")] == ["nurse.new"]


def test_a_deactivated_user_is_signed_out_at_the_next_click(app, sample_url):
    from core.access.admin import set_active

    set_active(make_engine(sample_url), "dr.lee", False, "admin.amy", actor_role="admin")
    app.run()
    assert is_sign_in_form(app)
    assert any("no longer active" in i.value for i in app.info)


def test_an_admin_cannot_deactivate_themselves(sample_url):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    at.selectbox(key="admin_pick").set_value("admin.amy").run()
    at.button(key="admin_deactivate").click().run()
    assert any("your own account" in e.value for e in at.error)


def test_a_sign_in_cookie_issued_before_a_sign_out_is_not_honoured(sample_url):
    from core.access.accounts import record_sign_in, token_account
    from core.access.users import issue_token

    engine, key = make_engine(sample_url), "a key for this test only"
    token = issue_token(key, "dr.lee", 30 * 60)
    assert token_account(engine, key, token).username == "dr.lee"
    assert token_account(engine, "another key", token) is None  # forged
    body, mac = token.split(".")
    assert token_account(engine, key, body[:-2] + "xx." + mac) is None  # altered
    assert token_account(engine, key, issue_token(key, "dr.lee", 60),
                         now=time.time() + 61) is None  # expired
    assert token_account(engine, key, issue_token(key, "nobody", 60)) is None
    record_sign_in(engine, "dr.lee", "logout")  # on any browser
    assert token_account(engine, key, token) is None
    time.sleep(0.01)
    assert token_account(engine, key, issue_token(key, "dr.lee", 60)).username == "dr.lee"


def test_repeated_wrong_passwords_lock_the_name_even_for_the_right_one(sample_url,
                                                                        monkeypatch):
    monkeypatch.setenv("CARTWATCH_LOCKOUT_ATTEMPTS", "3")
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    for _ in range(3):
        submit_sign_in(at, "nurse.kim", "not the password")
        assert any("Wrong user name or password" in e.value for e in at.error)
    submit_sign_in(at, "nurse.kim", PASSWORD)  # right, but the name is locked
    assert is_sign_in_form(at) and "auth_username" not in at.session_state
    assert any("Too many failed sign-ins" in e.value and "ask an admin" in e.value
               for e in at.error)
    assert [r["actor"] for r in audit_rows(sample_url, "login_locked")] == ["nurse.kim"]
    assert len(audit_rows(sample_url, "login_failed")) == 3 and not audit_rows(sample_url,
                                                                               "login")
    submit_sign_in(at, "dr.lee", PASSWORD)  # other names are not affected
    assert at.session_state["auth_username"] == "dr.lee" and not is_sign_in_form(at)


def test_admin_changes_a_role_and_sets_a_password_the_user_then_signs_in_with(sample_url):
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    at.selectbox(key="admin_pick").set_value("nurse.kim").run()
    at.selectbox(key="admin_role_nurse.kim").set_value("clinician").run()
    at.button(key="admin_save_role").click().run()
    assert not at.exception, at.exception
    assert any("nurse.kim is now a clinician" in s.value for s in at.success)
    at.text_input(key="admin_reset_password").input("set by the admin 1")
    at.text_input(key="admin_reset_again").input("set by the admin 1")
    next(b for b in at.button if b.label == "Set password").click().run()
    assert any("New password set for nurse.kim" in s.value for s in at.success)
    assert [(r["actor"], r["after"]["role"]) for r in audit_rows(sample_url, "set_role")] == [
        ("admin.amy", "clinician")]
    assert [r["actor"] for r in audit_rows(sample_url, "password_reset")] == ["admin.amy"]

    st.cache_resource.clear()
    fresh = AppTest.from_file(APP, default_timeout=60)
    fresh.run()
    submit_sign_in(fresh, "nurse.kim", PASSWORD)  # the old password no longer works
    assert is_sign_in_form(fresh)
    submit_sign_in(fresh, "nurse.kim", "set by the admin 1")
    fresh.run()
    assert fresh.session_state["auth_role"] == "clinician"


def test_a_user_changes_their_own_password_on_my_account(app, sample_url):
    app.switch_page("pages/account.py").run()
    assert not app.exception, app.exception
    assert "My account" in [t.value for t in app.title]

    def change(current: str, new: str, again: str) -> None:
        app.text_input(key="account_current").input(current)
        app.text_input(key="account_new").input(new)
        app.text_input(key="account_again").input(again)
        next(b for b in app.button if b.label == "Change password").click().run()
        assert not app.exception, app.exception

    change("not my password", "my new password 1", "my new password 1")
    assert any("current password is wrong" in e.value for e in app.error)
    change(PASSWORD, "my new password 1", "my new password 2")
    assert any("differ" in e.value for e in app.error)
    assert not audit_rows(sample_url, "password_changed")
    change(PASSWORD, "my new password 1", "my new password 1")
    assert any("Password changed" in s.value for s in app.success)
    assert [r["actor"] for r in audit_rows(sample_url, "password_changed")] == ["dr.lee"]
    eng = make_engine(sample_url)
    from core.access.accounts import active_account
    from core.access.users import check_password
    assert check_password("my new password 1", active_account(eng, "dr.lee").password_hash)

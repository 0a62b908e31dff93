"""The admin page's Notifications section (issue 13 §3): contact points and policies as in
force, "Send a test" reaching a real receiver on the loopback, and failed deliveries shown."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench._receivers import HttpReceiver
from tests.dashboard.conftest import APP, sign_in

SECRET = "whsec_" + __import__("base64").b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_url: str):  # noqa: ANN201
    ok, broken = HttpReceiver(SECRET).start(), HttpReceiver(SECRET, default=500).start()
    toml = tmp_path / "site.toml"
    toml.write_text(f"""
[notify]
quiet_hours = "22:00-07:00"
max_attempts = 1

[[notify.contact]]
name = "car-t on-call"
url = "{ok.url('/page')}"
secret_env = "CARTWATCH_TEST_SECRET"
min_severity = "severe"
tier = 1

[[notify.contact]]
name = "night desk"
url = "{broken.url('/desk')}"
secret_env = "CARTWATCH_TEST_SECRET"
min_severity = "warning"
tier = 2
""")
    monkeypatch.setenv("CARTWATCH_SITE_CONFIG", str(toml))
    monkeypatch.setenv("CARTWATCH_TEST_SECRET", SECRET)
    yield ok, broken
    ok.stop()
    broken.stop()


def _text(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown) + "\n".join(
        str(m.value) for m in (*at.success, *at.error, *at.caption))


def test_the_admin_sees_the_contacts_and_sends_a_test_to_each(site, sample_url: str) -> None:
    ok, broken = site
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "admin.amy", sample_url)
    at.switch_page("pages/admin.py").run()
    assert not at.exception, at.exception
    shown = _text(at)
    assert "car-t on-call" in shown and "night desk" in shown
    assert "quiet hours 22:00–07:00" in shown or "22:00" in shown
    assert "screening flag for clinician review" in shown.lower()

    at.button(key="admin_notify_test_0").click().run()
    assert not at.exception, at.exception
    assert any("delivered to car-t on-call" in s.value for s in at.success), _text(at)
    [req] = ok.requests
    assert req.verified and req.json()["event"] == "test"
    assert "screening" in req.json()["screening_note"].lower()

    at.button(key="admin_notify_test_1").click().run()
    assert not at.exception, at.exception
    assert len(broken.requests) == 1
    assert any("night desk" in e.value for e in at.error), _text(at)
    at.run()
    assert any("could not be delivered" in e.value for e in at.error), _text(at)
    tables = [d.value for d in at.dataframe]
    assert any("Contact" in t and list(t["Contact"]) == ["night desk"] for t in tables), tables


def test_a_nurse_has_no_notifications_section(site, sample_url: str) -> None:
    at = sign_in(AppTest.from_file(APP, default_timeout=60), "nurse.kim", sample_url)
    at.switch_page("pages/admin.py").run()
    assert not at.exception
    assert not [b for b in at.button if str(b.key).startswith("admin_notify_test")]

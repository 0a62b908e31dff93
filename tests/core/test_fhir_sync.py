"""fhir-sync against a FHIR server stand-in on 127.0.0.1 (bench/fhir_sync.py FhirStandIn):
SMART Backend Services and static bearer tokens, paged Bundles, Retry-After, an expired
token, incremental watermarks, a refused page, the monitor and the CLI."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select

from bench.fhir_sync import (
    STUDY_SYSTEM,
    FhirStandIn,
    administration,
    fhir_patient,
    observation,
    patients_csv,
)
from core.capture.fhirsync import (
    FhirClient,
    FhirConfig,
    FhirConfigError,
    FhirError,
    parse_fhir_config,
    sync_once,
)
from core.capture.importing import import_file
from core.config import Settings
from core.store.db import session_scope
from core.store.models import InboundMessage, LabResult, Observation, SyncWatermark, Treatment

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY0 = TODAY - timedelta(days=6)
T1 = DAY0 + timedelta(days=2, hours=8)  # when the first results were updated on the server


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def key_file(tmp_path: Path, rsa_pem: bytes) -> Path:
    path = tmp_path / "client.pem"
    path.write_bytes(rsa_pem)
    return path


@pytest.fixture
def server(rsa_pem: bytes):  # type: ignore[no-untyped-def]
    with FhirStandIn(public_key=RSAKey.import_key(rsa_pem), kid="test-key") as srv:
        srv.add(fhir_patient("s1", "SYN-101"), DAY0)
        srv.add(fhir_patient("s2", "SYN-102"), DAY0)
        srv.add(fhir_patient("s9", "OTHER-9"), DAY0)  # on the server, not in CAR-T Watch
        yield srv


def smart(server: FhirStandIn, key_file: Path, **kw: object) -> FhirConfig:
    """SMART Backend Services; no token_url: discovered from .well-known."""
    values: dict[str, object] = {
        "base_url": server.base_url, "auth": "smart", "client_id": "cartwatch",
        "private_key_file": key_file, "key_id": "test-key",
        "patient_identifier_system": STUDY_SYSTEM, "page_size": 2,
        "max_retry_after_seconds": 5, "resource_types": ("Observation",)}
    values.update(kw)
    return FhirConfig(**values)  # type: ignore[arg-type]


def register(engine, *ids: str) -> None:  # type: ignore[no-untyped-def]
    report = import_file(engine, patients_csv(list(ids), DAY0.date()), "patients.csv",
                         kind="patients", user="nurse.kim")
    assert report.ok, [str(e) for e in report.errors]


def settings_for(engine) -> Settings:  # type: ignore[no-untyped-def]
    return Settings.from_env(database_url=str(engine.url))


def ferritin(rid: str, pid: str, value: float, when: datetime) -> dict:
    return observation(rid, pid, "2276-4", value, "ug/L", when)


def temperature(rid: str, pid: str, value: float, when: datetime) -> dict:
    return observation(rid, pid, "8310-5", value, "Cel", when, category="vital-signs")


def searches(server: FhirStandIn, rtype: str) -> list[dict[str, str]]:
    """The first-page searches of a type (next links carry _offset)."""
    return [p for path, p in server.searches if path == f"/fhir/{rtype}" and "_offset" not in p]


def mark(engine, key: str) -> datetime | None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        row = s.get(SyncWatermark, key)
        if row is None:
            return None
        when = row.last_updated
        return when if when.tzinfo else when.replace(tzinfo=UTC)


# --- the [fhir] table ----------------------------------------------------------------------

GOOD = """
[fhir]
base_url = "https://ehr.example.org/fhir/R4/"
auth = "smart"
client_id = "cartwatch"
private_key_file = "keys/client.pem"
key_id = "k1"
patient_identifier_system = "urn:oid:1.2.3"
page_size = 50
"""


def test_the_fhir_table_reads_with_defaults_and_a_key_file_beside_the_toml() -> None:
    config = parse_fhir_config(GOOD, source="site.toml", base_dir=Path("/etc/cartwatch"))
    assert config is not None
    assert (config.base_url, config.auth, config.page_size, config.patients_per_query) == (
        "https://ehr.example.org/fhir/R4", "smart", 50, 20)
    assert config.private_key_file == Path("/etc/cartwatch/keys/client.pem")
    assert config.scope == ("system/Observation.rs system/MedicationAdministration.rs "
                            "system/Patient.rs")
    assert config.resource_types == ("Observation", "MedicationAdministration")
    assert parse_fhir_config("[notify]\n") is None
    assert parse_fhir_config("[fhir]\nauth = \"none\"\n") is None  # no server: nothing to do


@pytest.mark.parametrize(("table", "named"), [
    ('base_url = "https://x/fhir"\nbase_ur = 1', "unknown key(s) ['base_ur']"),
    ('base_url = "ftp://x/fhir"', "base_url must be an http"),
    ('base_url = "https://x/fhir"\nauth = "oauth"', "auth must be one of none, bearer, smart"),
    ('base_url = "https://x/fhir"\nauth = "bearer"', "token_env is needed"),
    ('base_url = "https://x/fhir"\nauth = "bearer"\ntoken_env = "eyJhbGciOi.x.y"',
     "token_env must name an environment variable"),
    ('base_url = "https://x/fhir"\nauth = "smart"\nclient_id = "c"\nprivate_key_file = "k"',
     "key_id is needed"),
    ('base_url = "https://x/fhir"\npage_size = 0', "page_size must be a whole number"),
    ('base_url = "https://x/fhir"\nresource_types = ["Encounter"]', "resource_types must"),
    ('base_url = "https://x/fhir"\nalgorithm = "RS256"', "algorithm must be one of RS384"),
])
def test_a_bad_fhir_table_is_an_error_naming_the_file_and_key(table: str, named: str) -> None:
    with pytest.raises(FhirConfigError) as err:
        parse_fhir_config("[fhir]\n" + table, source="site.toml")
    assert str(err.value).startswith("site.toml: ") and named in str(err.value)


# --- SMART, paging, incremental ------------------------------------------------------------

def test_first_sync_takes_labs_and_vitals_and_a_second_only_what_is_new(store, server,
                                                                        key_file) -> None:
    register(store, "SYN-101", "SYN-102")
    server.add(ferritin("f1", "s1", 850, T1), T1)
    server.add(temperature("t1", "s1", 39.1, T1 + timedelta(hours=1)), T1 + timedelta(hours=1))
    server.add(ferritin("f2", "s2", 1200, T1), T1 + timedelta(hours=2))
    server.add(temperature("t2", "s2", 38.4, T1), T1 + timedelta(hours=3))
    server.add(ferritin("f9", "s9", 99999, T1), T1)  # not our patient: never asked for
    config = smart(server, key_file)
    first = sync_once(store, settings_for(store), config)
    assert first.error is None, first.error
    obs = first.types["Observation"]
    assert (first.patients, first.on_server) == (2, 2)
    assert (obs.pages, obs.resources, obs.written) == (2, 4, 4)
    # SMART: one token, a verified private-key JWT for our client, the asked scope
    assert len(server.assertions) == 1
    claim = server.assertions[0]
    assert (claim["iss"], claim["sub"], claim["aud"], claim["alg"]) == (
        "cartwatch", "cartwatch", server.token_url, "RS384")
    assert claim["exp"] - time.time() <= 300
    assert claim["scope"] == config.scope
    with session_scope(store) as s:
        labs = {r.source_record_id: r.value for r in s.scalars(select(LabResult))}
        temps = sorted(r.value_num for r in s.scalars(select(Observation).where(
            Observation.kind == "temperature")))
        kept = s.scalars(select(InboundMessage).where(InboundMessage.channel == "fhir")).all()
    assert labs == {"f1": 850, "f2": 1200}
    assert temps == [38.4, 39.1]
    assert [m.status for m in kept] == ["stored", "stored"]
    assert all('"type": "searchset"' in m.raw for m in kept)  # the server's page, as sent
    assert mark(store, f"{server.base_url}|Observation") == T1 + timedelta(hours=3)
    query = searches(server, "Observation")[0]
    assert query["category"] == "laboratory,vital-signs" and "_lastUpdated" not in query
    assert query["_sort"] == "_lastUpdated" and query["patient"] == "s1,s2"

    later = T1 + timedelta(days=1)
    server.add(ferritin("f3", "s1", 2400, later), later)
    second = sync_once(store, settings_for(store), config)
    assert second.error is None, second.error
    asked = searches(server, "Observation")[-1]
    assert asked["_lastUpdated"] == "gt" + (T1 + timedelta(hours=3)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")
    obs = second.types["Observation"]
    assert (obs.resources, obs.written, obs.already_present) == (1, 1, 0)
    assert mark(store, f"{server.base_url}|Observation") == later
    assert mark(store, f"{server.base_url}|Observation|SYN-101") == later
    third = sync_once(store, settings_for(store), config)
    assert third.types["Observation"].resources == 0 and third.error is None


def test_a_medication_administration_of_tocilizumab_becomes_a_treatment(engine, server,
                                                                        key_file) -> None:
    register(engine, "SYN-101")
    server.add(administration("ma1", "s1", "tocilizumab", T1, 8, "mg/kg"), T1)
    report = sync_once(engine, settings_for(engine),
                       smart(server, key_file, resource_types=("MedicationAdministration",)))
    assert report.error is None, report.error
    assert report.types["MedicationAdministration"].written == 1
    with session_scope(engine) as s:
        assert [t.drug for t in s.scalars(select(Treatment))] == ["tocilizumab"]
    assert mark(engine, f"{server.base_url}|MedicationAdministration|SYN-101") == T1


def test_a_patient_registered_after_the_first_sync_gets_their_whole_history(
        engine, server, key_file) -> None:
    register(engine, "SYN-101")
    server.add(ferritin("f1", "s1", 850, T1), T1 + timedelta(hours=5))
    server.add(ferritin("f2", "s2", 1200, T1), T1)  # older than SYN-101's watermark
    config = smart(server, key_file)
    assert sync_once(engine, settings_for(engine), config).types["Observation"].written == 1
    register(engine, "SYN-102")
    report = sync_once(engine, settings_for(engine), config)
    assert report.error is None and report.types["Observation"].written == 1
    new = [q for q in searches(server, "Observation") if q["patient"] == "s2"]
    assert new and "_lastUpdated" not in new[0]
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(LabResult.source_record_id))) == ["f1", "f2"]


def test_smart_with_an_ec_key_signs_es384_and_a_configured_token_url(tmp_path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(_pem(key))
    with FhirStandIn(public_key=ECKey.import_key(_pem(key)), kid="ec") as srv:
        config = FhirConfig(base_url=srv.base_url, auth="smart", client_id="cartwatch",
                            private_key_file=path, key_id="ec", token_url=srv.token_url)
        with FhirClient(config) as client:
            assert client.get(f"{srv.base_url}/Patient", {"identifier": "x"}).ok
    assert [a["alg"] for a in srv.assertions] == ["ES384"]
    assert not [p for p, _ in srv.searches if "well-known" in p]


# --- Retry-After, 401, bearer --------------------------------------------------------------

def test_a_429_with_retry_after_is_waited_out_then_retried(engine, server, key_file) -> None:
    register(engine, "SYN-101")
    server.add(ferritin("f1", "s1", 850, T1), T1)
    server.fail_next("/fhir/Observation", 429, {"Retry-After": "1"})
    report = sync_once(engine, settings_for(engine), smart(server, key_file))
    assert report.error is None, report.error
    assert report.retries == 1 and report.types["Observation"].written == 1
    assert len(server.waits) == 1 and server.waits[0] >= 0.95


def test_retry_after_as_an_http_date_and_the_cap() -> None:
    import requests

    config = FhirConfig(base_url="http://127.0.0.1:9/fhir", max_retry_after_seconds=5)
    client = FhirClient(config)
    answer = requests.Response()
    answer.headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(seconds=3),
                                                    usegmt=True)
    assert 1 <= client.retry_after(answer, 1) <= 3
    answer.headers["Retry-After"] = "3600"
    assert client.retry_after(answer, 1) == 5
    del answer.headers["Retry-After"]
    assert [client.retry_after(answer, n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def test_an_expired_token_is_renewed_once_and_the_request_retried(engine, server,
                                                                  key_file) -> None:
    register(engine, "SYN-101")
    server.add(ferritin("f1", "s1", 850, T1), T1)
    config = smart(server, key_file)
    with FhirClient(config) as client:
        assert sync_once(engine, settings_for(engine), config, client=client).error is None
        assert len(server.assertions) == 1
        server.expire_tokens()  # the client still holds the old token: 401 on its next call
        later = T1 + timedelta(hours=4)
        server.add(ferritin("f2", "s1", 900, later), later)
        report = sync_once(engine, settings_for(engine), config, client=client)
    assert report.error is None, report.error
    assert len(server.assertions) == 2 and report.types["Observation"].written == 1
    assert len({a["jti"] for a in server.assertions}) == 2


def test_a_static_bearer_token_comes_from_the_environment(engine, monkeypatch) -> None:
    register(engine, "SYN-101")
    with FhirStandIn(static_token="s3cret-token") as srv:
        srv.add(fhir_patient("s1", "SYN-101"), DAY0)
        srv.add(ferritin("f1", "s1", 850, T1), T1)
        config = FhirConfig(base_url=srv.base_url, auth="bearer",
                            token_env="CARTWATCH_TEST_FHIR_TOKEN",
                            patient_identifier_system=STUDY_SYSTEM,
                            resource_types=("Observation",))
        monkeypatch.setenv("CARTWATCH_TEST_FHIR_TOKEN", "wrong")
        refused = sync_once(engine, settings_for(engine), config)
        assert refused.error is not None
        assert "HTTP 401" in refused.error and f"{srv.base_url}/Patient" in refused.error
        monkeypatch.setenv("CARTWATCH_TEST_FHIR_TOKEN", "s3cret-token")
        report = sync_once(engine, settings_for(engine), config)
    assert report.error is None and report.types["Observation"].written == 1


def test_a_server_error_names_the_url_and_status(engine, server, key_file) -> None:
    register(engine, "SYN-101")
    server.fail_next("/fhir/Observation", 500)
    report = sync_once(engine, settings_for(engine), smart(server, key_file))
    error = report.types["Observation"].error or ""
    assert "HTTP 500" in error and f"{server.base_url}/Observation?" in error
    assert mark(engine, f"{server.base_url}|Observation|SYN-101") is None


def test_a_next_link_to_another_host_is_not_followed() -> None:
    from core.capture.fhirsync.sync import _next_link

    page = {"link": [{"relation": "next", "url": "https://evil.example/fhir/Observation?p=2"}]}
    with pytest.raises(FhirError, match="leaves https://ehr.example/fhir"):
        _next_link(page, "https://ehr.example/fhir")
    page["link"][0]["url"] = "https://ehr.example/fhir?_getpages=abc"
    assert _next_link(page, "https://ehr.example/fhir") == "https://ehr.example/fhir?_getpages=abc"


# --- a refused page ------------------------------------------------------------------------

def test_a_refused_page_is_kept_raw_and_the_watermark_stays(engine, server, key_file,
                                                            caplog) -> None:
    register(engine, "SYN-101")
    server.add(ferritin("f1", "s1", 850, T1), T1)
    server.add(ferritin("f2", "s1", 900, T1 + timedelta(hours=1)), T1 + timedelta(hours=1))
    bad = ferritin("bad", "s1", 1, T1 + timedelta(hours=2))
    del bad["valueQuantity"]  # a monitored analyte without a value: the page is refused
    server.add(bad, T1 + timedelta(hours=2))
    config = smart(server, key_file)  # 2 per page: f1 f2 | bad
    report = sync_once(engine, settings_for(engine), config)
    assert report.error and "refused" in report.error and "valueQuantity" in report.error
    assert any(r.levelname == "ERROR" and "refused" in r.getMessage() for r in caplog.records)
    with session_scope(engine) as s:
        kept = {m.control_id: m for m in s.scalars(select(InboundMessage))}
        labs = sorted(s.scalars(select(LabResult.source_record_id)))
    refused = [m for m in kept.values() if m.status == "refused"]
    assert len(refused) == 1 and '"id": "bad"' in refused[0].raw
    assert "valueQuantity" in (refused[0].reason or "")
    assert labs == ["f1", "f2"]  # the page before it committed
    # page 1 had more to come: the watermark stops below its newest resource, never past
    # the refused page; the next pass asks again from there
    assert mark(engine, f"{server.base_url}|Observation|SYN-101") == T1
    again = sync_once(engine, settings_for(engine), config)
    assert again.error and searches(server, "Observation")[-1]["_lastUpdated"].startswith("gt")
    fixed = ferritin("bad", "s1", 1500, T1 + timedelta(hours=2))
    server.add(fixed, T1 + timedelta(hours=6))
    healed = sync_once(engine, settings_for(engine), config)
    assert healed.error is None, healed.error
    assert mark(engine, f"{server.base_url}|Observation|SYN-101") == T1 + timedelta(hours=6)
    with session_scope(engine) as s:
        assert sorted(s.scalars(select(LabResult.source_record_id))) == ["bad", "f1", "f2"]


# --- monitor and CLI -----------------------------------------------------------------------

def _site(tmp_path: Path, server: FhirStandIn) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(f'[fhir]\nbase_url = "{server.base_url}"\n'
                    f'patient_identifier_system = "{STUDY_SYSTEM}"\n'
                    f'resource_types = ["Observation"]\n', encoding="utf-8")
    return path


def test_the_monitor_runs_a_pass_per_cycle_and_shows_its_error(engine, tmp_path) -> None:
    from core.monitoring.monitor import run_cycle

    register(engine, "SYN-101")
    with FhirStandIn() as srv:  # auth none
        srv.add(fhir_patient("s1", "SYN-101"), DAY0)
        srv.add(ferritin("f1", "s1", 850, T1), T1)
        settings = Settings.from_env(database_url=str(engine.url),
                                     site_config=_site(tmp_path, srv))
        cycle = run_cycle(engine, settings)
        assert cycle.error is None, cycle.error
        with session_scope(engine) as s:
            assert list(s.scalars(select(LabResult.source_record_id))) == ["f1"]
        srv.fail_next("/fhir/Observation", 500)
        cycle = run_cycle(engine, settings)
    assert cycle.error and "fhir-sync" in cycle.error and "HTTP 500" in cycle.error


def test_the_cli_runs_one_pass_and_prints_a_summary(engine, tmp_path, monkeypatch,
                                                    capsys) -> None:
    from core.cli import main

    register(engine, "SYN-101")
    with FhirStandIn() as srv:
        srv.add(fhir_patient("s1", "SYN-101"), DAY0)
        srv.add(ferritin("f1", "s1", 850, T1), T1)
        monkeypatch.setenv("CARTWATCH_SITE_CONFIG", str(_site(tmp_path, srv)))
        assert main(["fhir-sync", "--once", "--db", str(engine.url)]) == 0
    out = capsys.readouterr().out
    assert "patients=1 on_server=1" in out
    assert "Observation: pages=1 resources=1 written=1 already_present=0 skipped=0" in out
    monkeypatch.delenv("CARTWATCH_SITE_CONFIG")
    assert main(["fhir-sync", "--once", "--db", str(engine.url)]) == 1
    assert "no FHIR server configured" in capsys.readouterr().err

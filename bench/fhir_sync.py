"""Benchmark (issue 14): a full first fhir-sync of 60 patients x 30 days of labs and vitals.

    .venv/bin/python bench/fhir_sync.py [--patients 60] [--days 30] [--page-size 1000]

A FHIR R4 server stand-in on 127.0.0.1 (FhirStandIn below, also used by
tests/core/test_fhir_sync.py) serves, per patient and day, 6 lab Observations (ferritin,
CRP, fibrinogen, platelets, ALT, LDH) and 3 vital-sign Observations (temperature, heart
rate, SpO2): 16,200 resources, paged with `next` links (the [fhir] page_size default, 1000
per Bundle; `--page-size 100` shows the cost of small pages), behind a SMART Backend
Services token endpoint that checks the client's private-key JWT. The patients are
registered first with a patients CSV; then one `sync_once` pass on a fresh SQLite file is
timed: every page is imported in its own transaction, with the evaluation of the patients
it touched. Target <= 30 s. Prints one JSON line. The data are synthetic, not clinical.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TARGET_S = 30.0
LOINC = "http://loinc.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
STUDY_SYSTEM = "urn:cartwatch:study-id"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# (LOINC, UCUM unit, typical value, category) of the synthetic series
LABS = (("2276-4", "ug/L", 900.0), ("1988-5", "mg/L", 40.0), ("3255-7", "g/L", 2.5),
        ("777-3", "10*9/L", 120.0), ("1742-6", "U/L", 30.0), ("2532-0", "U/L", 250.0))
VITALS = (("8310-5", "Cel", 37.2), ("8867-4", "/min", 85.0), ("59408-5", "%", 97.0))


def _instant(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _split(value: str) -> list[str]:
    """A search value split on its unescaped commas, escapes removed."""
    parts = re.split(r"(?<!\\),", value)
    return [re.sub(r"\\(.)", r"\1", p) for p in parts if p]


# --- resources ----------------------------------------------------------------------------

def fhir_patient(server_id: str, study_id: str, mrn: str | None = None) -> dict[str, Any]:
    idents = [{"system": "urn:hospital:mrn", "value": mrn or f"MRN{server_id}"},
              {"system": STUDY_SYSTEM, "value": study_id}]
    return {"resourceType": "Patient", "id": server_id, "identifier": idents}


def observation(rid: str, server_pid: str, loinc: str, value: float, unit: str,
                when: datetime, *, category: str = "laboratory") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": rid, "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": category}]}],
            "code": {"coding": [{"system": LOINC, "code": loinc}]},
            "subject": {"reference": f"Patient/{server_pid}"},
            "effectiveDateTime": _instant(when),
            "valueQuantity": {"value": value, "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit}}


def administration(rid: str, server_pid: str, drug: str, when: datetime, dose: float,
                   unit: str) -> dict[str, Any]:
    return {"resourceType": "MedicationAdministration", "id": rid, "status": "completed",
            "medicationCodeableConcept": {"text": drug.capitalize(),
                                          "coding": [{"system": "http://www.nlm.nih.gov/"
                                                      "research/umls/rxnorm",
                                                      "code": "612865", "display": drug}]},
            "subject": {"reference": f"Patient/{server_pid}"},
            "effectiveDateTime": _instant(when),
            "dosage": {"dose": {"value": dose, "unit": unit}, "route": {"text": "IV"}}}


# --- the stand-in server ------------------------------------------------------------------

class FhirStandIn:
    """A FHIR R4 server on 127.0.0.1 (pytest-httpserver, threaded) holding resources in a list.

    - `GET /fhir/Patient?identifier=<system>|<value>,...`;
    - `GET /fhir/<type>?patient=..&category=..&_lastUpdated=gt..&_sort=_lastUpdated&_count=N`
      (paged with `_offset` in the `next` link);
    - `GET /fhir/.well-known/smart-configuration` and `POST /token`: a client-credentials
      token for a client assertion signed by `public_key` (signature, iss, sub, aud, exp at
      most 5 minutes ahead, a jti never seen before, the kid); with `static_token` the FHIR
      endpoints take that bearer token instead; with neither they take anything.
    - `fail_next(path, status, headers)` scripts a failure for the next request to a path;
      `expire_tokens()` makes every token issued so far answer 401.
    `searches` records (path, params) of every FHIR GET; `waits` the time between a scripted
    failure and the next request to that path.
    """

    def __init__(self, *, public_key: Any = None, client_id: str = "cartwatch",
                 kid: str = "test-key", static_token: str | None = None,
                 token_lifetime: int = 300) -> None:
        from pytest_httpserver import HTTPServer

        self.public_key, self.client_id, self.kid = public_key, client_id, kid
        self.static_token, self.token_lifetime = static_token, token_lifetime
        self._by_id: dict[tuple[str, str], dict[str, Any]] = {}
        self.searches: list[tuple[str, dict[str, str]]] = []
        self.assertions: list[dict[str, Any]] = []  # verified client-assertion claims
        self.tokens: set[str] = set()
        self.waits: list[float] = []
        self._failures: list[tuple[str, int, dict[str, str]]] = []
        self._failed_at: dict[str, float] = {}
        self._jtis: set[str] = set()
        self._pages: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
        self.server.expect_request(re.compile(".*")).respond_with_handler(self._handle)

    def __enter__(self) -> FhirStandIn:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.clear()
        if self.server.is_running():
            self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url_for("/fhir")

    @property
    def token_url(self) -> str:
        return self.server.url_for("/token")

    def add(self, resource: dict[str, Any], last_updated: datetime) -> dict[str, Any]:
        with self._lock:
            resource = {**resource, "meta": {"lastUpdated": _instant(last_updated),
                                             "versionId": "1"}}
            self._by_id[(resource["resourceType"], resource["id"])] = resource  # replaces
            self._pages.clear()
        return resource

    @property
    def resources(self) -> list[dict[str, Any]]:
        return list(self._by_id.values())

    def fail_next(self, path: str, status: int, headers: dict[str, str] | None = None) -> None:
        self._failures.append((path, status, headers or {}))

    def expire_tokens(self) -> None:
        self.tokens.clear()

    # --- handling ------------------------------------------------------------------------

    def _handle(self, request: Any) -> Any:
        from werkzeug import Response

        path = request.path
        now = time.monotonic()
        if path in self._failed_at:
            self.waits.append(now - self._failed_at.pop(path))
        for i, (fpath, status, headers) in enumerate(self._failures):
            if fpath == path:
                del self._failures[i]
                self._failed_at[path] = now
                return self._json({"resourceType": "OperationOutcome", "issue": [{
                    "severity": "error", "code": "throttled",
                    "diagnostics": f"scripted {status}"}]}, status, headers)
        if path == "/token" and request.method == "POST":
            return self._token(request.form)
        if path == "/fhir/.well-known/smart-configuration":
            return self._json({"token_endpoint": self.token_url,
                               "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                               "token_endpoint_auth_signing_alg_values_supported":
                                   ["RS384", "ES384"]})
        if not self._authorised(request.headers.get("Authorization", "")):
            return self._json({"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "login", "diagnostics": "token expired"}]}, 401)
        params = {k: request.args.get(k) for k in request.args}
        self.searches.append((path, params))
        rtype = path.removeprefix("/fhir/")
        if rtype not in ("Patient", "Observation", "MedicationAdministration"):
            return Response("not found", status=404)
        return self._json(self._search(rtype, params))

    def _authorised(self, header: str) -> bool:
        token = header.removeprefix("Bearer ").strip()
        if self.static_token is not None:
            return token == self.static_token
        if self.public_key is not None:
            return token in self.tokens
        return True

    def _token(self, form: Any) -> Any:
        from joserfc import jwt
        from joserfc.errors import JoseError

        def refuse(why: str) -> Any:
            return self._json({"error": "invalid_client", "error_description": why}, 401)

        if form.get("grant_type") != "client_credentials":
            return refuse("grant_type must be client_credentials")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return refuse("client_assertion_type must be jwt-bearer")
        try:
            tok = jwt.decode(form.get("client_assertion", ""), self.public_key,
                             algorithms=["RS384", "ES384"])
        except (JoseError, ValueError) as exc:
            return refuse(f"bad client assertion: {exc}")
        claims, now = tok.claims, time.time()
        problems = [
            name for name, ok in (
                ("iss", claims.get("iss") == self.client_id),
                ("sub", claims.get("sub") == self.client_id),
                ("aud", claims.get("aud") == self.token_url),
                ("exp", now < claims.get("exp", 0) <= now + 300 + 5),
                ("jti", bool(claims.get("jti")) and claims.get("jti") not in self._jtis),
                ("kid", tok.header.get("kid") == self.kid))
            if not ok]
        if problems:
            return refuse(f"client assertion claims wrong: {problems}")
        self._jtis.add(claims["jti"])
        self.assertions.append({**claims, "alg": tok.header.get("alg"),
                                "scope": form.get("scope")})
        token = uuid.uuid4().hex
        self.tokens.add(token)
        return self._json({"access_token": token, "token_type": "bearer",
                           "expires_in": self.token_lifetime, "scope": form.get("scope")})

    def _search(self, rtype: str, params: dict[str, str]) -> dict[str, Any]:
        query = (rtype, tuple(sorted((k, v) for k, v in params.items() if k != "_offset")))
        with self._lock:
            found = self._pages.get(query)  # a search's pages are served from one snapshot
            if found is None:
                found = self._pages[query] = self._match(rtype, params)
        count = int(params.get("_count", 50))
        offset = int(params.get("_offset", 0))
        page = found[offset:offset + count]
        links = [{"relation": "self", "url": f"{self.base_url}/{rtype}?{urlencode(params)}"}]
        if offset + count < len(found):
            nxt = {**params, "_offset": str(offset + count)}
            links.append({"relation": "next",
                          "url": f"{self.base_url}/{rtype}?{urlencode(nxt)}"})
        return {"resourceType": "Bundle", "id": uuid.uuid4().hex, "type": "searchset",
                "total": len(found), "link": links,
                "entry": [{"fullUrl": f"{self.base_url}/{rtype}/{r['id']}", "resource": r,
                           "search": {"mode": "match"}} for r in page]}

    def _match(self, rtype: str, params: dict[str, str]) -> list[dict[str, Any]]:
        found = [r for r in self.resources if r["resourceType"] == rtype]
        if rtype == "Patient":
            wanted = {tuple(v.split("|", 1)) if "|" in v else ("", v)
                      for v in _split(params.get("identifier", ""))}
            found = [r for r in found if any(
                (i["system"], i["value"]) in wanted or ("", i["value"]) in wanted
                for i in r["identifier"])]
        if "patient" in params:
            ids = {p.removeprefix("Patient/") for p in _split(params["patient"])}
            found = [r for r in found if r["subject"]["reference"].removeprefix("Patient/")
                     in ids]
        if "category" in params:
            cats = set(_split(params["category"]))
            found = [r for r in found if any(c["code"] in cats for cat in r.get("category", [])
                                             for c in cat["coding"])]
        since = params.get("_lastUpdated", "")
        if since.startswith("gt"):
            after = _parse(since[2:])
            found = [r for r in found if _parse(r["meta"]["lastUpdated"]) > after]
        if params.get("_sort") == "_lastUpdated":
            found.sort(key=lambda r: (_parse(r["meta"]["lastUpdated"]), r["id"]))
        return found

    @staticmethod
    def _json(doc: dict[str, Any], status: int = 200,
              headers: dict[str, str] | None = None) -> Any:
        from werkzeug import Response

        return Response(json.dumps(doc), status=status, headers=headers or {},
                        content_type="application/fhir+json")


# --- the benchmark ------------------------------------------------------------------------

def patients_csv(study_ids: list[str], infusion: date) -> bytes:
    rows = ["patient_id,infusion_date,product"] + [f"{p},{infusion},axi-cel"
                                                    for p in study_ids]
    return ("\n".join(rows) + "\n").encode()


def fill(server: FhirStandIn, patients: int, days: int, start: datetime) -> int:
    """Patients P001.. with `days` days of 6 labs and 3 vitals each; returns the count."""
    n = 0
    for i in range(patients):
        sid = f"s{i + 1}"
        server.add(fhir_patient(sid, f"BENCH-{i + 1:03d}"), start)
        for day in range(days):
            at = start + timedelta(days=day, hours=8)
            for j, (loinc, unit, typical) in enumerate(LABS):
                server.add(observation(f"l-{i}-{day}-{j}", sid, loinc,
                                       round(typical * (1 + 0.01 * ((i + day) % 7)), 2), unit,
                                       at), at + timedelta(minutes=30 + j))
                n += 1
            for j, (loinc, unit, typical) in enumerate(VITALS):
                server.add(observation(f"v-{i}-{day}-{j}", sid, loinc, typical, unit,
                                       at + timedelta(hours=j), category="vital-signs"),
                           at + timedelta(hours=j, minutes=5))
                n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from joserfc.jwk import RSAKey

    from core.capture.fhirsync import FhirConfig, sync_once
    from core.capture.importing import import_file
    from core.config import Settings
    from core.store.db import init_db, make_engine

    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--page-size", type=int, default=1000)
    args = ap.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - timedelta(days=args.days)
    with tempfile.TemporaryDirectory() as tmp, FhirStandIn(
            public_key=RSAKey.import_key(pem), kid="bench") as server:
        key_file = Path(tmp) / "key.pem"
        key_file.write_bytes(pem)
        expected = fill(server, args.patients, args.days, start)
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        init_db(engine)
        ids = [f"BENCH-{i + 1:03d}" for i in range(args.patients)]
        reg = import_file(engine, patients_csv(ids, start.date()), "patients.csv",
                          kind="patients", user="bench")
        if not reg.ok:
            print(json.dumps({"error": [str(e) for e in reg.errors[:5]]}))
            return 1
        config = FhirConfig(base_url=server.base_url, auth="smart", client_id="cartwatch",
                            private_key_file=key_file, key_id="bench",
                            patient_identifier_system=STUDY_SYSTEM,
                            page_size=args.page_size,
                            resource_types=("Observation", "MedicationAdministration"))
        started, cpu = time.perf_counter(), time.process_time()
        report = sync_once(engine, Settings.from_env(database_url=str(engine.url)), config)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        obs = report.types["Observation"]
        for line in report.lines():
            print(line, file=sys.stderr)
        engine.dispose()
    doc = {"patients": args.patients, "days": args.days, "resources": obs.resources,
           "expected_resources": expected, "pages": obs.pages, "written": obs.written,
           "page_size": args.page_size, "seconds": round(seconds, 2),
           "cpu_seconds": round(cpu, 2),  # this process: client, import, evaluation, stand-in
           "load_average_1m": round(os.getloadavg()[0], 2),
           "resources_per_second": round(obs.resources / seconds, 1) if seconds else None,
           "target_seconds": TARGET_S, "error": report.error}
    doc["ok"] = (report.error is None and obs.resources == expected
                 and obs.written == expected and seconds <= TARGET_S)
    if doc["error"] is None:
        del doc["error"]
    print(json.dumps(doc))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

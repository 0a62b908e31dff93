"""One fhir-sync pass: new Observations (laboratory, vital-signs) and MedicationAdministrations
of the patients CAR-T Watch monitors, since the last watermark.

1. Scope: the active registered patients, looked up on the server by identifier
   (`Patient?identifier=<system>|<id>,...`, [fhir] patients_per_query at a time); a patient
   the server does not know is logged and left out.
2. Per resource type, patients are batched by watermark and searched with
   `patient=<ids>&_lastUpdated=gt<watermark>&_sort=_lastUpdated&_count=<page_size>`
   (Observation also `category=laboratory,vital-signs`), following the Bundle's `next` links.
3. Each page is kept raw as an InboundMessage (channel "fhir", control_id
   "<type>|<window>|<batch>|<page n>") and goes through core.capture.fhir.import_fhir in its own
   transaction, with every subject carrying the patient's CAR-T Watch ID. After the page
   committed, its patients' watermarks advance to the page's newest meta.lastUpdated (a page
   with more to come stops just below it, so a resource sharing that instant with the next
   page is fetched again, idempotently, rather than skipped if the run stops there).
4. A refused page (import errors) is kept with status "refused" and the report's messages,
   logged at ERROR, and that resource type stops without advancing: nothing is skipped
   silently, and the pass reports the error (the monitor shows it as the cycle's error).

Watermarks (SyncWatermark) are kept per patient, key "<base url>|<type>|<patient ID>", so a
patient registered after the first sync gets their whole history, not only what is newer
than everyone else's; "<base url>|<type>" holds the newest meta.lastUpdated taken in for
that type (what an operator reads).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine

from core.capture.fhirsync.config import OBSERVATION_CATEGORIES, FhirConfig
from core.capture.fhirsync.http import FhirClient, FhirError
from core.capture.fhirsync.state import (
    chunks,
    keep_page,
    patients_in_scope,
    sync_lock,
    watermark_key,
    watermarks,
)
from core.config import Settings
from core.store.models import MessageStatus

log = logging.getLogger(__name__)

SYNC_USER = "fhir-sync"


@dataclass
class TypeReport:
    """What one pass did for one resource type."""

    resource_type: str
    pages: int = 0
    resources: int = 0  # resources the server sent (search matches)
    written: int = 0  # new rows in CAR-T Watch
    already_present: int = 0
    skipped: int = 0  # not monitored by CAR-T Watch, or a subject outside the scope
    error: str | None = None

    def line(self) -> str:
        return (f"{self.resource_type}: pages={self.pages} resources={self.resources} "
                f"written={self.written} already_present={self.already_present} "
                f"skipped={self.skipped}" + (f" ERROR {self.error}" if self.error else ""))


@dataclass
class SyncReport:
    """What one pass did; `error` is set when any part failed."""

    base_url: str
    patients: int = 0  # active registered patients
    on_server: int = 0  # of those, found on the server
    types: dict[str, TypeReport] = field(default_factory=dict)
    retries: int = 0  # 429/503 waits
    skipped: str | None = None  # why no pass ran
    failure: str | None = None  # the pass could not start (token, patient lookup)
    seconds: float = 0.0

    @property
    def error(self) -> str | None:
        parts = ([self.failure] if self.failure else []) + [
            f"{t.resource_type}: {t.error}" for t in self.types.values() if t.error]
        return "; ".join(parts)[:2000] if parts else None

    def lines(self) -> list[str]:
        if self.skipped:
            return [f"fhir-sync skipped: {self.skipped}"]
        head = (f"fhir-sync {self.base_url}: patients={self.patients} "
                f"on_server={self.on_server} retries={self.retries} "
                f"seconds={self.seconds:.2f}")
        tail = [f"  {t.line()}" for t in self.types.values()]
        return [head, *tail] + ([f"  ERROR {self.failure}"] if self.failure else [])


def _instant(when: datetime) -> str:
    """A FHIR instant in UTC ("2026-11-20T08:00:00.123Z")."""
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _escape(value: str) -> str:
    """A search parameter value with FHIR's reserved characters escaped."""
    for ch in ("\\", ",", "|", "$"):
        value = value.replace(ch, "\\" + ch)
    return value


def _reference(ref: str) -> str:
    """"Patient/123" from a relative, absolute or versioned reference."""
    parts = [p for p in urlsplit(ref).path.split("/") if p]
    if "_history" in parts:
        parts = parts[:parts.index("_history")]
    return "/".join(parts[-2:])


def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The search matches of a Bundle page (included resources and outcomes left out)."""
    out = []
    for entry in doc.get("entry") or []:
        mode = ((entry or {}).get("search") or {}).get("mode", "match")
        resource = (entry or {}).get("resource")
        if mode != "match" or not isinstance(resource, dict):
            if resource and resource.get("resourceType") == "OperationOutcome":
                log.warning("fhir-sync: the server added an OperationOutcome: %s",
                            json.dumps(resource)[:500])
            continue
        out.append(resource)
    return out


def _next_link(doc: dict[str, Any], base_url: str) -> str | None:
    url = next((str(link.get("url")) for link in doc.get("link") or []
                if isinstance(link, dict) and link.get("relation") == "next"
                and link.get("url")), None)
    if url is None:
        return None
    if urlsplit(url).netloc != urlsplit(base_url).netloc:
        raise FhirError(f"the server's next link {url} leaves {base_url}; not followed (the "
                        f"access token must not go elsewhere)")
    return url


# --- the pass -----------------------------------------------------------------------------

def resolve_patients(client: FhirClient, config: FhirConfig,
                     pids: list[str]) -> dict[str, str]:
    """"Patient/<server id>" -> CAR-T Watch ID, for the patients the server knows."""
    system = config.patient_identifier_system
    found: dict[str, str] = {}
    for chunk in chunks(pids, config.patients_per_query):
        wanted = set(chunk)
        values = [f"{_escape(system)}|{_escape(p)}" if system else _escape(p) for p in chunk]
        url: str | None = f"{config.base_url}/Patient"
        params: dict[str, str] | None = {"identifier": ",".join(values),
                                         "_count": str(config.page_size)}
        while url:
            doc = client.get(url, params).json()
            params = None
            for res in _entries(doc):
                if res.get("resourceType") != "Patient" or not res.get("id"):
                    continue
                for ident in res.get("identifier") or []:
                    value = str((ident or {}).get("value") or "")
                    if value in wanted and (system is None or ident.get("system") == system):
                        ref = f"Patient/{res['id']}"
                        if value in found.values() and ref not in found:
                            log.warning("fhir-sync: patient %s has more than one Patient on "
                                        "the server; reading all of them", value)
                        found[ref] = value
            url = _next_link(doc, config.base_url)
    missing = sorted(set(pids) - set(found.values()))
    if missing:
        log.info("fhir-sync: %d patient(s) not found on %s: %s", len(missing),
                 config.base_url, ", ".join(missing[:20]) + (" ..." if len(missing) > 20
                                                             else ""))
    return found


def _batches(marks: dict[str, datetime | None], size: int) -> list[tuple[list[str],
                                                                           datetime | None]]:
    """Patients batched for one search: never-synced ones together (their whole history),
    the rest by watermark, each batch searched from its oldest watermark (the import takes
    what a newer patient already has as already present)."""
    fresh = sorted(p for p, w in marks.items() if w is None)
    dated = {p: w for p, w in marks.items() if w is not None}
    known = sorted(dated, key=lambda p: (dated[p], p))
    out: list[tuple[list[str], datetime | None]] = [(c, None) for c in chunks(fresh, size)]
    for chunk in chunks(known, size):
        out.append((chunk, min(dated[p] for p in chunk)))
    return out


def _older(mark: datetime | None, new: datetime) -> bool:
    """Whether a watermark (None: never synced) is before `new`."""
    return mark is None or mark < new


def _for_import(resources: list[dict[str, Any]], refs: dict[str, str], system: str | None,
                base: str, rtype: str) -> tuple[list[dict[str, Any]], int]:
    """The page's resources with each subject naming the CAR-T Watch ID; those whose subject
    is outside the scope are counted and left out (logged)."""
    out, outside = [], 0
    for res in resources:
        subject: dict[str, Any] = (res["subject"] if isinstance(res.get("subject"), dict)
                                   else {})
        pid = refs.get(_reference(str(subject.get("reference") or "")))
        if pid is None or res.get("resourceType") != rtype:
            outside += 1
            log.warning("fhir-sync: %s/%s is for %s, not a patient in scope; left out",
                        res.get("resourceType"), res.get("id"), subject.get("reference"))
            continue
        ident = {"value": pid, **({"system": system} if system else {})}
        out.append({**res, "subject": {**subject, "identifier": ident}})
    return out, outside


def _sync_type(engine: Engine, settings: Settings, config: FhirConfig, client: FhirClient,
               rtype: str, refs: dict[str, str], report: TypeReport) -> None:
    from core.capture.fhir import import_fhir

    base = config.base_url
    by_pid: dict[str, list[str]] = {}
    for ref, pid in refs.items():
        by_pid.setdefault(pid, []).append(ref.split("/", 1)[1])
    marks = watermarks(engine, base, rtype, sorted(by_pid))
    for pids, since in _batches(marks, config.patients_per_query):
        ids = sorted(i for p in pids for i in by_pid[p])
        batch = hashlib.sha256(",".join(ids).encode()).hexdigest()[:8]
        window = f"gt{_instant(since)}" if since else "all"
        first: dict[str, str] = {"patient": ",".join(_escape(i) for i in ids),
                                 "_sort": "_lastUpdated",
                                 "_count": str(config.page_size)}
        if rtype == "Observation":
            first["category"] = ",".join(OBSERVATION_CATEGORIES)
        if since is not None:
            first["_lastUpdated"] = f"gt{_instant(since)}"
        params: dict[str, str] | None = first  # the next links carry their own
        url: str | None = f"{base}/{rtype}"
        page = 0
        while url:
            started = time.perf_counter()
            response = client.get(url, params)
            params = None
            doc = response.json()
            page += 1
            url = _next_link(doc, base)
            resources = _entries(doc)
            if not resources:
                log.info("fhir-sync %s batch %s page %d: no resources", rtype, batch, page)
                break
            stamps = sorted({s for s in (_parse_instant((r.get("meta") or {}).get(
                "lastUpdated")) for r in resources) if s is not None})
            if len(stamps) == 0:
                log.warning("fhir-sync %s page %d: no meta.lastUpdated on any resource; the "
                            "watermark cannot advance", rtype, page)
            to_import, outside = _for_import(resources, refs, config.patient_identifier_system,
                                             base, rtype)
            control_id = f"{rtype}|{window}|{batch}|{page}"
            report.pages += 1
            report.resources += len(resources)
            report.skipped += outside
            imported = None
            if to_import:
                data = json.dumps({"resourceType": "Bundle", "type": "collection",
                                   "entry": [{"fullUrl": f"{base}/{rtype}/{r.get('id')}",
                                              "resource": r} for r in to_import]}).encode()
                imported = import_fhir(engine, data, f"fhir-sync {control_id}"[:255],
                                       user=SYNC_USER, tz=settings.ward_tz)
            one = pids[0] if len(pids) == 1 else None
            if imported is not None and imported.errors:
                shown = "; ".join(str(e) for e in imported.errors[:10])
                more = len(imported.errors) - 10
                reason = (f"{len(imported.errors)} problem(s): {shown}"
                          + (f"; and {more} more" if more > 0 else ""))[:2000]
                keep_page(engine, control_id=control_id, base=base, raw=response.text,
                          status=MessageStatus.REFUSED, reason=reason, rows=0,
                          patient_id=one, marks={}, type_mark=None, resources=len(resources))
                report.error = (f"page {page} of {response.url} was refused and kept as "
                                f"InboundMessage {control_id!r}; the watermark stays. "
                                f"{reason}")[:2000]
                log.error("fhir-sync %s page %d refused (%s); %s stops here, the watermark "
                          "stays: %s", rtype, page, control_id, rtype, reason)
                return
            written = imported.rows_new if imported is not None else 0
            present = imported.rows_already_present if imported is not None else 0
            skipped = int(getattr(imported, "rows_skipped", 0) or 0)
            report.written += written
            report.already_present += present
            report.skipped += skipped
            mark = stamps[-1] if url is None else (stamps[-2] if len(stamps) > 1 else None)
            new_marks = ({} if mark is None else
                         {watermark_key(base, rtype, p): mark for p in pids
                          if _older(marks[p], mark)})
            keep_page(engine, control_id=control_id, base=base, raw=response.text,
                      status=MessageStatus.STORED, reason=None, rows=written, patient_id=one,
                      marks=new_marks,
                      type_mark=(watermark_key(base, rtype), stamps[-1]) if stamps else None,
                      resources=len(resources))
            log.info("fhir-sync %s batch %s page %d: %d resources, %d written, %d already "
                     "present, %d skipped, watermark %s, %.2f s", rtype, batch, page,
                     len(resources), written, present, skipped + outside,
                     _instant(mark) if mark else "unchanged", time.perf_counter() - started)


def sync_once(engine: Engine, settings: Settings, config: FhirConfig, *,
              client: FhirClient | None = None) -> SyncReport:
    """One pass over every configured resource type. HTTP and token failures are logged and
    recorded in the report (report.error); a pass never raises for them."""
    started = time.perf_counter()
    report = SyncReport(base_url=config.base_url)
    own = client is None
    client = client or FhirClient(config)
    try:
        with sync_lock(engine) as got:
            if not got:
                report.skipped = "another fhir-sync pass holds the lock"
                return report
            pids = patients_in_scope(engine)
            report.patients = len(pids)
            try:
                refs = resolve_patients(client, config, pids) if pids else {}
            except FhirError as exc:
                log.error("fhir-sync: the patient lookup failed: %s", exc)
                report.failure = f"patient lookup: {exc}"[:2000]
                return report
            report.on_server = len(set(refs.values()))
            for rtype in config.resource_types:
                tr = report.types[rtype] = TypeReport(rtype)
                if not refs:
                    continue
                try:
                    _sync_type(engine, settings, config, client, rtype, refs, tr)
                except FhirError as exc:
                    log.error("fhir-sync %s stopped: %s", rtype, exc)
                    tr.error = str(exc)[:2000]
    finally:
        report.retries = client.retries
        report.seconds = time.perf_counter() - started
        if own:
            client.close()
    log.info("fhir-sync pass done: %s", " | ".join(t.line() for t in report.types.values())
             or "nothing to do")
    return report

"""Reading a FHIR file (a Bundle, one resource, or ndjson) into positioned entries, and the
small accessors every mapper shares.

A position is what a nurse finds in the file: the Bundle entry number (1 = the first entry),
the ndjson line, or 1 for a lone resource. It is the `row` of every RowError.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.capture.importing import RowError

LOINC_SYSTEM = "http://loinc.org"


@dataclass(frozen=True)
class Entry:
    """One resource of the file and where it is."""

    row: int
    res: dict[str, Any]
    full_url: str = ""

    @property
    def rtype(self) -> str:
        return str(self.res.get("resourceType") or "")

    @property
    def rid(self) -> str:
        return str(self.res.get("id") or "")

    @property
    def status(self) -> str:
        return str(self.res.get("status") or "").strip().lower()

    @property
    def label(self) -> str:
        """`Observation/o1`: how the report and the audit name this resource."""
        return f"{self.rtype}/{self.rid or '(no id)'}"


def read_entries(data: bytes, errors: list[RowError]) -> list[Entry]:
    """The file's resources in order; unreadable parts become errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors.append(RowError(0, "", "", "The file is not UTF-8 text; save it as UTF-8 JSON."))
        return []
    if not text.strip():
        errors.append(RowError(0, "", "", "The file is empty: there is nothing to import."))
        return []
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines()
        if len([ln for ln in lines if ln.strip()]) <= 1:
            errors.append(RowError(0, "", "", f"The file is not valid JSON ({exc.msg} at line "
                                              f"{exc.lineno}, column {exc.colno})."))
            return []
        return _ndjson(lines, errors)
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        entries = doc.get("entry") or []
        if not isinstance(entries, list) or not entries:
            errors.append(RowError(0, "Bundle.entry", "", "The Bundle has no entries."))
            return []
        out = []
        for i, e in enumerate(entries):
            e = e if isinstance(e, dict) else {}
            res = e.get("resource")
            out.append(Entry(i + 1, res if isinstance(res, dict) else {},
                             str(e.get("fullUrl") or "")))
        return out
    if isinstance(doc, dict) and "resourceType" in doc:
        return [Entry(1, doc)]
    errors.append(RowError(0, "resourceType", "", "Expected a FHIR Bundle, a resource or "
                                                  "ndjson (one resource per line)."))
    return []


def _ndjson(lines: list[str], errors: list[RowError]) -> list[Entry]:
    out = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            res = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(RowError(n, "", line[:60], f"Line {n} is not valid JSON ({e.msg})."))
            continue
        out.append(Entry(n, res if isinstance(res, dict) else {}))
    return out


def latest_versions(entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """(kept, older): of several versions of one resource (type and id) in a file, such as
    a sync page with a history, the last one counts; the earlier ones are not imported."""
    last: dict[tuple[str, str], int] = {}
    for i, e in enumerate(entries):
        if e.rtype and e.rid:
            last[(e.rtype, e.rid)] = i
    kept, older = [], []
    for i, e in enumerate(entries):
        if e.rtype and e.rid and last[(e.rtype, e.rid)] != i:
            older.append(e)
        else:
            kept.append(e)
    return kept, older


def ext(res: dict[str, Any], *suffixes: str) -> Any:
    """The value of the first extension whose url ends in one of `suffixes`."""
    for item in res.get("extension") or []:
        if not isinstance(item, dict):
            continue
        url = str(item.get("url", ""))
        if any(url.endswith(s) for s in suffixes):
            for key in ("valueDate", "valueDateTime", "valueString", "valueCode"):
                if key in item:
                    return item[key]
    return None


def identifier(res: dict[str, Any]) -> str | None:
    for ident in res.get("identifier") or []:
        if isinstance(ident, dict) and ident.get("value"):
            return str(ident["value"])
    return None


def patient_refs(entries: Iterable[Entry]) -> dict[str, str]:
    """How the file refers to its Patients ("Patient/<id>", a fullUrl) -> study ID / MRN."""
    refs: dict[str, str] = {}
    for e in entries:
        if e.rtype != "Patient":
            continue
        pid = identifier(e.res)
        if not pid:
            continue
        if e.rid:
            refs[f"Patient/{e.rid}"] = pid
        if e.full_url:
            refs[e.full_url] = pid
    return refs


def subject_id(res: dict[str, Any], refs: dict[str, str]) -> tuple[str | None, str]:
    """(study ID or None, the reference as written) of a resource's subject Patient."""
    subject = res.get("subject") or {}
    if not isinstance(subject, dict):
        return None, str(subject)
    ident = subject.get("identifier")
    if isinstance(ident, dict) and ident.get("value"):
        return str(ident["value"]), ""
    ref = str(subject.get("reference") or "")
    if not ref:
        return None, ""
    pid = refs.get(ref) or (ref.split("/", 1)[1] if ref.startswith("Patient/") else None)
    return pid, ref


def codings(concept: Any) -> list[tuple[str | None, str | None]]:
    """(system, code) pairs of a CodeableConcept, in order."""
    if not isinstance(concept, dict):
        return []
    out: list[tuple[str | None, str | None]] = []
    for c in concept.get("coding") or []:
        if isinstance(c, dict) and c.get("code"):
            out.append((c.get("system"), str(c["code"])))
    return out


def texts(concept: Any) -> list[str]:
    """A CodeableConcept's text and its codings' displays (what a person reads)."""
    if not isinstance(concept, dict):
        return []
    out = [str(concept["text"])] if concept.get("text") else []
    out += [str(c["display"]) for c in concept.get("coding") or []
            if isinstance(c, dict) and c.get("display")]
    return out


def effective(res: dict[str, Any], rtype: str) -> tuple[str | None, str]:
    """(time as written, its FHIR path): effectiveDateTime, effectiveInstant or
    effectivePeriod.start."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if res.get(key):
            return str(res[key]), f"{rtype}.{key}"
    period = res.get("effectivePeriod")
    if isinstance(period, dict) and period.get("start"):
        return str(period["start"]), f"{rtype}.effectivePeriod.start"
    return None, f"{rtype}.effectiveDateTime"


def parse_time(text: str, tz: str) -> datetime | None:
    """An ISO date or date-time as UTC (a time without offset is ward time), else None."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(tz))
    return when.astimezone(UTC)


@dataclass
class Mapped:
    """One row of a CSV kind (labs, observations, treatments) made from a resource.

    `values` are the kind's CSV columns; `paths` name the FHIR path of each column for
    errors; `source_id` is stored as source_record_id. `by_key`: a row derived from several
    resources (the vasopressor count) is matched by its natural key instead of an id."""

    kind: str
    entry: Entry
    values: dict[str, str]
    paths: dict[str, str]
    source_id: str | None
    preliminary: bool = False
    by_key: bool = False

    @property
    def row(self) -> int:
        return self.entry.row


def subject_or_error(entry: Entry, refs: dict[str, str], errors: list[RowError]) -> str | None:
    """The subject's study ID, or None with an error naming the path."""
    pid, ref = subject_id(entry.res, refs)
    if not pid:
        errors.append(RowError(entry.row, f"{entry.rtype}.subject", ref,
                               f"The {entry.rtype} has no subject Patient reference."))
    return pid


def time_or_error(entry: Entry, errors: list[RowError], what: str) -> tuple[str | None, str]:
    """(effective time as written, its path), or None with an error naming the path."""
    when, path = effective(entry.res, entry.rtype)
    if not when:
        errors.append(RowError(entry.row, path, "", f"The {entry.rtype} has no "
                               f"effectiveDateTime or effectivePeriod.start ({what})."))
    return when, path

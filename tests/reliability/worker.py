"""Worker processes for the reliability tests: `python -m tests.reliability.worker MODE ...`.

Each mode prints one JSON line on stdout when it finishes; any exception escapes (non-zero
exit, traceback on stderr) so the test sees it, "database is locked" included.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BASE = datetime(2026, 1, 1, 0, 0)  # naive = ward time (UTC in these tests)
ANALYTES = (("crp", "mg/L", 5.0), ("ferritin", "ng/mL", 300.0), ("ldh", "U/L", 250.0),
            ("fibrinogen", "mg/dL", 300.0))


def lab_file(patient: str, start: int, rows: int) -> bytes:
    """`rows` lab rows for one patient, one per minute from minute `start` after BASE."""
    out = ["patient_id,collected_at,analyte,value,unit"]
    for i in range(start, start + rows):
        code, unit, value = ANALYTES[i % len(ANALYTES)]
        when = (BASE + timedelta(minutes=i)).isoformat()
        out.append(f"{patient},{when},{code},{value + (i % 7)},{unit}")
    return ("\n".join(out) + "\n").encode()


def _engine(url: str):  # type: ignore[no-untyped-def]
    from core.store.db import make_engine

    return make_engine(url)


def writer(url: str, patient: str, files: int, rows: int, mode: str,
           stop: str | None = None) -> dict:
    """Import `files` small files (or enter them through core.capture.entry when mode == 'entry');
    with `stop`, end early once that file exists."""
    from core.capture.entry import enter_day
    from core.capture.importing import import_file

    engine = _engine(url)
    t0 = time.perf_counter()
    written = 0
    for f in range(files):
        if stop and os.path.exists(stop):
            break
        start = f * rows
        if mode == "entry":
            when = BASE + timedelta(minutes=start)
            labs = [(ANALYTES[i][0], str(ANALYTES[i][2] + f % 7), ANALYTES[i][1])
                    for i in range(rows)]
            res = enter_day(engine, patient, when, labs=labs, user=f"w-{patient}", now=NOW)
            if not res.ok:
                raise SystemExit(f"entry refused: {[str(e) for e in res.errors]}")
            written += sum(res.added.values())
        else:
            rep = import_file(engine, lab_file(patient, start, rows), f"{patient}-{f}.csv",
                              user=f"w-{patient}", now=NOW)
            if not rep.ok:
                raise SystemExit(f"import refused: {rep.summary()} {rep.errors[:3]}")
            written += rep.rows_new
    engine.dispose()
    return {"written": written, "seconds": round(time.perf_counter() - t0, 2)}


def importer(url: str, patient: str, rows: int, ready: str | None = None,
             hold: float = 0.0) -> dict:
    """One large import; with `ready`, touch that file once the first chunk is written
    (inside the open transaction) and hold there for `hold` seconds."""
    from core.capture.importing import import_file

    engine = _engine(url)
    signalled = False

    def progress(fraction: float, message: str) -> None:
        nonlocal signalled
        if ready and not signalled and message.startswith("writing rows"):
            signalled = True
            # written aside and renamed: the test, polling for the file, never reads it empty
            Path(f"{ready}.part").write_text(message)
            Path(f"{ready}.part").replace(ready)
            time.sleep(hold)

    rep = import_file(engine, lab_file(patient, 0, rows), f"{patient}-big.csv", user="importer",
                      now=NOW, progress=progress)
    if not rep.ok:
        raise SystemExit(f"import refused: {rep.summary()} {rep.errors[:3]}")
    engine.dispose()
    return {"written": rep.rows_new, "seconds": round(rep.seconds, 2)}


def reader(url: str, stop: str) -> dict:
    """Loop over the ward summary and every course until the stop file appears."""
    from core.store.db import session_scope
    from core.store.loading import load_courses
    from core.views.ward import ward_summary

    engine = _engine(url)
    loops = 0
    while not os.path.exists(stop) or loops == 0:
        with session_scope(engine) as s:
            ward_summary(s, "UTC", now=NOW)
        with session_scope(engine) as s:
            load_courses(s, "UTC", active_only=False, as_of=NOW)
        loops += 1
        time.sleep(0.05)  # a page render now and then, not a busy loop on the write lock
    engine.dispose()
    return {"loops": loops}


def import_once(url: str, path: str) -> dict:
    """Import one file and return the report (used as another OS user for read-only files)."""
    from core.capture.importing import import_file

    engine = _engine(url)
    rep = import_file(engine, Path(path).read_bytes(), Path(path).name, user="ro", now=NOW)
    return {"ok": rep.ok, "written": rep.written, "summary": rep.summary(),
            "errors": [str(e) for e in rep.errors]}


# ---------------------------------------------------------------------------- every write path

FHIR_LAB = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
    "resourceType": "Observation", "id": "fault-obs-1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "2276-4"}]},
    "subject": {"identifier": {"value": "F1"}}, "effectiveDateTime": "2025-12-06T06:00:00Z",
    "valueQuantity": {"value": 1200, "unit": "ng/mL"}}}]}


def seed_for_writes(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Patient F1 with two hand-entered labs (by nurse-a) and one firing alert: something for
    every write path to change. Returns the ids the write paths need."""
    from sqlmodel import select

    from core.capture.entry import enter_day
    from core.capture.importing import import_file
    from core.store.db import session_scope
    from core.store.models import Alert, AlertState, Patient

    rep = import_file(engine, b"patient_id,infusion_date,product\nF1,2025-12-01,axi-cel\n",
                      "patients.csv", now=NOW)
    assert rep.ok, rep.errors
    res = enter_day(engine, "F1", datetime(2025, 12, 3, 6, 0), user="nurse-a", now=NOW,
                    labs=[("ferritin", "900", "ng/mL"), ("crp", "20", "mg/L")])
    assert res.ok and res.written, res.errors
    with session_scope(engine) as s:
        pk = s.exec(select(Patient.id).where(Patient.patient_id == "F1")).one()
        alert = Alert(patient_pk=pk, rule_id="iec_hs", episode_key="current",
                      severity="warning", title="IEC-HS screen", message="m",
                      state=AlertState.FIRING, first_fired_at=NOW, fire_count=1)
        s.add(alert)
        s.flush()
        alert_id = int(alert.id)  # type: ignore[arg-type]
    lab, lab2 = sorted(res.ids["labs"])
    return {"lab": lab, "lab2": lab2, "alert": alert_id}


def write_paths(ids: dict[str, int]) -> dict:  # type: ignore[type-arg]
    """name -> f(engine): every core write path, each a real change on the seeded database.
    The alert actions run in `write_session`, as a page owning the transaction would."""
    import pandas as pd

    from core.access.users import create_user
    from core.capture.corrections import correct, mark_entered_in_error, verify
    from core.capture.entry import enter_day, enter_grid, save_site_setting
    from core.monitoring.alert_actions import acknowledge, snooze
    from core.store.unit_of_work import write_session

    def ack(engine):  # type: ignore[no-untyped-def]
        with write_session(engine) as s:
            return acknowledge(s, ids["alert"], "dr-c", note="seen", now=NOW)

    def snz(engine):  # type: ignore[no-untyped-def]
        with write_session(engine) as s:
            return snooze(s, ids["alert"], "dr-c", "reviewed at the huddle",
                          until=NOW + timedelta(hours=4), now=NOW)

    grid = pd.DataFrame([{"date": "2025-12-05", "ferritin": "1000", "crp": "30"}])
    return {
        "enter_day": lambda e: enter_day(e, "F1", datetime(2025, 12, 4, 6, 0), user="nurse-b",
                                         labs=[("ldh", "300", "U/L")], now=NOW),
        "enter_grid": lambda e: enter_grid(e, "F1", grid, {}, user="nurse-b", now=NOW),
        "save_site_setting": lambda e: save_site_setting(e, "require_verification", True,
                                                         "admin"),
        "verify": lambda e: verify(e, [ids["lab"]], "nurse-b"),
        "correct": lambda e: correct(e, "labs", ids["lab"], {"value": "950"}, "typo",
                                     "nurse-b", now=NOW),
        "mark_entered_in_error": lambda e: mark_entered_in_error(e, "labs", ids["lab2"],
                                                                 "typo", "nurse-b"),
        "acknowledge": ack,
        "snooze": snz,
        "create_user": lambda e: create_user(e, "new-nurse", "nurse", "a long password"),
    }


def import_paths() -> dict:  # type: ignore[type-arg]
    """name -> f(engine) -> ImportReport: the imports report a storage fault, not raise it."""
    from core.capture.fhir import import_fhir
    from core.capture.importing import import_file

    return {
        "import_file": lambda e: import_file(e, lab_file("F1", 0, 20), "f1.csv", now=NOW),
        "import_fhir": lambda e: import_fhir(e, json.dumps(FHIR_LAB).encode(), "f1.json",
                                             now=NOW),
    }


def write_all(url: str, ids_json: str) -> dict:
    """Try every write path once; per path what happened (the exception's type and message,
    or the import report's errors)."""
    engine = _engine(url)
    out: dict[str, dict] = {}  # type: ignore[type-arg]
    for name, write in write_paths(json.loads(ids_json)).items():
        try:
            result = write(engine)
            out[name] = {"raised": None, "result": repr(result)[:300]}
        except Exception as exc:  # noqa: BLE001 - reported to the test, which judges it
            out[name] = {"raised": type(exc).__name__, "message": str(exc)[:500],
                         "cause": str(exc.__cause__ or "").splitlines()[:1]}
    for name, imp in import_paths().items():
        try:
            rep = imp(engine)
            out[name] = {"raised": None, "written": rep.written,
                         "errors": [str(e) for e in rep.errors]}
        except Exception as exc:  # noqa: BLE001
            out[name] = {"raised": type(exc).__name__, "message": str(exc)[:500]}
    engine.dispose()
    return out


def main(argv: list[str]) -> int:
    mode, args = argv[0], argv[1:]
    if mode in ("import", "entry"):
        out = writer(args[0], args[1], int(args[2]), int(args[3]), mode, *args[4:5])
    elif mode == "big":
        out = importer(args[0], args[1], int(args[2]), *(args[3:4]),
                       *(float(a) for a in args[4:5]))
    elif mode == "reader":
        out = reader(args[0], args[1])
    elif mode == "import-once":
        out = import_once(args[0], args[1])
    elif mode == "write-all":
        out = write_all(args[0], args[1])
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

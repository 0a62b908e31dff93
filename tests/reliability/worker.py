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
    from core.db import make_engine

    return make_engine(url)


def writer(url: str, patient: str, files: int, rows: int, mode: str,
           stop: str | None = None) -> dict:
    """Import `files` small files (or enter them through core.entry when mode == 'entry');
    with `stop`, end early once that file exists."""
    from core.entry import enter_day
    from core.importing import import_file

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
    from core.importing import import_file

    engine = _engine(url)
    signalled = False

    def progress(fraction: float, message: str) -> None:
        nonlocal signalled
        if ready and not signalled and message.startswith("writing rows"):
            signalled = True
            Path(ready).write_text(message)
            time.sleep(hold)

    rep = import_file(engine, lab_file(patient, 0, rows), f"{patient}-big.csv", user="importer",
                      now=NOW, progress=progress)
    if not rep.ok:
        raise SystemExit(f"import refused: {rep.summary()} {rep.errors[:3]}")
    engine.dispose()
    return {"written": rep.rows_new, "seconds": round(rep.seconds, 2)}


def reader(url: str, stop: str) -> dict:
    """Loop over the ward summary and every course until the stop file appears."""
    from core.db import session_scope
    from core.loading import load_courses
    from core.ward import ward_summary

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
    from core.importing import import_file

    engine = _engine(url)
    rep = import_file(engine, Path(path).read_bytes(), Path(path).name, user="ro", now=NOW)
    return {"ok": rep.ok, "written": rep.written, "summary": rep.summary(),
            "errors": [str(e) for e in rep.errors]}


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
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

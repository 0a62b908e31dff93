"""Several real processes writing, importing and reading at once, on SQLite and PostgreSQL:
no write is lost and nobody sees "database is locked"."""

from __future__ import annotations

import time

from sqlalchemy import func, select

from core.store.models import AuditLog, ImportBatch
from tests.reliability.conftest import finish, lab_count, spawn, url_of

FILES, ROWS = 6, 8  # per import writer: 6 files of 8 lab rows
DAYS = 6  # per entry writer: 6 days of a 4-lab panel
BIG = 2_000


def test_four_writers_an_importer_and_a_reader_lose_nothing(ward_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = url_of(ward_db)
    stop = tmp_path / "stop"
    reader = spawn("reader", url, str(stop))
    started = time.monotonic()
    procs = [spawn("import", url, "W1", str(FILES), str(ROWS)),
             spawn("import", url, "W2", str(FILES), str(ROWS)),
             spawn("entry", url, "W3", str(DAYS), "4"),
             spawn("entry", url, "W4", str(DAYS), "4"),
             spawn("big", url, "BIG", str(BIG))]
    results = [finish(p) for p in procs]
    stop.write_text("done")
    loops = finish(reader)["loops"]
    elapsed = time.monotonic() - started

    expected = 2 * FILES * ROWS + 2 * DAYS * 4 + BIG
    assert [r["written"] for r in results] == [FILES * ROWS] * 2 + [DAYS * 4] * 2 + [BIG]
    assert lab_count(ward_db) == expected
    with ward_db.connect() as c:
        batches = c.execute(select(func.count()).select_from(ImportBatch)
                            .where(ImportBatch.kind == "labs")).scalar_one()
        imports = c.execute(select(func.count()).select_from(AuditLog)
                            .where(AuditLog.action == "import",
                                   AuditLog.table_name == "labs")).scalar_one()
        entered = c.execute(select(func.count()).select_from(AuditLog)
                            .where(AuditLog.action == "insert")).scalar_one()
    assert batches == imports == 2 * FILES + 1
    assert entered == 2 * DAYS * 4  # every hand-entered row audited
    assert loops >= 1
    print(f"{ward_db.dialect.name}: {expected} rows by 5 writers, reader {loops} loops, "
          f"{elapsed:.1f} s; per writer {[r['seconds'] for r in results]}")

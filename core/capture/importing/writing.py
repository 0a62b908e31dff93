"""The import's write path: prepared, validated rows into their table, in the caller's
transaction (core.store.unit_of_work.write_session), bypassing the ORM's per-row work.

`write_rows` takes a prepared frame (CSV, FHIR, hand entry): column by column for large
files, value by value for a few rows (`insert_records`, which an HL7 message's results use
directly as plain dicts). Both write the same values (tests/core/test_small_writes.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import insert, update
from sqlmodel import Session, col

from core.capture.importing.validate.frame import is_missing
from core.store.db import table_of
from core.store.models import CLINICAL_TABLES, EventKind, MissingLab, Patient, PatientStatus
from core.store.unit_of_work import touch

# every table a file kind writes to (clinical tables plus explained gaps); typed loosely:
# the tables share columns (patient_pk, status, row_key, ...) but no declared base
TABLES: dict[str, type[Any]] = {**CLINICAL_TABLES, "missing": MissingLab}

Progress = Callable[[float, str], None]
_CHUNK = 5_000
# rows up to which a column is converted value by value: pandas' per-column machinery costs
# more than the values themselves for an HL7 message's five results or a hand entry
_SMALL = 64


def _key_hash(prefix: str, v: object) -> str:
    """A row key or content hash of one value (`_natural` / `_value_key`)."""
    return hashlib.sha256(f"{prefix}|{'' if is_missing(v) else v}".encode()).hexdigest()[:40]


def _hash(prefix: str, s: pd.Series) -> pd.Series:
    return pd.Series([_key_hash(prefix, v) for v in s.tolist()], index=s.index, dtype=object)


def _records(frame: pd.DataFrame) -> list[dict]:
    """Frame -> list of dicts with Python datetimes and None for missing values."""
    columns: list[list] = []
    for name in frame.columns:
        s = frame[name]
        if len(s) <= _SMALL:
            tz = isinstance(s.dtype, pd.DatetimeTZDtype)
            columns.append([None if is_missing(v) else v.to_pydatetime() if tz
                            else v.item() if isinstance(v, np.generic) else v
                            for v in s.tolist()])
            continue
        missing = s.isna().to_numpy()
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            values = list(s.dt.to_pydatetime())
        elif s.dtype == object:
            values = s.tolist()
        else:
            values = s.astype(object).tolist()
        values = [None if m else (v.item() if isinstance(v, np.generic) else v)
                  for v, m in zip(values, missing, strict=True)]
        columns.append(values)
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


# SQLAlchemy's SQLite DATETIME storage format (UTC, no offset), so rows written here read
# back exactly like rows written through SQLAlchemy (tests/core/test_importing.py checks it)
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _sqlite_value(v: object) -> object:
    """One value as an SQLite parameter (the conversions of `_sqlite_column`)."""
    if is_missing(v):
        return None
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime(_SQLITE_DATETIME)
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bool):
        return int(v)
    return v


def _sqlite_column(s: pd.Series) -> list:
    """One column as SQLite parameters: the conversions SQLAlchemy would make, vectorised."""
    if len(s) <= _SMALL:
        return [_sqlite_value(v) for v in s.tolist()]
    missing = s.isna().to_numpy()
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        values = s.dt.tz_convert("UTC").dt.strftime(_SQLITE_DATETIME).tolist()
    elif s.dtype == bool:
        values = s.astype(int).tolist()
    else:
        values = s.astype(object).tolist()
    out: list[object] = []
    for v, m in zip(values, missing, strict=True):
        if m:
            out.append(None)
        elif isinstance(v, datetime):
            out.append(v.astimezone(UTC).strftime(_SQLITE_DATETIME))
        elif isinstance(v, np.generic):
            out.append(v.item())
        elif isinstance(v, bool):
            out.append(int(v))
        else:
            out.append(v)
    return out


def _sqlite_insert(session: Session, table: str, frame: pd.DataFrame, columns: dict[str, str],
                   same: dict[str, Any]) -> None:
    """executemany on the session's own SQLite connection, inside its write transaction:
    table column <- frame column for each of `columns`, plus the values `same` on every row.

    SQLAlchemy's per-parameter processing costs more than SQLite's insert at 100,000 rows.
    """
    names = [*columns, *same]
    fixed = tuple(_sqlite_value(v) for v in same.values())
    rows = [(*row, *fixed) for row in zip(*(_sqlite_column(frame[c]) for c in columns.values()),
                                          strict=True)]
    sql = (f'INSERT INTO "{table}" ({", ".join(names)}) '
           f'VALUES ({", ".join("?" * len(names))})')
    raw = session.connection().connection.driver_connection
    assert raw is not None  # the session's connection is open
    raw.executemany(sql, rows)


# the prepared key columns -> the table's
_KEYS = {"row_key": "_row_key", "content_hash": "_content"}


def _same_on_every_row(batch_id: int | None, user: str, source: str,
                       now: datetime) -> dict[str, Any]:
    """What every written row gets besides its prepared columns (these win over a prepared
    column of the same name)."""
    return {"import_batch_id": batch_id, "source": source, "entered_by": user,
            "entered_at": now, "status": "final"}


def insert_records(session: Session, kind: str, records: list[dict[str, Any]], *,
                   batch_id: int | None, user: str, source: str,
                   now: datetime | None = None) -> None:
    """Insert a few prepared rows given as plain dicts (`_records` of a prepared frame, with
    `_row_key` and `_content`), the way `write_rows` inserts a frame's, without pandas: an
    HL7 message's results or a hand entry. Clinical kinds only (not patients); an events
    row's status change is `write_rows`' own."""
    if not records:
        return
    model = TABLES[kind]
    touch(session, {r["patient_pk"] for r in records})  # bulk rows bypass the ORM's flush
    same = _same_on_every_row(batch_id, user, source, now or datetime.now(UTC))
    columns = {c: c for c in records[0]
               if not c.startswith("_") and c not in same and c not in _KEYS} | _KEYS
    table = table_of(model)
    if session.get_bind().dialect.name == "sqlite":
        names = [*columns, *same]
        fixed = tuple(_sqlite_value(v) for v in same.values())
        rows = [(*(_sqlite_value(r[src]) for src in columns.values()), *fixed)
                for r in records]
        sql = (f'INSERT INTO "{table.name}" ({", ".join(names)}) '
               f'VALUES ({", ".join("?" * len(names))})')
        raw = session.connection().connection.driver_connection
        assert raw is not None  # the session's connection is open
        raw.executemany(sql, rows)
        return
    session.execute(table.insert(), [{**{c: r[src] for c, src in columns.items()}, **same}
                                     for r in records])


def write_rows(session: Session, kind: str, new: pd.DataFrame, *, batch_id: int | None,
               user: str, source: str, progress: Progress | None = None) -> None:
    """Insert prepared, validated rows (from `validate_rows`, `_present` rows removed)."""
    say = progress or (lambda _f, _m: None)
    cols = [c for c in new.columns if not c.startswith("_")]
    now = datetime.now(UTC)
    if kind == "patients":
        frame = new[cols].copy()
        frame["import_batch_id"] = batch_id
        frame["entered_by"] = user
        frame["entered_at"] = now
        frame["source"] = source
        session.execute(insert(Patient), _records(frame))
        return
    model = TABLES[kind]
    total = len(new)
    if 0 < total <= _SMALL:
        insert_records(session, kind, _records(new), batch_id=batch_id, user=user,
                       source=source, now=now)
        say(1.0, f"writing rows {total:,} of {total:,}")
        if kind == "events":
            _apply_event_status(session, new)
        return
    touch(session, new["patient_pk"].unique())  # bulk rows bypass the ORM's flush
    same = _same_on_every_row(batch_id, user, source, now)
    columns = {c: c for c in cols if c not in same and c not in _KEYS} | _KEYS
    sqlite = session.get_bind().dialect.name == "sqlite"
    for start in range(0, total, _CHUNK):
        part = new.iloc[start:start + _CHUNK] if total > _CHUNK else new
        if sqlite:
            _sqlite_insert(session, table_of(model).name, part, columns, same)
        else:
            # a Core executemany on the table: the ORM's per-row bookkeeping costs more
            # than the insert itself at 100,000 rows
            records = _records(part[list(columns.values())])
            session.execute(table_of(model).insert(), [
                {**{c: r[src] for c, src in columns.items()}, **same} for r in records])
        say(0.3 + 0.7 * min(1.0, (start + len(part)) / total),
            f"writing rows {start + len(part):,} of {total:,}")
    if kind == "events":
        _apply_event_status(session, new)


def _apply_event_status(session: Session, new: pd.DataFrame) -> None:
    """A death event marks the patient deceased; a last follow-up marks them discharged."""
    for kind, status in ((EventKind.LAST_FOLLOWUP, PatientStatus.DISCHARGED),
                         (EventKind.DEATH, PatientStatus.DECEASED)):
        pks = [int(p) for p in new.loc[new["kind"] == kind.value, "patient_pk"].unique()]
        if pks:
            session.execute(update(Patient).where(col(Patient.id).in_(pks)).values(
                status=status.value))

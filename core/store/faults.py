"""Database faults turned into sentences for the user (read-only file, full disk, lost server).

One mechanism for every write path: `storage_guard()` around the transaction (as a `with`
block or as a decorator, `@storage_guard()`). A fault of the storage raised inside it
(`sqlalchemy.exc.DBAPIError` or the raw `sqlite3.OperationalError` of the bulk insert) becomes
`StorageFault`, whose message is the user's sentence ("nothing was saved"); anything else (a
bug, a constraint, NotAllowed, a ValueError about the input) passes through unchanged. The
guard sits outside the transaction, so the transaction has rolled back (its audit rows with
it) before the fault reaches the caller. `core.store.unit_of_work.write_session(engine)` is the
transaction under the guard, for callers that own the transaction of a write (alert
acknowledge and snooze too): a fault at COMMIT is caught there as well.

The import keeps reporting instead of raising: it calls `write_failure` and puts the sentence
in its report.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

READ_ONLY = ("The database cannot be written (read-only or disk full); nothing was saved. "
             "Ask the administrator to check the database file's permissions and free space.")
UNREACHABLE = "The database could not be reached ({detail}); nothing was saved. Try again."

# SQLite's messages for a file it may not write, a folder where it cannot make its journal,
# and a full disk; PostgreSQL's SQLSTATEs for read-only transactions, a full disk, no rights
_SQLITE_WRITE = ("readonly database", "read-only", "unable to open database file",
                 "database or disk is full", "disk i/o error", "unable to write")
_PG_WRITE = {"25006", "53100", "42501", "53200"}


def write_failure(exc: BaseException) -> str | None:
    """The sentence for a storage fault, or None when `exc` is not one (re-raise it)."""
    if isinstance(exc, sqlite3.OperationalError):  # raised by the raw bulk insert on SQLite
        return READ_ONLY if any(s in str(exc).lower() for s in _SQLITE_WRITE) else None
    if not isinstance(exc, DBAPIError):
        return None
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None),
                                                       "sqlstate", None)
    text = str(orig or exc).lower()
    if state in _PG_WRITE or any(s in text for s in _SQLITE_WRITE):
        return READ_ONLY
    if isinstance(exc, OperationalError):
        detail = str(orig or exc).strip().splitlines()[0][:200] if str(orig or exc) else ""
        return UNREACHABLE.format(detail=detail or "no answer")
    return None


class StorageFault(RuntimeError):
    """A write that the storage refused (read-only, full, unreachable): nothing was saved.

    Its message is the sentence for the user (`write_failure`); pages show it as is.
    """


def reraise_storage_fault(exc: BaseException) -> None:
    """Raise `StorageFault` with the user's sentence if `exc` is a storage fault; else return
    (the caller re-raises the original)."""
    message = write_failure(exc)
    if message is not None:
        raise StorageFault(message) from exc


FAULT_TYPES = (DBAPIError, sqlite3.OperationalError)
"""What a storage fault arrives as; `write_failure` decides which of them is one."""


@contextmanager
def storage_guard() -> Iterator[None]:
    """Turn a storage fault raised in the block into `StorageFault` (chained to the original);
    anything else is re-raised unchanged. Usable as a decorator: `@storage_guard()`."""
    try:
        yield
    except FAULT_TYPES as exc:
        reraise_storage_fault(exc)
        raise

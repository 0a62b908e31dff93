"""The one path for a write: a transaction whose alerts follow its data.

`write_session(engine)` is a transaction under `core.store.faults.storage_guard` (a storage fault
becomes the user's sentence) that, just before COMMIT, brings the alerts of every patient it
touched up to date (core.monitoring.evaluation.follow_writes), in the same transaction: a nurse's
hand
entry, a grid, a CSV or FHIR import, a correction, entered-in-error, a verification, an
episode, a treatment or a course event raises its alert without anyone running `evaluate`.

Which patients a write touched is collected on the session itself (`session.info`): the
ORM's flushes of clinical rows are seen by an `after_flush` listener on that one session,
and bulk inserts that bypass the ORM (core.capture.importing.write_rows) call `touch`. A rollback
forgets them (a refused import or a dry run evaluates nobody); a SAVEPOINT's rollback does not.

A rule or alert sync that raises never costs the data: the evaluation runs in a SAVEPOINT;
on failure it is rolled back alone, logged, and an `EvaluationFailure` row is written with
the data, which commits. The monitor's next cycle evaluates every active patient again and
marks the failure retried when it succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.config import Settings
from core.store.faults import FAULT_TYPES, storage_guard, write_failure
from core.store.models import (
    CourseEvent,
    Episode,
    EvaluationFailure,
    LabResult,
    MissingLab,
    Observation,
    Patient,
    Treatment,
)

log = logging.getLogger(__name__)

TOUCHED = "cartwatch.touched_patients"
_CLINICAL = (LabResult, Observation, Episode, Treatment, CourseEvent, MissingLab)


def touch(session: Session, patient_pks: Iterable[int]) -> None:
    """Mark patients as touched by this session's write (for writes that bypass the ORM)."""
    touched = session.info.get(TOUCHED)
    if touched is not None:
        touched.update(int(pk) for pk in patient_pks)


def _after_flush(session: Session, _context: Any) -> None:
    touched = session.info[TOUCHED]
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, _CLINICAL):
            touched.add(obj.patient_pk)
        elif isinstance(obj, Patient) and obj.id is not None:
            touched.add(obj.id)


def _forget(session: Session, _previous: Any = None) -> None:
    """The transaction rolled back: it touched nobody. A SAVEPOINT rolled back inside it
    (one HL7 message of several) forgets nothing: its patients are evaluated with the rest,
    needlessly but harmlessly."""
    if not session.in_transaction():
        session.info[TOUCHED].clear()


@contextmanager
def write_session(engine: Engine, *, settings: Settings | None = None,
                  actor: str = "system") -> Iterator[Session]:
    """One write transaction (commit on success, roll back on any error) whose touched
    patients' alerts are brought up to date before it commits.

    `settings` (default: from the environment) gives the ward's zone, the site's thresholds
    and its notification contacts; `actor` is recorded on the alert changes.
    """
    with storage_guard(), Session(engine, expire_on_commit=False) as session:
        session.info[TOUCHED] = set()
        event.listen(session, "after_flush", _after_flush)
        event.listen(session, "after_soft_rollback", _forget)
        try:
            yield session
            follow(session, settings or Settings.from_env(), actor)
            session.commit()
        except BaseException:
            session.rollback()
            raise


def follow(session: Session, settings: Settings, actor: str = "system") -> int:
    """Evaluate the touched patients inside a SAVEPOINT; on failure keep the data, record
    an EvaluationFailure and log it. Returns how many patients were evaluated."""
    from core.monitoring.evaluation import follow_writes

    session.flush()
    pks = sorted(session.info.get(TOUCHED) or ())
    if not pks:
        return 0
    started = time.perf_counter()
    try:
        with session.begin_nested():
            n = follow_writes(session, settings, pks, actor)
        log.debug("evaluated patients=%d after a write seconds=%.4f", n,
                  time.perf_counter() - started)
        return n
    except FAULT_TYPES as exc:
        if write_failure(exc) is not None:
            raise  # the storage itself failed: the write cannot commit either
        _failed(session, pks, exc)
        return 0
    except Exception as exc:  # a rule or the alert sync raised: the data still commits
        _failed(session, pks, exc)
        return 0
    finally:
        session.info[TOUCHED].clear()


def _failed(session: Session, pks: list[int], exc: BaseException) -> None:
    log.error("evaluation after a write failed for patients %s; the data is saved and the "
              "monitor retries", pks, exc_info=exc)
    session.add(EvaluationFailure(source="write", patient_pks=pks,
                                  error=f"{type(exc).__name__}: {exc}"[:2000]))

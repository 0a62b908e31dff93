"""Shared fixtures for core tests: a fresh SQLite file database with the real schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from core.store.db import init_db, make_engine, session_scope


@pytest.fixture
def engine(tmp_path) -> Iterator[Engine]:  # type: ignore[no-untyped-def]
    """A SQLite file database (WAL, BEGIN IMMEDIATE) migrated to the newest schema."""
    eng = make_engine(f"sqlite:///{tmp_path / 'test.db'}")
    init_db(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def add(engine: Engine) -> Callable[..., list[SQLModel]]:
    """Insert rows in one transaction and return them with their ids set."""

    def _add(*rows: SQLModel) -> list[SQLModel]:
        with session_scope(engine) as session:
            session.add_all(rows)
            session.flush()
            for row in rows:
                session.refresh(row)
        return list(rows)

    return _add

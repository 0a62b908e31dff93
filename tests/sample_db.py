"""A SQLite file seeded with the synthetic sample cohort and evaluated, built once per run."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.config import SAMPLE_DIR, Settings
from core.db import init_db, make_engine


def build_sample_db(path: Path) -> str:
    """Create, seed and evaluate a sample database at `path`; returns its URL."""
    from core.evaluation import run_evaluate
    from core.seeding import seed_sample

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    reports = seed_sample(engine, SAMPLE_DIR)
    assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors]
    run_evaluate(engine, Settings(database_url=url))
    engine.dispose()
    return url


def copy_db(src: Path, dest: Path) -> str:
    shutil.copyfile(src, dest)
    return f"sqlite:///{dest}"

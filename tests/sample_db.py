"""A SQLite file seeded with the synthetic sample cohort and evaluated, built once per run,
and the clock the tests that read it run on.

data/sample/ is a snapshot written for one day (data/sample/generate.py --today, 2026-11-21 by
default): on that day every patient is on the course day its README describes. On a later day
the same rows tell another story (days without data, episodes long over) and at night the
"today" draws at 06:00 are still in the future. Tests that check what the pages or the rules
show of the sample therefore run at SAMPLE_NOW, midday of that day, with the clock ticking.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
from datetime import UTC, datetime, time
from pathlib import Path

import time_machine

from core.config import SAMPLE_DIR, Settings
from core.store.db import init_db, make_engine


def _sample_today():  # noqa: ANN202 - the --today data/sample/ was written for
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE_DIR / "generate.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.DEFAULT_TODAY


SAMPLE_NOW = datetime.combine(_sample_today(), time(12, 0), tzinfo=UTC)


def sample_clock() -> time_machine.travel:
    """The clock at SAMPLE_NOW, ticking (use as a context manager or start()/stop())."""
    return time_machine.travel(SAMPLE_NOW, tick=True)


def build_sample_db(path: Path, on_sample_day: bool = True) -> str:
    """Create, seed and evaluate a sample database at `path`; returns its URL.

    on_sample_day: seeded and evaluated under sample_clock(), so the sample is loaded as
    written (its shift to "today" is 0). False: seeded as `python -m core seed-sample` does,
    shifted so that the real today is the sample's day, and evaluated now (a live server).
    """
    from core.capture.seeding import latest_row, live_shift, seed_sample
    from core.monitoring.evaluation import run_evaluate

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    with sample_clock() if on_sample_day else contextlib.nullcontext():
        shift = live_shift(latest_row(SAMPLE_DIR), "UTC")  # type: ignore[arg-type]
        assert shift == 0 or not on_sample_day, shift
        reports = seed_sample(engine, SAMPLE_DIR, shift_days=shift)
        assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors]
        run_evaluate(engine, Settings(database_url=url))
    engine.dispose()
    return url


def copy_db(src: Path, dest: Path) -> str:
    shutil.copyfile(src, dest)
    return f"sqlite:///{dest}"

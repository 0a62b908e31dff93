"""Seeding the sample on a later day: patients.csv's dates move by whole days so that today is
the sample's day (core/capture/seeding.py); real SQLite files, the real import and evaluate."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from core.capture.seeding import latest_row, live_shift, seed_sample
from core.config import SAMPLE_DIR, Settings
from core.monitoring.evaluation import run_evaluate
from core.store.db import init_db, make_engine, session_scope
from core.store.models import Patient
from tests.cli_runner import CliRun, run_cli
from tests.sample_db import SAMPLE_NOW

SNAPSHOT = SAMPLE_NOW.date()  # data/sample/generate.py's DEFAULT_TODAY
with (SAMPLE_DIR / "patients.csv").open(encoding="utf-8") as _fh:
    WRITTEN = {r["patient_id"]: r for r in csv.DictReader(_fh)}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def stored_dates(url: str) -> dict[str, tuple[date, date | None]]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        rows = s.execute(select(Patient.patient_id, Patient.infusion_date,
                                Patient.lymphodepletion_start)).all()
    engine.dispose()
    return {pid: (infusion, ld) for pid, infusion, ld in rows}


def written_dates(shift: int) -> dict[str, tuple[date, date | None]]:
    def moved(text: str) -> date:
        return date.fromisoformat(text) + timedelta(days=shift)

    return {pid: (moved(r["infusion_date"]), moved(r["lymphodepletion_start"]))
            for pid, r in WRITTEN.items()}


def seed_and_evaluate(tmp_path: Path, now: datetime, tz: str) -> tuple[str, int, dict[str, Any]]:
    """Seed as `python -m core seed-sample` does at `now`, then evaluate: (url, shift, doc)."""
    url = f"sqlite:///{tmp_path / f'seed-{now:%Y%m%d%H%M}.db'}"
    engine = make_engine(url)
    init_db(engine)
    with time_machine.travel(now, tick=True):
        shift = live_shift(latest_row(SAMPLE_DIR), tz)  # type: ignore[arg-type]
        reports = seed_sample(engine, SAMPLE_DIR, tz=tz, shift_days=shift)
        assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors]
        doc = run_evaluate(engine, Settings(database_url=url, ward_tz=tz))
    engine.dispose()
    return url, shift, doc


def findings(doc: dict[str, Any]) -> dict[str, list[tuple]]:
    return {p["patient_id"]: sorted((f["rule"], f["status"], f["grade"], f["score"],
                                     f["since_day"]) for f in p["findings"])
            for p in doc["patients"]}


def test_the_sample_is_a_snapshot_of_the_generators_day_early_in_the_morning() -> None:
    latest = latest_row(SAMPLE_DIR)
    assert latest is not None and latest.date() == SNAPSHOT
    assert time(6, 0) <= latest.time() < time(7, 0)  # morning draws and doses, none later


@pytest.mark.parametrize("now, tz, shift", [
    pytest.param(SAMPLE_NOW, "UTC", 0, id="tests-sample-clock"),
    pytest.param(at("2026-11-22T01:15"), "UTC", 0, id="next-night"),
    pytest.param(at("2026-12-03T12:00"), "UTC", 12, id="12-days-later"),
    pytest.param(at("2026-12-03T06:28"), "UTC", 11, id="before-the-latest-row-time"),
    pytest.param(at("2026-12-03T06:29"), "UTC", 12, id="after-the-latest-row-time"),
    pytest.param(at("2026-12-03T05:40"), "Europe/Berlin", 12, id="berlin-06:40"),
    pytest.param(at("2026-12-03T10:00"), "America/New_York", 11, id="new-york-05:00"),
    pytest.param(at("2026-12-02T23:30"), "Pacific/Auckland", 12, id="auckland-already-dec-3"),
    pytest.param(at("2027-03-01T12:00"), "UTC", 100, id="next-year"),
])
def test_live_shift_puts_the_latest_row_on_the_last_ward_day_it_has_passed(
        now: datetime, tz: str, shift: int) -> None:
    assert live_shift(latest_row(SAMPLE_DIR), tz, now) == shift  # type: ignore[arg-type]


@pytest.mark.parametrize("now, tz, shift, days_on", [
    pytest.param(at("2026-12-03T12:00"), "UTC", 12, 0, id="midday"),
    pytest.param(at("2026-12-03T04:00"), "Europe/Berlin", 11, 1, id="berlin-05:00"),
])
def test_seeding_later_moves_every_date_by_the_shift_and_keeps_the_course_days(
        tmp_path: Path, now: datetime, tz: str, shift: int, days_on: int) -> None:
    """days_on: before the morning rows' time the ward is a day past the sample's day."""
    on_disk = (SAMPLE_DIR / "patients.csv").read_bytes()
    url, got, doc = seed_and_evaluate(tmp_path, now, tz)
    assert got == shift
    assert stored_dates(url) == written_dates(shift)
    assert (SAMPLE_DIR / "patients.csv").read_bytes() == on_disk  # moved in memory only
    ward_today = now.astimezone(ZoneInfo(tz)).date()
    assert len(doc["patients"]) == len(WRITTEN) - 1  # the discharged SYN-012 is skipped
    for p in doc["patients"]:
        snapshot_day = (SNAPSHOT - date.fromisoformat(
            WRITTEN[p["patient_id"]]["infusion_date"])).days
        assert p["day"] == snapshot_day + days_on
        assert ward_today - timedelta(days=p["day"]) == stored_dates(url)[p["patient_id"]][0]


def test_a_shifted_seed_raises_the_same_findings_as_the_snapshot_on_its_day(
        tmp_path: Path) -> None:
    _, zero, snapshot = seed_and_evaluate(tmp_path, SAMPLE_NOW, "UTC")
    _, shift, later = seed_and_evaluate(tmp_path, at("2027-03-01T12:00"), "UTC")
    assert (zero, shift) == (0, 100)
    assert [p["day"] for p in later["patients"]] == [p["day"] for p in snapshot["patients"]]
    assert findings(later) == findings(snapshot)
    assert any(f[1] == "met" for fs in findings(later).values() for f in fs)


def cli(*args: str) -> CliRun:
    return run_cli(*args, env={"CARTWATCH_WARD_TZ": "UTC"})


@pytest.mark.parametrize("options, shift, said", [
    pytest.param(["--snapshot"], 0, f"sample loaded as written: a snapshot of {SNAPSHOT}",
                 id="snapshot"),
    pytest.param(["--today", "2026-11-01"], -20,
                 f"sample shifted by -20 days so that 2026-11-01 is its day {SNAPSHOT}",
                 id="today"),
])
def test_seed_sample_options_choose_the_dates(tmp_path: Path, options: list[str], shift: int,
                                              said: str) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = cli("--db", url, "seed-sample", *options)
    assert run.returncode == 0, run.stderr
    assert said in run.stdout.splitlines()
    assert stored_dates(url) == written_dates(shift)
    again = cli("--db", url, "seed-sample", "--force")  # keeps the dates the sample has
    assert again.returncode == 0, again.stderr
    assert "already present 14" in again.stdout
    assert f"shifted by {shift} days" in again.stdout
    assert stored_dates(url) == written_dates(shift)


def test_seed_sample_shifts_to_the_ward_today_by_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    latest = latest_row(SAMPLE_DIR)
    before = live_shift(latest, "UTC")  # type: ignore[arg-type]
    run = cli("--db", url, "seed-sample")
    after = live_shift(latest, "UTC")  # type: ignore[arg-type]
    assert run.returncode == 0, run.stderr
    shift = next(s for s in {before, after} if stored_dates(url) == written_dates(s))
    day = SNAPSHOT + timedelta(days=shift)
    assert f"so that {day} is its day {SNAPSHOT}" in run.stdout


def test_seed_sample_refuses_a_today_that_puts_rows_in_the_future(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    run = cli("--db", url, "seed-sample", "--today", tomorrow.isoformat())
    assert run.returncode == 2
    assert "would put rows in the future" in run.stderr
    assert stored_dates(url) == {}


def test_seed_sample_on_a_loaded_database_says_when_the_sample_has_gone_stale(
        tmp_path: Path) -> None:
    """`make run` on yesterday's database does not reload the sample (nothing is deleted),
    but says the courses have moved on and how to get a fresh one."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    loaded = datetime.now(UTC).date() - timedelta(days=3)
    assert cli("--db", url, "seed-sample", "--today", loaded.isoformat()).returncode == 0
    behind = live_shift(latest_row(SAMPLE_DIR), "UTC") - (loaded - SNAPSHOT).days  # type: ignore[arg-type]
    assert behind in (2, 3)  # 2 while today's clock is before the sample's latest time
    run = cli("--db", url, "seed-sample")
    assert run.returncode == 0, run.stderr
    assert "sample not loaded" in run.stdout
    assert f"seeded for {loaded}, {behind} days ago" in run.stdout
    assert "move the database file aside" in run.stdout
    assert stored_dates(url) == written_dates((loaded - SNAPSHOT).days)  # nothing changed

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert cli("--db", fresh, "seed-sample").returncode == 0
    again = cli("--db", fresh, "seed-sample")
    assert "sample not loaded" in again.stdout and "ago" not in again.stdout

"""Backtesting: replay the rules over a cohort and measure the alert burden per rule.

The replay judges every rule's status over every patient's course (any status), as of the
end of every ward day (core.rules.engine.ward_statuses: statuses only, no findings), and
never touches the alert tables. Alert episodes are counted the way the alert inbox would
open them: one alert per (patient, rule, episode key), where the key is the finding's
`episode_key` or its onset day (`core.monitoring.alerts.episode_key_of`), so one met stretch
is one alert and a rule that re-fires under the same key does not open another.
Informational rules (CAR-HEMATOTOX) never raise alerts and are left out of the burden.

A what-if run layers threshold changes over the site configuration without writing it.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from core.config import Settings
from core.rules.base import Finding, RuleSpec, Status
from core.rules.catalog import informational_ids
from core.rules.frames import Ward
from core.store.db import session_scope
from core.store.loading import load_ward
from core.store.models import Patient
from core.vocabulary.course import Course

Overrides = Mapping[str, Mapping[str, float]]
Progress = Callable[[int, int], None]  # (patients done, patients in all)
# (patient_id, [(day, findings as of the end of that day), ...]) for every patient
Replayed = Iterable[tuple[str, Sequence[tuple[int, Sequence[Finding]]]]]

BATCH = 100  # patients read from the database at a time
PARALLEL_FROM = 2 * BATCH  # cohorts this large are replayed by several processes
BATCHES_PER_WORKER = 8  # with several processes, smaller batches: the last ones end together
EPISODE_COLUMNS = ["patient_id", "rule_id", "episode_key", "first_day", "last_day",
                   "met_days"]
BURDEN_COLUMNS = ["rule_id", "title", "alerts", "per_100_patient_days", "patients_flagged",
                  "patients_flagged_pct", "median_first_day", "met_days"]


@dataclass(frozen=True)
class BacktestResult:
    """The replay of a cohort, summarised per rule.

    episodes: one row per would-be alert (EPISODE_COLUMNS).
    first_fire: patient_id, rule_id, first_day: the first day each rule fired per patient.
    burden: one row per alerting rule, in catalogue order (BURDEN_COLUMNS).
    """

    episodes: pd.DataFrame
    first_fire: pd.DataFrame
    burden: pd.DataFrame
    patients: int
    patient_days: int
    overrides: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def alerts(self) -> int:
        return len(self.episodes)

    @property
    def per_100_patient_days(self) -> float:
        return per_100(self.alerts, self.patient_days)


def per_100(count: int, patient_days: int) -> float:
    """`count` per 100 patient-days (NaN when there are no patient-days)."""
    return 100.0 * count / patient_days if patient_days else math.nan


def alert_episodes(replayed: Replayed) -> pd.DataFrame:
    """Would-be alerts of a replay given as findings: one row per (patient, rule, episode
    key); see `episodes_of`."""
    rows = [(pid, day, f.rule, f.status.value, math.nan if f.since_day is None
             else float(f.since_day), f.episode_key)
            for pid, days in replayed for day, findings in days for f in findings]
    return episodes_of(pd.DataFrame(rows, columns=["patient_id", "day", "rule", "status",
                                                   "since_day", "episode_key"]))


def episodes_of(statuses: pd.DataFrame) -> pd.DataFrame:
    """Would-be alerts of a replay: one row per (patient, rule, episode key), in order of
    first appearance, from the statuses of every rule on every day (patient_id, day, rule,
    status, since_day, episode_key; ordered by patient and day). The key is the finding's
    episode_key, else its onset day's (as core.monitoring.alerts.episode_key_of); only met
    findings of rules that alert count (is_alertable)."""
    met = statuses[(statuses["status"] == Status.MET.value)
                   & ~statuses["rule"].isin(informational_ids())]
    since = met["since_day"].to_numpy(dtype=float)
    derived = np.where(np.isnan(since), "current", np.char.add(
        "since-day-", np.floor(np.nan_to_num(since)).astype(np.int64).astype(str)))
    given = met["episode_key"].to_numpy(dtype=object)
    keyed = met.assign(episode_key=np.where(pd.isna(given) | (given == ""), derived, given))
    grouped = keyed.groupby(["patient_id", "rule", "episode_key"], sort=False)["day"]
    frame = grouped.agg(["min", "max", "size"]).reset_index()
    frame.columns = EPISODE_COLUMNS
    return frame.astype({"first_day": "int64", "last_day": "int64", "met_days": "int64"})


def first_fire(episodes: pd.DataFrame) -> pd.DataFrame:
    """The first day each rule fired for each patient (patient_id, rule_id, first_day)."""
    if episodes.empty:
        return pd.DataFrame({"patient_id": pd.Series(dtype=object),
                             "rule_id": pd.Series(dtype=object),
                             "first_day": pd.Series(dtype="int64")})
    return (episodes.groupby(["patient_id", "rule_id"], sort=False, as_index=False)
            ["first_day"].min())


def burden_table(episodes: pd.DataFrame, patients: int, patient_days: int,
                 specs: Sequence[RuleSpec] | None = None) -> pd.DataFrame:
    """Alert burden per rule: alerts, alerts per 100 patient-days, patients flagged.

    Every alerting rule of `specs` (default: the catalogue) has a row, zero when it never
    fired; rules only seen in `episodes` follow in order of appearance.
    """
    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    titles = {s.rule.id: s.rule.title for s in specs if not s.rule.informational}
    for rule_id in episodes["rule_id"].unique():
        titles.setdefault(rule_id, rule_id)
    firsts = first_fire(episodes)
    alerts = episodes.groupby("rule_id").size()
    met_days = episodes.groupby("rule_id")["met_days"].sum()
    flagged = firsts.groupby("rule_id")["patient_id"].nunique()
    median_first = firsts.groupby("rule_id")["first_day"].median()
    rows = []
    for rule_id, title in titles.items():
        n = int(alerts.get(rule_id, 0))
        k = int(flagged.get(rule_id, 0))
        rows.append({
            "rule_id": rule_id, "title": title, "alerts": n,
            "per_100_patient_days": per_100(n, patient_days), "patients_flagged": k,
            "patients_flagged_pct": 100.0 * k / patients if patients else math.nan,
            "median_first_day": float(median_first.get(rule_id, math.nan)),
            "met_days": int(met_days.get(rule_id, 0)),
        })
    return pd.DataFrame(rows, columns=BURDEN_COLUMNS)


def merge_overrides(*layers: Overrides | None) -> dict[str, dict[str, float]]:
    """Threshold overrides, later layers winning key by key."""
    out: dict[str, dict[str, float]] = {}
    for layer in layers:
        for rule_id, values in (layer or {}).items():
            out.setdefault(rule_id, {}).update({k: float(v) for k, v in values.items()})
    return out


def backtest_courses(courses: Iterable[Course], overrides: Overrides | None = None,
                     specs: Sequence[RuleSpec] | None = None,
                     progress: Progress | None = None,
                     total: int | None = None) -> BacktestResult:
    """Replay every rule over every course (thresholds: `overrides` over the defaults).

    `courses` may be a lazy iterable (then give `total`, the number of courses, for the
    progress callback and the share of patients flagged).
    """
    from core.rules.engine import thresholds_for

    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    merged = merge_overrides(overrides)
    thresholds_for(specs, merged)  # an unknown rule or key fails before any work is done
    started = time.perf_counter()
    if total is None:
        courses = list(courses)
        total = len(courses)
    done = 0

    def each() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    episodes, patient_days = _episodes(Ward.of(list(courses), evaluating=False), specs,
                                       merged, each)
    return BacktestResult(
        episodes=episodes, first_fire=first_fire(episodes),
        burden=burden_table(episodes, total, patient_days, specs),
        patients=total, patient_days=patient_days, overrides=merged,
        seconds=time.perf_counter() - started,
    )


def replay_workers(patients: int) -> int:
    """Processes a cohort replay uses: one per available core for a cohort of at least
    PARALLEL_FROM patients (starting a worker costs ~2 s of imports), else 1.
    ``CARTWATCH_REPLAY_WORKERS`` caps it (1 = never start workers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    cap = os.environ.get("CARTWATCH_REPLAY_WORKERS")
    if cap:
        cores = min(cores, max(1, int(cap)))
    return cores if patients >= PARALLEL_FROM else 1


def _episodes(ward: Ward, specs: Sequence[RuleSpec] | None,
              overrides: dict[str, dict[str, float]],
              each: Callable[[], None] | None = None) -> tuple[pd.DataFrame, int]:
    """Would-be alerts and patient-days of replaying the ward's courses (made not
    `evaluating`; `each()` is called for every course once they are replayed).
    Informational rules never alert, so they are not replayed."""
    from core.rules.engine import ward_statuses

    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    specs = [s for s in specs if not s.rule.informational]
    statuses = ward_statuses(ward, specs, overrides)
    ids = np.array([p.patient_id for p in ward.patients], dtype=object)
    statuses.insert(0, "patient_id", ids[statuses["key"].to_numpy(dtype=np.int64)]
                    if len(statuses) else np.empty(0, dtype=object))
    patient_days = len(ward.replay_rows())
    if each is not None:
        for _ in range(len(ward)):
            each()
    return episodes_of(statuses), patient_days


def _replay_batch(engine: Engine, settings: Settings, ids: Sequence[str],
                  overrides: dict[str, dict[str, float]], as_of: datetime,
                  specs: Sequence[RuleSpec] | None,
                  each: Callable[[], None] | None = None) -> tuple[pd.DataFrame, int]:
    """Would-be alerts and patient-days of one batch of patients, read (statuses alone: no
    evidence) and replayed (`each()` is called after every patient)."""
    with session_scope(engine) as session:
        read = load_ward(session, settings.ward_tz, list(ids), active_only=False, as_of=as_of,
                         read="statuses")
    ward = Ward.of_frames(read.patients, read.as_of_days, read.tables, evaluating=False,
                          tz=read.tz)
    return _episodes(ward, specs, overrides, each)


_WORKER: dict[str, Engine] = {}


def _worker_batch(settings: Settings, ids: Sequence[str],
                  overrides: dict[str, dict[str, float]],
                  as_of: datetime) -> tuple[pd.DataFrame, int]:
    """_replay_batch in a worker process (one engine per process, made on first use)."""
    from core.store.db import make_engine

    engine = _WORKER.get(settings.database_url)
    if engine is None:
        engine = _WORKER[settings.database_url] = make_engine(settings.database_url)
    return _replay_batch(engine, settings, ids, overrides, as_of, None)


def backtest(engine: Engine, settings: Settings, overrides: Overrides | None = None,
             progress: Progress | None = None, *, as_of: datetime | None = None,
             specs: Sequence[RuleSpec] | None = None,
             workers: int | None = None) -> BacktestResult:
    """Replay the whole cohort in the database (every patient, any status); no writes.

    Thresholds in force: code defaults, then the site configuration (Settings.site_config),
    then `overrides` (a what-if, never written anywhere). The cohort is read in batches
    (`cohort_batches`; reading a large cohort at once peaks at several times the memory its
    courses keep); a large cohort is replayed by `workers` processes (default
    `replay_workers`), each reading its own batches, with the same result as one process.
    `progress(done, total)` is called after each batch.
    """
    from core.rules.engine import thresholds_for
    from core.site_config import site_overrides

    as_of = as_of or datetime.now(UTC)
    merged = merge_overrides(site_overrides(settings, specs), overrides)
    custom_rules = specs is not None  # (workers run the catalogue: functions don't pickle)
    if specs is None:
        from core.rules.catalog import all_specs

        specs = all_specs()
    thresholds_for(specs, merged)  # an unknown rule or key fails before any work is done
    started = time.perf_counter()
    with session_scope(engine) as session:
        ids = list(session.scalars(select(col(Patient.patient_id))
                                   .order_by(col(Patient.patient_id))))
    workers = replay_workers(len(ids)) if workers is None else workers
    batches = cohort_batches(ids, workers)
    if progress is not None:
        progress(0, len(ids))
    parts: list[tuple[pd.DataFrame, int]] = []
    if workers > 1 and len(batches) > 1 and not custom_rules:
        parts = _parallel(settings, batches, merged, as_of, workers, progress, len(ids))
    else:
        done = 0

        def each() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(ids))

        for batch in batches:
            parts.append(_replay_batch(engine, settings, batch, merged, as_of, specs, each))
    episodes = (pd.concat([e for e, _ in parts], ignore_index=True) if parts
                else alert_episodes([]))
    patient_days = sum(n for _, n in parts)
    return BacktestResult(
        episodes=episodes, first_fire=first_fire(episodes),
        burden=burden_table(episodes, len(ids), patient_days, specs),
        patients=len(ids), patient_days=patient_days, overrides=merged,
        seconds=time.perf_counter() - started,
    )


def cohort_batches(ids: Sequence[str], workers: int) -> list[list[str]]:
    """The cohort in batches of BATCH patients; with several workers, about
    BATCHES_PER_WORKER batches each if that is smaller, so that no worker is left replaying
    a large last batch while the others have nothing more to do."""
    size = BATCH
    if workers > 1:
        size = max(1, min(BATCH, math.ceil(len(ids) / (workers * BATCHES_PER_WORKER))))
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _start_method() -> multiprocessing.context.BaseContext:
    """How worker processes start: forked from a process running one thread (the command
    line, the benchmark), so they start at once with everything imported; spawned from a
    threaded one (the Streamlit server), where forking is unsafe."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _parallel(settings: Settings, batches: list[list[str]],
              overrides: dict[str, dict[str, float]], as_of: datetime, workers: int,
              progress: Progress | None, total: int) -> list[tuple[pd.DataFrame, int]]:
    """Each batch replayed in a worker process; results in batch order."""
    context = _start_method()
    results: dict[int, tuple[pd.DataFrame, int]] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_worker_batch, settings, batch, overrides, as_of): i
                   for i, batch in enumerate(batches)}
        done = 0
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            done += len(batches[i])
            if progress is not None:
                progress(done, total)
    return [results[i] for i in range(len(batches))]


def compare_burden(before: BacktestResult, after: BacktestResult) -> pd.DataFrame:
    """Before/after burden per rule, side by side, with the change in alerts."""
    cols = ["rule_id", "title", "alerts", "per_100_patient_days", "patients_flagged"]
    merged = before.burden[cols].merge(after.burden[cols], on=["rule_id", "title"],
                                       how="outer", suffixes=("_before", "_after"), sort=False)
    for c in ("alerts", "patients_flagged"):
        for side in ("before", "after"):
            merged[f"{c}_{side}"] = merged[f"{c}_{side}"].fillna(0).astype("int64")
    merged["alerts_change"] = merged["alerts_after"] - merged["alerts_before"]
    return merged

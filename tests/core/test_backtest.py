"""Backtest: alert episodes and burden per 100 patient-days, counted by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from core.config import Settings
from core.monitoring.backtest import (
    alert_episodes,
    backtest,
    backtest_courses,
    burden_table,
    merge_overrides,
)
from core.rules.base import (
    Citation,
    Finding,
    Rule,
    Severity,
    Status,
    Threshold,
    Thresholds,
)
from core.vocabulary.course import Course, make_course
from core.vocabulary.units import Evidence
from tests.rule_toys import course_rule


def high_ferritin(course: Course, t: Thresholds) -> Finding:
    """Met while the latest ferritin is above t["ferritin"]; onset = start of that run."""
    values = course.labs[course.labs["analyte"] == "ferritin"].sort_values("day")
    if values.empty:
        return Finding("high_ferritin", Status.NOT_EVALUABLE, missing=["ferritin"])
    since = None
    for day, value in zip(values["day"], values["value"], strict=True):
        since = (since if since is not None else day) if value > t["ferritin"] else None
    if since is None:
        return Finding("high_ferritin", Status.NOT_MET)
    return Finding("high_ferritin", Status.MET, since_day=since)


SPEC = course_rule(Rule(
    id="high_ferritin", title="Ferritin high", version="1",
    citation=Citation("test", "none"), evidence=Evidence.DESIGN, severity=Severity.WARNING,
    thresholds=(Threshold("ferritin", 500, "ng/mL", Evidence.DESIGN, "above", ">"),),
    inputs=("ferritin",)), high_ferritin)


def cohort() -> list[Course]:
    a = [100, 900, 900, 100, 100, 900, 900, 900, 100, 100]  # runs on days 1-2 and 5-7
    b = [100] * 10
    return [make_course(patient_id=pid, labs=[("ferritin", d + 0.3, v)
                                              for d, v in enumerate(values)])
            for pid, values in (("A", a), ("B", b))]


def test_each_met_stretch_is_one_alert_and_burden_is_per_100_patient_days():
    result = backtest_courses(cohort(), specs=[SPEC])
    assert (result.patients, result.patient_days) == (2, 20)
    assert result.episodes[["patient_id", "first_day", "last_day", "met_days"]] \
        .values.tolist() == [["A", 1, 2, 2], ["A", 5, 7, 3]]
    row = result.burden.set_index("rule_id").loc["high_ferritin"]
    assert row["alerts"] == 2
    assert row["per_100_patient_days"] == pytest.approx(100 * 2 / 20)  # 10.0
    assert row["patients_flagged"] == 1 and row["patients_flagged_pct"] == 50.0
    assert row["median_first_day"] == 1 and row["met_days"] == 5
    assert result.first_fire.values.tolist() == [["A", "high_ferritin", 1]]


@pytest.mark.parametrize(("threshold", "alerts", "flagged"), [
    pytest.param(50, 2, 2, id="below-every-value-one-long-alert-each"),
    pytest.param(900, 0, 0, id="at-the-peak-strictly-above-never"),
    pytest.param(899, 2, 1, id="just-below-the-peak"),
])
def test_a_what_if_threshold_changes_the_burden(threshold, alerts, flagged):
    result = backtest_courses(cohort(), {"high_ferritin": {"ferritin": threshold}}, [SPEC])
    row = result.burden.set_index("rule_id").loc["high_ferritin"]
    assert (row["alerts"], row["patients_flagged"]) == (alerts, flagged)
    assert result.overrides == {"high_ferritin": {"ferritin": float(threshold)}}


def test_an_unknown_threshold_fails_before_any_replay():
    with pytest.raises(KeyError, match="unknown threshold"):
        backtest_courses(cohort(), {"high_ferritin": {"feritin": 1}}, [SPEC])


def test_a_key_that_refires_is_the_same_alert_and_informational_rules_never_alert():
    met = Finding("x", Status.MET, episode_key="iec-hs-1")
    replayed = [("P", [(0, [met]), (1, [Finding("x", Status.NOT_MET)]), (2, [met]),
                       (3, [Finding("car_hematotox", Status.MET, score=3)])])]
    episodes = alert_episodes(replayed)
    assert episodes.values.tolist() == [["P", "x", "iec-hs-1", 0, 2, 2]]
    burden = burden_table(episodes, patients=1, patient_days=4, specs=[SPEC])
    assert burden.set_index("rule_id").loc["x", "per_100_patient_days"] == 25.0
    assert burden.set_index("rule_id").loc["high_ferritin", "alerts"] == 0


def test_progress_is_reported_per_patient():
    seen: list[tuple[int, int]] = []
    backtest_courses(cohort(), specs=[SPEC], progress=lambda d, n: seen.append((d, n)))
    assert seen == [(1, 2), (2, 2)]


def test_later_override_layers_win_key_by_key():
    assert merge_overrides({"r": {"a": 1, "b": 2}}, None, {"r": {"b": 3}}) == \
        {"r": {"a": 1.0, "b": 3.0}}


def test_an_empty_database_replays_nothing(engine):
    result = backtest(engine, Settings(database_url=str(engine.url)))
    assert (result.patients, result.patient_days, result.alerts) == (0, 0, 0)
    assert math.isnan(result.per_100_patient_days)


def test_reading_the_cohort_in_batches_changes_nothing(tmp_path, monkeypatch):
    import pandas as pd

    import core.monitoring.backtest
    from tests.sample_db import build_sample_db

    url = build_sample_db(tmp_path / "sample.db")
    from core.store.db import make_engine

    engine, settings = make_engine(url), Settings(database_url=url)
    whole = backtest(engine, settings)
    monkeypatch.setattr(core.monitoring.backtest, "BATCH", 4)
    seen: list[tuple[int, int]] = []
    batched = backtest(engine, settings, progress=lambda d, n: seen.append((d, n)))
    assert seen[0] == (0, 14) and seen[-1] == (14, 14)
    assert (batched.patients, batched.patient_days) == (whole.patients, whole.patient_days)
    pd.testing.assert_frame_equal(batched.burden, whole.burden)
    engine.dispose()


@pytest.mark.parametrize(("patients", "workers", "sizes"), [
    (1000, 1, [100] * 10),  # one process: BATCH at a time
    (1000, 2, [63] * 15 + [55]),  # two: about 8 batches each, so both finish close together
    (5000, 2, [100] * 50),  # never more than BATCH
    (3, 4, [1, 1, 1]),
])
def test_the_cohort_is_cut_into_batches_each_patient_once(patients, workers, sizes):
    from core.monitoring.backtest import cohort_batches

    ids = [f"S{i:05d}" for i in range(patients)]
    batches = cohort_batches(ids, workers)
    assert [len(b) for b in batches] == sizes
    assert [p for b in batches for p in b] == ids


@pytest.mark.parametrize("threaded", [False, True], ids=["forked", "spawned"])
def test_worker_processes_give_the_same_backtest_as_one_process(tmp_path, monkeypatch,
                                                                 threaded):
    """Two real worker processes (each reading its own batches) = one process, whether they
    are forked (a single-threaded caller) or spawned (called from a thread, as Streamlit).

    Streamlit runs dashboard/app.py as the module __main__, and a spawned worker imports the
    parent's __main__ before its work: the app must not run there (it did, and the pool
    broke). pytest's own __main__ is replaced by that, whichever script ran last."""
    import sys
    import threading
    import types

    import pandas as pd

    import core.monitoring.backtest
    from core.store.db import make_engine
    from tests.sample_db import build_sample_db

    url = build_sample_db(tmp_path / "sample.db")
    engine, settings = make_engine(url), Settings(database_url=url)
    monkeypatch.setattr(core.monitoring.backtest, "BATCH", 4)  # 14 patients: 4 batches
    serial = backtest(engine, settings, workers=1)
    seen: list[tuple[int, int]] = []
    out: dict[str, object] = {}

    def run() -> None:
        out["method"] = core.monitoring.backtest._start_method().get_start_method()
        try:
            out["result"] = backtest(engine, settings, workers=2,
                                     progress=lambda d, n: seen.append((d, n)))
        except Exception as error:  # the thread's error, for the assertion below
            out["result"] = error

    if threaded:
        main = types.ModuleType("__main__")
        main.__file__ = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
        monkeypatch.setitem(sys.modules, "__main__", main)
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        assert out["method"] == "spawn"
    else:
        monkeypatch.setattr(threading, "active_count", lambda: 1)  # pytest's own threads
        run()
        assert out["method"] == "fork"
    parallel = out["result"]
    assert isinstance(parallel, core.monitoring.backtest.BacktestResult)
    batches = core.monitoring.backtest.cohort_batches([f"p{i}" for i in range(14)], 2)
    assert [len(b) for b in batches] == [1] * 14  # 14 / (2 x 8) rounded up, at most BATCH
    assert seen[0] == (0, 14) and seen[-1] == (14, 14) and len(seen) == 1 + len(batches)
    assert (parallel.patients, parallel.patient_days) == (serial.patients, serial.patient_days)
    pd.testing.assert_frame_equal(parallel.episodes, serial.episodes)
    pd.testing.assert_frame_equal(parallel.burden, serial.burden)
    engine.dispose()


def test_replay_workers_only_for_large_cohorts(monkeypatch):
    from core.monitoring.backtest import PARALLEL_FROM, replay_workers

    monkeypatch.delenv("CARTWATCH_REPLAY_WORKERS", raising=False)
    assert replay_workers(PARALLEL_FROM - 1) == 1
    assert replay_workers(PARALLEL_FROM) >= 1
    monkeypatch.setenv("CARTWATCH_REPLAY_WORKERS", "1")
    assert replay_workers(10 * PARALLEL_FROM) == 1


def test_the_rules_find_the_same_in_courses_read_without_what_they_do_not_need(tmp_path):
    """Evaluation reads its ward whole without the columns no rule reads (load_ward,
    read="rules"), the backtest without the evidence-only ones too (read="statuses"). Over
    the sample cohort and 40 synthetic courses: every finding as of now and as of every day
    (JSON, evidence included) is what the full courses give, and so is every rule's status,
    met stretch and episode key on every day."""
    from datetime import UTC, date, datetime, timedelta

    import pandas as pd

    from bench.replay_rules import build_courses
    from bench.replay_vs_read import write_db
    from core.rules.catalog import all_specs
    from core.rules.engine import (
        evaluate_courses,
        evaluate_ward,
        replay_courses,
        replay_statuses,
        ward_statuses,
    )
    from core.rules.frames import Ward
    from core.store.db import make_engine, session_scope
    from core.store.loading import WardFrames, load_patient_courses, load_ward
    from tests.sample_db import build_sample_db

    def found(courses: list[Course]) -> list:
        now = [[f.to_json() for f in fs] for fs in evaluate_courses(courses)]
        return now + [[(day, [f.to_json() for f in fs]) for day, fs in days]
                      for _, days in replay_courses(courses)]

    synthetic = tmp_path / "synthetic.db"
    write_db(synthetic, build_courses(40, 40, seed=5), date.today() - timedelta(days=40))
    met: set[str] = set()
    for url in (build_sample_db(tmp_path / "sample.db"), f"sqlite:///{synthetic}"):
        engine = make_engine(url)
        now = datetime.now(UTC)
        with session_scope(engine) as s:
            read = {kind: [c for _, c in load_patient_courses(
                s, "Europe/Berlin", active_only=False, as_of=now, read=kind)]
                for kind in ("all", "rules", "statuses")}
            whole = {kind: load_ward(s, "Europe/Berlin", active_only=False, as_of=now,
                                     read=kind) for kind in ("rules", "statuses")}
        engine.dispose()

        def ward(w: WardFrames, evaluating: bool) -> Ward:
            return Ward.of_frames(w.patients, w.as_of_days, w.tables, evaluating, w.tz)

        full = replay_statuses(read["all"], all_specs())
        assert len(full) > 1000
        pd.testing.assert_frame_equal(replay_statuses(read["statuses"], all_specs()), full)
        pd.testing.assert_frame_equal(ward_statuses(ward(whole["statuses"], False), all_specs()),
                                      full)
        assert found(read["rules"]) == found(read["all"])
        assert ([[f.to_json() for f in fs] for fs in evaluate_ward(ward(whole["rules"], True))]
                == found(read["all"])[:len(read["all"])])
        # a write's follow-up explains only the met findings: the same, the others bare
        assert ([[f.to_json() if f.status == "met" else f
                  for f in fs] for fs in evaluate_ward(ward(whole["rules"], True), met_only=True)]
                == [[f if f["status"] == "met" else Finding(f["rule"], Status(f["status"]))
                     for f in fs] for fs in found(read["all"])[:len(read["all"])]])
        met |= set(full.loc[full["status"] == "met", "rule"])
    assert len(met) >= 20  # most rules fire somewhere, so their statuses were compared


def test_the_backtest_counts_the_statuses_the_monitor_finds(tmp_path):
    """The backtest replays statuses alone (engine.ward_statuses, no `explain`); the monitor,
    `evaluate` and `replay` make findings (`explain`). On every day of the sample cohort and
    of 30 synthetic courses, every rule's status is the finding's, and a met day's since_day
    and episode key are the ones its alert would get: else the burden a site tunes its
    thresholds by would not be the alerts it gets."""
    from datetime import UTC, datetime

    import pandas as pd

    from bench.replay_rules import build_courses
    from core.rules.catalog import all_specs
    from core.rules.engine import replay_courses, replay_statuses
    from core.store.db import make_engine, session_scope
    from core.store.loading import load_patient_courses
    from tests.sample_db import build_sample_db

    engine = make_engine(build_sample_db(tmp_path / "sample.db"))
    with session_scope(engine) as s:
        sample = [c for _, c in load_patient_courses(s, "Europe/Berlin", active_only=False,
                                                     as_of=datetime.now(UTC))]
    engine.dispose()
    met: set[str] = set()
    for courses in (sample, build_courses(30, 60, seed=11)):
        statuses = replay_statuses(courses, all_specs())
        found = pd.DataFrame(
            [(key, day, f.rule, str(f.status), f.since_day, f.episode_key)
             for key, (_, days) in enumerate(replay_courses(courses, all_specs()))
             for day, findings in days for f in findings],
            columns=["key", "day", "rule", "found", "found_since", "found_key"])
        both = statuses.merge(found, on=["key", "day", "rule"], how="outer", validate="1:1")
        assert len(both) == len(statuses) == len(found) > 1000
        assert (both["status"] == both["found"]).all(), both[both["status"] != both["found"]]
        yes = both[both["status"] == "met"]
        assert (yes["since_day"] == yes["found_since"]).all()
        keyed = yes[yes["episode_key"].notna()]
        assert (keyed["episode_key"] == keyed["found_key"]).all()
        met |= set(yes["rule"])
    assert len(met) >= 20

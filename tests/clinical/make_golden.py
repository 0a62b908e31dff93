"""Golden files over the synthetic sample cohort (data/sample/), as of a fixed time.

    .venv/bin/python tests/clinical/make_golden.py        # rewrites the two CSVs beside it

- golden_sample_alerts.csv: every met finding `run_evaluate` reports as of AS_OF (active
  patients, today's state), with the alert severity it raises (blank = informational, no
  alert): patient_id, rule, status, grade, score, since_day, severity.
- golden_sample_replay.csv: per patient and rule, the days `run_replay` finds it met (first,
  last, count) and the worst grade/score: what data/sample/README.md describes.

tests/clinical/test_golden.py recomputes both and compares; a rule change that moves an alert
shows up as a diff of these files, to be reviewed and committed with the change.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.capture.seeding import seed_sample  # noqa: E402
from core.config import SAMPLE_DIR, Settings  # noqa: E402
from core.monitoring.alerts import severity_of  # noqa: E402
from core.monitoring.evaluation import run_evaluate, run_replay  # noqa: E402
from core.rules.base import Finding, Status  # noqa: E402
from core.rules.catalog import spec_by_id  # noqa: E402
from core.store.db import init_db, make_engine  # noqa: E402

AS_OF = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)  # every sample row lies before it
HERE = Path(__file__).resolve().parent
ALERTS_CSV = HERE / "golden_sample_alerts.csv"
REPLAY_CSV = HERE / "golden_sample_replay.csv"
ALERT_COLUMNS = ["patient_id", "rule", "status", "grade", "score", "since_day", "severity"]
REPLAY_COLUMNS = ["patient_id", "rule", "first_met_day", "last_met_day", "met_days",
                  "worst_grade", "worst_score"]


def _num(x: object) -> str:
    if x is None:
        return ""
    f = float(x)  # type: ignore[arg-type]
    return str(int(f)) if f.is_integer() else f"{f:g}"


def sample_documents(sample_dir: Path = SAMPLE_DIR) -> tuple[dict, dict]:
    """(evaluate, replay) JSON documents over a fresh temporary SQLite copy of the sample."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'golden.db'}"
        engine = make_engine(url)
        try:
            init_db(engine)
            reports = seed_sample(engine, sample_dir)
            assert all(r.ok for r in reports), [str(e) for r in reports for e in r.errors]
            settings = Settings(database_url=url)
            evaluated = run_evaluate(engine, settings, as_of=AS_OF)
            replayed = run_replay(engine, settings, as_of=AS_OF)
        finally:
            engine.dispose()
    return evaluated, replayed


def alert_rows(evaluated: dict) -> list[dict[str, str]]:
    rows = []
    for p in evaluated["patients"]:
        for f in p["findings"]:
            if f["status"] != Status.MET.value:
                continue
            finding = Finding(rule=f["rule"], status=Status.MET, grade=f["grade"])
            alerting = not spec_by_id(f["rule"]).rule.informational
            rows.append({
                "patient_id": p["patient_id"], "rule": f["rule"], "status": f["status"],
                "grade": _num(f["grade"]), "score": _num(f["score"]),
                "since_day": _num(f["since_day"]),
                "severity": severity_of(finding, spec_by_id(f["rule"])) if alerting else "",
            })
    return sorted(rows, key=lambda r: (r["patient_id"], r["rule"]))


def replay_rows(replayed: dict) -> list[dict[str, str]]:
    rows = []
    for p in replayed["patients"]:
        per_rule: dict[str, list] = {}
        for d in p["days"]:
            for f in d["findings"]:
                if f["status"] == Status.MET.value:
                    per_rule.setdefault(f["rule"], []).append((d["day"], f))
        for rule, hits in per_rule.items():
            grades = [f["grade"] for _, f in hits if f["grade"] is not None]
            scores = [f["score"] for _, f in hits if f["score"] is not None]
            rows.append({
                "patient_id": p["patient_id"], "rule": rule,
                "first_met_day": _num(hits[0][0]), "last_met_day": _num(hits[-1][0]),
                "met_days": str(len(hits)),
                "worst_grade": _num(max(grades)) if grades else "",
                "worst_score": _num(max(scores)) if scores else "",
            })
    return sorted(rows, key=lambda r: (r["patient_id"], r["rule"]))


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main() -> None:
    evaluated, replayed = sample_documents()
    alerts, replay = alert_rows(evaluated), replay_rows(replayed)
    write_csv(ALERTS_CSV, ALERT_COLUMNS, alerts)
    write_csv(REPLAY_CSV, REPLAY_COLUMNS, replay)
    print(f"{ALERTS_CSV.name}: {len(alerts)} rows; {REPLAY_CSV.name}: {len(replay)} rows")


if __name__ == "__main__":
    main()

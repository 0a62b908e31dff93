"""Benchmark: replay every rule over N synthetic courses x D days, in memory.

    .venv/bin/python bench/replay_rules.py [--patients 1000] [--days 100] [--seed 1]
    .venv/bin/python bench/replay_rules.py --patients 20 --by-rule   # cost of each rule

Prints one JSON line {patients, patient_days, seconds, patient_days_per_s, peak_mb, ...}:
the time to judge every rule on every day of every course (engine.replay_statuses, the
replay the backtest runs); peak_mb is the process's peak resident set size (courses
included).
`replay_all(courses)` is the timed part, so a DB-read comparison can wrap it. The courses are
synthetic (random walks with a CRS bump and, for some patients, an IEC-HS-like ferritin
surge); they are not clinical data.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.rules.base import RuleSpec  # noqa: E402
from core.rules.catalog import all_specs  # noqa: E402
from core.rules.engine import replay_statuses  # noqa: E402
from core.vocabulary.course import Course, make_course  # noqa: E402

DAILY_LABS = {  # analyte: (typical value, daily log-sd)
    "ferritin": (600.0, 0.25), "fibrinogen": (320.0, 0.12), "ast": (30.0, 0.2),
    "alt": (35.0, 0.2), "bilirubin": (0.7, 0.15), "ldh": (220.0, 0.1), "crp": (20.0, 0.4),
    "creatinine": (0.9, 0.1), "wbc": (5.0, 0.25), "anc": (3.0, 0.3), "alc": (1.0, 0.3),
    "hemoglobin": (11.0, 0.05), "platelets": (180.0, 0.15),
}


def synthetic_course(i: int, days: int, rng: random.Random) -> Course:
    """One synthetic patient: baseline labs on day -5, daily labs and vitals to `days`."""
    crs_on, crs_len = rng.randint(1, 6), rng.randint(2, 8)
    hs = rng.random() < 0.1
    hs_on = crs_on + crs_len + rng.randint(1, 6)
    labs: list[tuple] = []
    level = {a: v for a, (v, _) in DAILY_LABS.items()}
    for a in DAILY_LABS:
        labs.append((a, -5.4, level[a]))
    obs: list[tuple] = []
    treatments: list[tuple] = []
    for d in range(days):
        t = d + 0.3
        for a, (typical, sd) in DAILY_LABS.items():
            level[a] = math.exp(0.8 * math.log(level[a]) + 0.2 * math.log(typical)
                                + rng.gauss(0, sd))
            value = level[a]
            if a == "anc" and 1 <= d <= 10:
                value *= 0.1
            if hs and hs_on <= d <= hs_on + 7:
                if a == "ferritin":
                    value *= 3.0 ** (d - hs_on + 1)
                if a in ("alt", "ast"):
                    value *= 8
                if a == "fibrinogen":
                    value *= 0.35
            labs.append((a, t, round(value, 3)))
        in_crs = crs_on <= d < crs_on + crs_len
        for hour in (0.3, 0.8):
            obs.append(("temperature", d + hour, round(38.6 if in_crs else
                                                       36.8 + rng.random(), 1)))
        obs.append(("hypotension", t, 1 if in_crs and rng.random() < 0.3 else 0))
        obs.append(("oxygen_device", t, "low_flow_nc" if in_crs and rng.random() < 0.3
                    else "none"))
        obs.append(("ice_score", t, 10 if rng.random() < 0.95 else 8))
        obs.append(("consciousness", t, "spontaneous"))
        if in_crs and d == crs_on + 1:
            treatments.append(("tocilizumab", t))
        if hs and d == hs_on + 1:
            treatments.append(("anakinra", t))
    return make_course(patient_id=f"S{i:05d}", labs=labs, observations=obs,
                       treatments=treatments, birth_year=1950 + i % 60)


def build_courses(n: int, days: int, seed: int = 1) -> list[Course]:
    rng = random.Random(seed)
    return [synthetic_course(i, days, rng) for i in range(n)]


BATCH = 100  # courses replayed at a time, as the backtest reads them


def replay_all(courses: list[Course]) -> tuple[float, int]:
    """Every rule's status on every day of every course (engine.replay_statuses, in batches
    of BATCH courses, as the backtest does); (wall seconds, number of statuses)."""
    specs = all_specs()
    start = time.perf_counter()
    n = 0
    for i in range(0, len(courses), BATCH):
        n += len(replay_statuses(courses[i:i + BATCH], specs))
    return time.perf_counter() - start, n


def by_rule(courses: list[Course]) -> dict[str, float]:
    """Microseconds per patient-day spent in each rule, net of the engine's own cost (the
    ward and grid, timed with a rule that judges nothing and reported on its own)."""
    from dataclasses import replace

    from core.rules.frames import Ward

    patient_days = max(len(Ward.of(courses, evaluating=False).replay_rows()), 1)

    def cost(spec: RuleSpec) -> float:
        start = time.perf_counter()
        for i in range(0, len(courses), BATCH):
            replay_statuses(courses[i:i + BATCH], [spec])
        return (time.perf_counter() - start) / patient_days * 1e6

    first = all_specs()[0]
    noop = replace(first, judge=lambda ward, t: {"status": ["not_met"] * ward.size},
                   reads=())
    overhead = cost(noop)
    totals = {spec.rule.id: cost(spec) - overhead for spec in all_specs()}
    totals["(engine overhead, no-op rule)"] = overhead
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--days", type=int, default=100)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--by-rule", action="store_true",
                   help="time each rule alone (us per patient-day), hooks included")
    args = p.parse_args(argv)
    if args.by_rule:
        courses = build_courses(args.patients, args.days, args.seed)
        for rule_id, us in by_rule(courses).items():
            print(f"{rule_id:28s} {us:8.1f} us/patient-day")
        return
    t0 = time.perf_counter()
    courses = build_courses(args.patients, args.days, args.seed)
    build_s = time.perf_counter() - t0
    rows = sum(len(c.labs) + len(c.observations) + len(c.treatments) for c in courses)
    cpu0 = time.process_time()
    seconds, n_findings = replay_all(courses)
    cpu = time.process_time() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    patient_days = args.patients * args.days
    print(json.dumps({
        "patients": args.patients, "patient_days": patient_days,
        "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
        "patient_days_per_s": round(patient_days / seconds, 1),
        "peak_mb": round(peak / 2**20, 1),
        "rules": len(all_specs()), "statuses": n_findings, "rows": rows,
        "build_seconds": round(build_s, 2),
    }))


if __name__ == "__main__":
    main()

"""Benchmark: import 100,000 lab rows through `import_file` into a fresh SQLite file.

    .venv/bin/python bench/import_100k.py [--rows 100000] [--keep]

The same code path as the import page and `python -m core import`. Prints one JSON line
{rows, seconds, rows_per_s, peak_mb, ok}; peak_mb is the process's peak resident memory
(ru_maxrss). Target: <= 10 s and <= 500 MB. The values are synthetic, not clinical data.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import resource
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.capture.importing import import_file  # noqa: E402
from core.store.db import init_db, make_engine  # noqa: E402

TYPICAL = {"ferritin": ("ng/mL", 600), "fibrinogen": ("g/L", 3.2), "ast": ("U/L", 30),
           "alt": ("U/L", 35), "bilirubin": ("µmol/L", 12), "ldh": ("U/L", 220),
           "crp": ("mg/L", 20), "wbc": ("10^9/L", 4), "anc": ("/uL", 2500),
           "alc": ("10^9/L", 1), "hemoglobin": ("g/dL", 11), "platelets": ("10^9/L", 150),
           "ddimer": ("mg/L FEU", 0.8), "creatinine": ("mg/dL", 0.9), "il6": ("pg/mL", 12),
           "triglycerides": ("mmol/L", 1.5), "scd25": ("U/mL", 900)}


def make_files(rows: int, seed: int = 1) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    per_patient = len(TYPICAL) * 60
    n_patients = -(-rows // per_patient)
    infusion = date.today() - timedelta(days=200)
    pts = io.StringIO("patient_id,infusion_date,product\n")
    pts.seek(0, 2)
    for i in range(n_patients):
        pts.write(f"B{i:05d},{infusion.isoformat()},axi-cel\n")
    labs = io.StringIO()
    labs.write("patient_id,day,analyte,value,unit\n")
    n = 0
    for i in range(n_patients):
        for day in range(-5, 55):
            for analyte, (unit, typical) in TYPICAL.items():
                if n == rows:
                    break
                value = round(typical * rng.lognormvariate(0, 0.15), 2)
                labs.write(f"B{i:05d},{day + 0.25},{analyte},{value},{unit}\n")
                n += 1
    return pts.getvalue().encode(), labs.getvalue().encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    patients, labs = make_files(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        init_db(engine)
        assert import_file(engine, patients, "patients.csv").ok
        started = time.perf_counter()
        report = import_file(engine, labs, "labs.csv", user="bench")
        seconds = time.perf_counter() - started
        engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": report.rows_in_file, "rows_written": report.rows_new,
                      "seconds": round(seconds, 2),
                      "rows_per_s": round(report.rows_in_file / seconds),
                      "peak_mb": round(peak_mb, 1), "target_s": 10, "target_mb": 500,
                      "ok": report.ok and seconds <= 10 and peak_mb <= 500,
                      "errors": [str(e) for e in report.errors[:3]]}))


if __name__ == "__main__":
    main()

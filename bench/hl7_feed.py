"""Benchmark (issue 14): an HL7 v2 lab feed over MLLP into a SQLite ward, with evaluation.

    .venv/bin/python bench/hl7_feed.py [--patients 60] [--days 30] [--seconds 10]
                                       [--senders 8] [--obx 5] [--messages N]

A synthetic ward (bench/replay_rules.py courses) in a fresh SQLite file; the listener
(core.capture.hl7.listener) on a free port of 127.0.0.1; `--senders` connections each send ORU^R01
messages of `--obx` results (LOINC-coded labs for a random patient) one after another, each
as soon as the previous one is acknowledged, for `--seconds`. Every message is all or
nothing and brings its patient's alerts up to date before its ACK; messages that arrive
together share one commit (core.capture.hl7.listener).
The senders run in a process of their own, as a lab system is another machine: in the
listener's process they would take its CPU and its GIL. Reports messages/s sustained (target
>= 100), the ACK latency p50/p95 (target p95 <= 0.2 s), the listener process's CPU time
per message and how many messages shared a commit on average, and checks that every message
was acknowledged AA and stored. Prints one JSON line. The data are synthetic, not clinical.

Why 8 senders by default: in MLLP's original mode a connection has one message in flight,
so a feed's rate is at most its connections / the ACK latency (Little's law). 100 messages a
second with a p95 of 0.2 s allows up to about 20 connections; with 4, every message would
have to be acknowledged within 40 ms, commit and evaluation included. Run with `--senders 1`,
`4` or `16` for the other points of the envelope (docs/deployment.md, HL7 throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import random
import re
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hl7  # noqa: E402
from hl7.mllp import open_hl7_connection  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.replay_rules import build_courses  # noqa: E402
from bench.replay_vs_read import write_db  # noqa: E402
from core.capture.hl7.listener import ListenerThread  # noqa: E402
from core.capture.hl7.receive import receive  # noqa: E402
from core.config import Settings  # noqa: E402
from core.monitoring.evaluation import run_evaluate  # noqa: E402
from core.store.db import make_engine  # noqa: E402
from core.store.models import InboundMessage, Patient  # noqa: E402

RATE_TARGET = 100.0  # messages per second
P95_TARGET_S = 0.2
# (LOINC, name, unit, typical value) of the results each message carries
PANEL = [("2276-4", "Ferritin", "ug/L", 600), ("3255-7", "Fibrinogen", "g/L", 3.2),
         ("1988-5", "CRP", "mg/L", 20), ("777-3", "Platelets", "10*9/L", 150),
         ("1742-6", "ALT", "U/L", 35), ("6690-2", "WBC", "10*9/L", 4),
         ("718-7", "Hemoglobin", "g/dL", 11)]


def message(control: str, patient: str, when: datetime, obx: int, rng: random.Random) -> str:
    stamp = when.strftime("%Y%m%d%H%M%S+0000")
    segments = [
        f"MSH|^~\\&|LABSYS|SYNHOSP|CARTWATCH|WARD|{stamp}||ORU^R01^ORU_R01|{control}|P|2.5.1",
        f"PID|1||{patient}^^^SYNHOSP^MR||SYNTHETIC^BENCH",
        "PV1|1|I|4A^01",
        f"OBR|1|P{control}|F{control}|PANEL^Bench panel^L|||{stamp}",
    ]
    for i, (loinc, name, unit, typical) in enumerate(PANEL[:obx], start=1):
        value = round(typical * rng.lognormvariate(0, 0.15), 2)
        segments.append(f"OBX|{i}|NM|{loinc}^{name}^LN||{value}|{unit}|||||F|||{stamp}")
    return "\r".join(segments) + "\r"


async def sender(port: int, n: int, patients: list[str], obx: int, until: float,
                 latencies: list[float], codes: list[str], count: int | None) -> None:
    rng = random.Random(n)
    reader, writer = await open_hl7_connection("127.0.0.1", port, encoding="utf-8")
    base = datetime.now(UTC) - timedelta(hours=2)
    i = 0
    try:
        while (i < count) if count is not None else (time.perf_counter() < until):
            # distinct collection times per sender and message (up to 100 senders): every
            # result is new
            when = base - timedelta(seconds=i * 100 + n)
            text = message(f"B{n}-{i}", rng.choice(patients), when, obx, rng)
            started = time.perf_counter()
            writer.writemessage(hl7.parse(text))
            await writer.drain()
            ack = await reader.readmessage()
            latencies.append(time.perf_counter() - started)
            codes.append(str(ack.segment("MSA")(1)))
            i += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def feed(port: int, args: argparse.Namespace, patients: list[str],
               latencies: list[float], codes: list[str]) -> float:
    started = time.perf_counter()
    until = started + args.seconds
    await asyncio.gather(*(sender(port, n, patients, args.obx, until, latencies, codes,
                                  args.messages) for n in range(args.senders)))
    return time.perf_counter() - started


class GroupSizes(logging.Handler):
    """The size of each message's group commit, from the receiver's log line for it
    ("(N message(s) together)"): N messages of a group log N lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.sizes: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        found = re.search(r"\((\d+) message\(s\) together\)", record.getMessage())
        if found:
            self.sizes.append(int(found.group(1)))

    def per_commit(self) -> float | None:
        commits = sum(1 / n for n in self.sizes)
        return round(len(self.sizes) / commits, 2) if commits else None


def senders_process(port: int, args: argparse.Namespace, patients: list[str]
                    ) -> tuple[float, list[float], list[str]]:
    """The senders, run in a process of their own: (seconds, ACK latencies, ACK codes)."""
    latencies: list[float] = []
    codes: list[str] = []
    seconds = asyncio.run(feed(port, args, patients, latencies, codes))
    return seconds, latencies, codes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--patients", type=int, default=60)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--senders", type=int, default=8)
    p.add_argument("--messages", type=int, default=None,
                   help="send exactly this many messages per sender instead of --seconds "
                        "(e.g. 250: the issue's 4 senders x 250 messages)")
    p.add_argument("--obx", type=int, default=5, choices=range(1, len(PANEL) + 1))
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cartwatch-bench-") as tmp:
        db = Path(tmp) / "ward.db"
        write_db(db, build_courses(args.patients, args.days, seed=2),
                 date.today() - timedelta(days=args.days))
        url = f"sqlite:///{db}"
        engine, settings = make_engine(url), Settings(database_url=url)
        run_evaluate(engine, settings)
        with Session(engine) as s:
            patients = list(s.execute(select(Patient.patient_id)).scalars())
        what = (f"{args.messages} messages each" if args.messages else
                f"{args.seconds:g} s")
        print(f"ward ready ({len(patients)} patients); feeding {what} over {args.senders} "
              "connections", file=sys.stderr, flush=True)
        # one message first, outside the timing: imports, caches and the first evaluation
        warm = message("WARM-UP", patients[0], datetime.now(UTC) - timedelta(hours=3), args.obx,
                       random.Random(0))
        assert receive(engine, warm, settings).code == "AA"
        spawn = multiprocessing.get_context("spawn")  # no copy of this process's threads
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            pool.submit(time.sleep, 0).result()  # the senders' process started and imported
            groups = GroupSizes()
            receiver_log = logging.getLogger("core.capture.hl7.receive")
            receiver_log.setLevel(logging.INFO)
            receiver_log.addHandler(groups)
            cpu = time.process_time()
            with ListenerThread(engine, settings) as listener:
                seconds, latencies, codes = pool.submit(
                    senders_process, listener.port, args, patients).result()
            cpu = time.process_time() - cpu
            receiver_log.removeHandler(groups)
        with Session(engine) as s:
            stored = s.execute(select(func.count()).select_from(InboundMessage).where(
                InboundMessage.status == "stored")).scalar_one()
        engine.dispose()
    rate = len(codes) / seconds
    p95 = (statistics.quantiles(latencies, n=20, method="inclusive")[18]
           if len(latencies) >= 2 else latencies[0])
    all_aa = codes.count("AA") == len(codes) and stored == len(codes) + 1 and (
        args.messages is None or len(codes) == args.messages * args.senders)
    print(json.dumps({
        "patients": len(patients), "senders": args.senders, "obx_per_message": args.obx,
        "messages": len(codes), "seconds": round(seconds, 2),
        "messages_per_second": round(rate, 1), "rate_target": RATE_TARGET,
        "ack_p50": round(statistics.median(latencies), 3), "ack_p95": round(p95, 3),
        "ack_max": round(max(latencies), 3), "ack_p95_target": P95_TARGET_S,
        "all_acked_aa_and_stored": all_aa,
        # CPU seconds of the listener's process per message: what one message costs whatever
        # else the machine is running; 1 / it bounds the rate on one core
        "listener_cpu_ms_per_message": round(cpu * 1000 / max(1, len(codes)), 1),
        # messages that shared a commit, on average (core.capture.hl7.listener)
        "messages_per_commit": groups.per_commit(),
        "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "ok": all_aa and rate >= RATE_TARGET and p95 <= P95_TARGET_S,
    }))


if __name__ == "__main__":
    main()

"""`make run` (issue 13 §2, issue 14): one command starts the app, the monitor and the HL7
listener beside it, a lab result sent over MLLP is acknowledged and stored, and Ctrl-C stops
all three with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from hl7.client import MLLPClient
from sqlalchemy import func, select

from core.store.db import make_engine, session_scope
from core.store.models import LabResult, MonitorCycle
from tests.conftest import ROOT, free_port
from tests.core.test_hl7_receive import FER, ack_fields, oru, stamp


def _group(pgid: int) -> set[int]:
    """Live processes of a process group (from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.add(int(entry.name))
    return pids


def test_make_run_starts_app_monitor_and_listener_and_ctrl_c_stops_all(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'run.db'}"
    port, hl7_port = free_port(), free_port()
    env = {**os.environ, "CARTWATCH_DATABASE_URL": url, "MAKEFLAGS": ""}
    log = tmp_path / "make.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"PORT={port}",
                                 "MONITOR_INTERVAL=2", f"HL7_PORT={hl7_port}"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    engine = make_engine(url)
    try:
        deadline = time.monotonic() + 180
        healthy = cycles = 0
        while time.monotonic() < deadline and not (healthy and cycles >= 2):
            assert proc.poll() is None, log.read_text()
            try:
                healthy = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                                 timeout=2).read() == b"ok"
                with session_scope(engine) as s:
                    cycles = s.scalar(select(func.count()).select_from(MonitorCycle)) or 0
            except Exception:  # noqa: BLE001 - not up yet: the schema or server is starting
                pass
            time.sleep(0.5)
        assert healthy and cycles >= 2, log.read_text()
        with MLLPClient("127.0.0.1", hl7_port) as client:  # the lab's feed
            ack = client.send_message(oru("RUN1", [FER], when=stamp(1))).decode()
        assert ack_fields(ack)["code"] == "AA", ack
        with session_scope(engine) as s:
            assert s.scalar(select(func.count()).select_from(LabResult).where(
                LabResult.source == "hl7")) == 1
        members = _group(proc.pid)
        assert len(members) >= 4, members  # make, its shell, the monitor, listener, app
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's group
        proc.wait(timeout=60)
        deadline = time.monotonic() + 30
        while _group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _group(proc.pid) == set(), f"left behind: {_group(proc.pid)}"
        text = log.read_text()
        assert "monitor cycle done" in text and "monitor stopped" in text, text
    finally:
        if proc.poll() is None or _group(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        engine.dispose()

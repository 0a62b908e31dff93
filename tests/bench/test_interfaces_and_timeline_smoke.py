"""The benchmarks of issue 14 (HL7 feed, FHIR sync) and the timeline page at toy scale, so
their code keeps working; the full runs and their targets are `python -m bench NAME`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench import fhir_sync, hl7_feed, timeline_page


def _doc(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_timeline_page_toy_run_draws_the_chart(capsys: pytest.CaptureFixture[str]) -> None:
    timeline_page.main(["--days", "10", "--runs", "1"])
    doc = _doc(capsys)
    assert doc["bench"] == "timeline_page" and doc["lab_rows"] > 0
    assert doc["cold_run_s"] > 0 and len(doc["warm_runs_s"]) == 1


def test_hl7_feed_toy_run_acks_and_stores_every_message() -> None:
    # its own process: the bench runs asyncio.run, which a test worker that also drove the
    # browser (Playwright's loop in this thread) would refuse
    run = subprocess.run([sys.executable, hl7_feed.__file__, "--patients", "4", "--days", "5",
                          "--senders", "2", "--messages", "3"], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert doc["messages"] == 6 and doc["all_acked_aa_and_stored"] is True
    assert doc["ack_p95"] > 0 and doc["messages_per_second"] > 0
    assert 1 <= doc["messages_per_commit"] <= 2  # 2 senders: at most 2 share a commit


def test_fhir_sync_toy_run_writes_every_resource(capsys: pytest.CaptureFixture[str]) -> None:
    fhir_sync.main(["--patients", "3", "--days", "2", "--page-size", "20"])
    doc = _doc(capsys)
    assert doc["resources"] > 0 and doc["written"] == doc["resources"], doc

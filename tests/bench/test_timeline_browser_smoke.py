"""The browser benchmark of the patient timeline (issue 15) at toy scale: two patients, so
its code keeps working; the full run and its target are `python -m bench timeline_browser`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench import timeline_browser
from tests.conftest import missing_dependency


def test_browser_bench_draws_the_chart_for_two_patients() -> None:
    if not Path(timeline_browser.CHROMIUM).exists():
        missing_dependency("Debian's chromium (/usr/bin/chromium)")
    # its own process: Playwright's sync API refuses to start inside a test worker that
    # already drove the browser through pytest-playwright (a running event loop)
    run = subprocess.run([sys.executable, timeline_browser.__file__, "--patients", "2"],
                         capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(run.stdout.strip().splitlines()[-1])
    assert doc["bench"] == "timeline_browser" and doc["patients"] == 2
    # a time per view means the chart of that patient was drawn (the bench waits for it)
    assert len(doc["first_view_s"]) == 2 and len(doc["revisit_s"]) == 2
    assert all(0 < s < 120 for s in doc["first_view_s"] + doc["revisit_s"])
    assert doc["first_view_median_s"] > 0 and doc["first_view_p95_s"] >= doc[
        "first_view_median_s"]
    assert doc["revisit_median_s"] > 0 and doc["target_s"] == 1.0
    assert isinstance(doc["ok"], bool)
    figure = doc["figure"]
    assert figure["charts"] == 1 and figure["traces"] > 0 and figure["points"] > 0
    assert figure["shapes"] > 0 and figure["annotations"] > 0  # bands, lines and labels
    # one message from the browser per pick: the page runs its script once, not twice
    assert dict(map(tuple, doc["messages_sent_per_view"])) == {1: 4}

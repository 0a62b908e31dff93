"""bench/notify_deliver.py at toy scale (issue 13 §3), so the benchmark's code keeps working.

The full run (100 notifications, target <= 5 s) is `python -m bench notify_deliver`; this
runs the same program on a few: its JSON line, and every notification received and verified.
"""

from __future__ import annotations

import json

from bench import notify_deliver


def test_notify_deliver_toy_run_delivers_and_verifies_each_one(capsys):
    notify_deliver.main(["--notifications", "7"])
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (doc["notifications"], doc["delivered"], doc["received"], doc["verified"]) == (
        7, 7, 7, 7)
    assert doc["seconds"] > 0 and doc["per_notification_ms"] > 0 and doc["enqueue_seconds"] > 0
    assert doc["ok"] == (doc["seconds"] <= doc["target_seconds"] * 7 / 100)
    assert doc["db"] == "sqlite"

"""bench/replay_vs_read.py at toy scale (issue #3), so the benchmark's code keeps working.

The full run (1,000 patients x 100 days) is `python -m bench replay_vs_read`; this runs the
same program on a few patients: its JSON line, the alternation of reads and replays, and the
ratio as the median of the rounds' ratios, each replay against the reads either side of it.
"""

from __future__ import annotations

import json
import statistics

import pytest

from bench import replay_vs_read


def test_replay_vs_read_toy_run_reports_each_round(capsys):
    replay_vs_read.main(["--patients", "6", "--days", "12", "--rounds", "2"])
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (doc["patients"], doc["patient_days"], doc["rules"]) == (6, 6 * 12, 27)
    assert doc["alerts"] > 0 and doc["workers"] == 1
    reads, replays = doc["read_runs_seconds"], doc["replay_runs_seconds"]
    assert len(reads) == 3 and len(replays) == 2 and min(reads + replays) > 0
    want = [p / ((a + b) / 2) for p, a, b in zip(replays, reads, reads[1:], strict=False)]
    # (from the printed times, rounded to 10 microseconds: toy runs take milliseconds)
    assert doc["round_ratios"] == pytest.approx(want, abs=0.02)
    assert doc["ratio"] == pytest.approx(statistics.median(want), abs=0.02)
    assert doc["ok"] == (statistics.median(want) <= 3.0 and doc["peak_mb"] <= 1024.0)
    assert doc["db"] is None

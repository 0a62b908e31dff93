"""Golden files over the synthetic sample cohort (style.md "Golden file"; pyAKI's validation CSV).

The sample is seeded into a temporary SQLite database and evaluated as of a fixed time
(tests/clinical/make_golden.py); the result must equal the committed CSVs, and the CSVs must
say what data/sample/README.md promises for the key rules. After an intended rule change:
`.venv/bin/python tests/clinical/make_golden.py`, review the diff, update the README table.
"""

from __future__ import annotations

import difflib

import pytest

from tests.clinical import make_golden as golden


@pytest.fixture(scope="module")
def documents() -> tuple[dict, dict]:
    return golden.sample_documents()


def _lines(rows: list[dict[str, str]], columns: list[str]) -> list[str]:
    return [",".join(columns)] + [",".join(r[c] for c in columns) for r in rows]


@pytest.mark.parametrize(("kind", "path", "columns"), [
    pytest.param("alerts", golden.ALERTS_CSV, golden.ALERT_COLUMNS, id="evaluate-alerts"),
    pytest.param("replay", golden.REPLAY_CSV, golden.REPLAY_COLUMNS, id="replay-summary"),
])
def test_rules_over_the_sample_match_the_golden_file(documents, kind, path, columns):
    evaluated, replayed = documents
    rows = golden.alert_rows(evaluated) if kind == "alerts" else golden.replay_rows(replayed)
    want, got = _lines(golden.read_csv(path), columns), _lines(rows, columns)
    diff = "\n".join(difflib.unified_diff(want, got, "golden", "now", lineterm=""))
    assert want == got, (f"{path.name} differs (rerun tests/clinical/make_golden.py if the "
                         f"change is intended):\n{diff}")


# --- data/sample/README.md, key rules ------------------------------------------------------
# Replay: rule -> (worst grade or score, or True for an ungraded rule; first met day or None
# when the README names no day). A key rule not listed for a patient is never met.
KEY_RULES = ("crs_grade", "icans_grade", "iec_hs", "cartox_hlh", "icaht_early", "icaht_late",
             "prolonged_cytopenia", "car_hematotox")
README_REPLAY: dict[str, dict[str, tuple[object, int | None]]] = {
    "SYN-001": {},
    "SYN-002": {"crs_grade": (2, 2), "icaht_early": (1, None)},
    "SYN-003": {"crs_grade": (3, 1), "icans_grade": (3, 4), "icaht_early": (2, None)},
    "SYN-004": {"crs_grade": (1, 1), "iec_hs": (True, 10), "icaht_early": (1, None)},
    "SYN-005": {"crs_grade": (3, 1), "icans_grade": (1, 4), "iec_hs": (True, 6),
                "cartox_hlh": (True, 5), "icaht_early": (2, None), "car_hematotox": (2, None)},
    "SYN-006": {"crs_grade": (1, 2), "icaht_early": (3, None)},
    "SYN-007": {"crs_grade": (1, 3), "icaht_early": (2, None), "icaht_late": (3, None),
                "prolonged_cytopenia": (True, None)},
    "SYN-008": {"crs_grade": (1, 2), "icaht_early": (3, None), "car_hematotox": (7, None)},
    "SYN-009": {"crs_grade": (1, 4), "icaht_early": (1, None)},
    "SYN-010": {"crs_grade": (2, 3), "icans_grade": (1, 6), "icaht_early": (2, None)},
    "SYN-011": {"crs_grade": (2, 1), "icans_grade": (3, 5), "icaht_early": (2, None),
                "car_hematotox": (2, None)},
    "SYN-012": {"crs_grade": (1, 2), "icaht_early": (1, None)},
    "SYN-013": {"crs_grade": (1, 1), "icaht_early": (1, None), "car_hematotox": (2, None)},
    "SYN-014": {"crs_grade": (2, 6)},
}
# evaluate as of 2026-11-21 08:00Z (today's state): rule -> grade, score or True (ungraded).
# SYN-012 is discharged and not evaluated.
README_TODAY: dict[str, dict[str, object]] = {
    "SYN-001": {}, "SYN-002": {"icaht_early": 1}, "SYN-003": {"icaht_early": 2},
    "SYN-004": {"icaht_early": 1},
    "SYN-005": {"cartox_hlh": True, "icaht_early": 2, "car_hematotox": 2},
    "SYN-006": {"icaht_early": 3},
    "SYN-007": {"icaht_early": 2, "icaht_late": 3, "prolonged_cytopenia": True},
    "SYN-008": {"icaht_early": 3, "car_hematotox": 7}, "SYN-009": {"icaht_early": 1},
    "SYN-010": {"icaht_early": 2}, "SYN-011": {"icaht_early": 2, "car_hematotox": 2},
    "SYN-013": {"icaht_early": 1, "car_hematotox": 2}, "SYN-014": {"crs_grade": 2},
}


def _value(row: dict[str, str]) -> object:
    key = "worst_grade" if "worst_grade" in row else "grade"
    score = "worst_score" if "worst_score" in row else "score"
    if row[key]:
        return int(row[key])
    if row[score]:
        return int(float(row[score]))
    return True


@pytest.mark.parametrize("patient", sorted(README_REPLAY))
def test_replay_golden_says_what_the_readme_promises(patient):
    rows = {r["rule"]: r for r in golden.read_csv(golden.REPLAY_CSV)
            if r["patient_id"] == patient and r["rule"] in KEY_RULES}
    got = {rule: (_value(r), int(r["first_met_day"])) for rule, r in rows.items()}
    want = README_REPLAY[patient]
    assert set(got) == set(want), f"{patient}: met key rules {sorted(got)} vs README"
    for rule, (worst, first) in want.items():
        assert got[rule][0] == worst, f"{patient} {rule}: worst {got[rule][0]} vs {worst}"
        if first is not None:
            assert got[rule][1] == first, f"{patient} {rule}: first met day {got[rule][1]}"


def test_evaluate_golden_says_what_the_readme_promises_today():
    rows = [r for r in golden.read_csv(golden.ALERTS_CSV) if r["rule"] in KEY_RULES]
    got: dict[str, dict[str, object]] = {}
    for r in rows:
        got.setdefault(r["patient_id"], {})[r["rule"]] = _value(r)
    assert {p: got.get(p, {}) for p in README_TODAY} == README_TODAY
    assert "SYN-012" not in got  # discharged: skipped by evaluate


def test_expected_lymphopenia_never_raises_a_severe_alert():
    rows = golden.read_csv(golden.ALERTS_CSV)
    assert all(r["severity"] == "info" for r in rows if r["rule"] in ("ctcae_alc", "ctcae_wbc"))
    assert all(r["severity"] == "" for r in rows if r["rule"] == "car_hematotox")
